"""Load traces: CSV with header ``t,load`` (seconds from start, requests per second).

The load holds its value until the next sample (a step function), so a trace
sampled once a minute and one sampled once a second describe the same thing
at their own resolution.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

MINUTE = 60


class TraceError(ValueError):
    """A trace file that cannot be read; the message names the line."""


@dataclass(frozen=True)
class MinuteLoad:
    mean: float  # time-weighted mean over the minute: what per-minute metrics average
    peak: float  # highest load at any moment of the minute: what overload is judged on


@dataclass(frozen=True)
class Trace:
    times: tuple[float, ...]
    loads: tuple[float, ...]

    @property
    def minutes(self) -> int:
        """Minutes simulated: up to and including the minute of the last sample."""
        return math.floor(self.times[-1] / MINUTE) + 1

    def per_minute(self) -> list[MinuteLoad]:
        result: list[MinuteLoad] = []
        index = 0  # first sample at or after the current minute's start
        held = self.loads[0]  # before the first sample, its value
        for minute in range(self.minutes):
            start, end = minute * MINUTE, (minute + 1) * MINUTE
            while index < len(self.times) and self.times[index] <= start:
                held = self.loads[index]
                index += 1
            cursor, area, peak = float(start), 0.0, held
            value = held
            while index < len(self.times) and self.times[index] < end:
                area += value * (self.times[index] - cursor)
                cursor, value = self.times[index], self.loads[index]
                peak = max(peak, value)
                index += 1
            area += value * (end - cursor)
            held = value
            result.append(MinuteLoad(mean=area / MINUTE, peak=peak))
        return result


def parse_trace(text: str, source: str = "trace") -> Trace:
    reader = csv.reader(io.StringIO(text))
    rows = [(number, row) for number, row in enumerate(reader, start=1) if row and any(cell.strip() for cell in row)]
    if not rows or [cell.strip() for cell in rows[0][1]] != ["t", "load"]:
        raise TraceError(f"{source}:1: the header must be 't,load'")
    times: list[float] = []
    loads: list[float] = []
    for number, row in rows[1:]:
        if len(row) != 2:
            raise TraceError(f"{source}:{number}: expected 2 columns (t,load), found {len(row)}")
        try:
            t, load = float(row[0]), float(row[1])
        except ValueError:
            raise TraceError(f"{source}:{number}: t and load must be numbers") from None
        if not (math.isfinite(t) and math.isfinite(load)) or t < 0 or load < 0:
            raise TraceError(f"{source}:{number}: t and load must be finite and not negative")
        if times and t <= times[-1]:
            raise TraceError(f"{source}:{number}: t must increase ({t:g} after {times[-1]:g})")
        times.append(t)
        loads.append(load)
    if not times:
        raise TraceError(f"{source}: no samples after the header")
    return Trace(tuple(times), tuple(loads))


def load_trace(path: Path) -> Trace:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TraceError(f"{path}: {exc.strerror or exc}") from None
    return parse_trace(text, str(path))
