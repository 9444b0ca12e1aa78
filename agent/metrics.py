"""The metrics the scaler reads (lbcp.models.metrics): CPU, memory and active connections per LBVM.

Measured once per ``PUBLISH_PERIOD_SECONDS`` into a ``MetricsSample`` that the
agent sends with its next heartbeat (``agent.loop``); the control plane keeps
it on the LBVM's record for the scaler and writes it to CloudWatch for the
users' graphs, so the agent itself calls no metrics API. CPU is the machine's
mean utilisation over the whole period (from /proc/stat deltas), not a sample,
so a short spike between two samples is neither missed nor exaggerated.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Protocol

from lbcp.models.agent import MetricsSample


class Sampler(Protocol):
    def cpu_percent(self) -> float:
        """Mean CPU utilisation since the previous call."""
        ...

    def memory_percent(self) -> float: ...


class FixedSampler:
    """Utilisation that the caller sets: the local runtime's simulated LBVMs (and its demos of scaling)."""

    def __init__(self, cpu: float = 0.0, memory: float = 0.0) -> None:
        self.cpu = cpu
        self.memory = memory

    def cpu_percent(self) -> float:
        return self.cpu

    def memory_percent(self) -> float:
        return self.memory


class SystemSampler:
    """CPU and memory utilisation of the machine, from /proc (``root`` is replaceable for tests)."""

    def __init__(self, root: Path = Path("/proc")) -> None:
        self.root = root
        self._last = self._cpu_times()

    def _cpu_times(self) -> tuple[int, int]:
        # First line of /proc/stat: "cpu  user nice system idle iowait irq softirq steal guest guest_nice".
        fields = [int(value) for value in (self.root / "stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        # guest and guest_nice are already counted in user and nice.
        total = sum(fields[:8])
        return total - idle, total

    def cpu_percent(self) -> float:
        """Mean utilisation since the previous call (or since this sampler was made)."""
        busy, total = self._cpu_times()
        last_busy, last_total = self._last
        self._last = (busy, total)
        if total <= last_total:
            return 0.0
        return round(100.0 * (busy - last_busy) / (total - last_total), 2)

    def memory_percent(self) -> float:
        info: dict[str, int] = {}
        for line in (self.root / "meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            info[key] = int(rest.split()[0])
        total = info["MemTotal"]
        # MemAvailable counts reclaimable cache as free: what the kernel could hand out now.
        available = info.get("MemAvailable", info.get("MemFree", 0) + info.get("Cached", 0))
        return round(100.0 * (total - available) / total, 2) if total else 0.0


class ProcessSampler:
    """Utilisation caused by some processes (a proxy's master and workers), as a share of a machine's size.

    Where several LBVMs share one host (the local runtime), the machine's own
    CPU says nothing about one LBVM: what its proxy spends is its load. CPU is
    the processes' CPU time since the previous call over the wall time, divided
    by ``cores``; memory is their resident set over ``memory_bytes``. A process
    first seen counts all its CPU time (it started since the previous call: new
    workers after a reload); one that ends between two calls takes its last
    interval with it, which only under-counts a proxy that is restarting.
    """

    def __init__(
        self,
        pids: Callable[[], Iterable[int]],
        *,
        cores: float = 1.0,
        memory_bytes: int = 2 * 1024**3,
        root: Path = Path("/proc"),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pids = pids
        self._cores = cores
        self._memory_bytes = memory_bytes
        self._root = root
        self._monotonic = monotonic
        self._ticks_per_second = os.sysconf("SC_CLK_TCK")
        self._page_size = os.sysconf("SC_PAGE_SIZE")
        self._seen: dict[int, int] = {}  # pid -> CPU ticks at the previous call
        self._last = monotonic()
        self._seen = {pid: ticks for pid, (ticks, _) in self._read().items()}

    def _read(self) -> dict[int, tuple[int, int]]:
        """pid -> (user + system CPU ticks, resident pages), for the processes that still run."""
        found: dict[int, tuple[int, int]] = {}
        for pid in self._pids():
            try:
                text = (self._root / str(pid) / "stat").read_text()
            except OSError:
                continue
            # After the parenthesised command name: state is field 3, utime 14, stime 15, rss 24.
            fields = text[text.rindex(")") + 2 :].split()
            found[pid] = (int(fields[11]) + int(fields[12]), int(fields[21]))
        return found

    def cpu_percent(self) -> float:
        now, current = self._monotonic(), self._read()
        elapsed, self._last = now - self._last, now
        spent = sum(ticks - self._seen.get(pid, 0) for pid, (ticks, _) in current.items())
        self._seen = {pid: ticks for pid, (ticks, _) in current.items()}
        if elapsed <= 0:
            return 0.0
        return round(min(100.0, 100.0 * spent / self._ticks_per_second / elapsed / self._cores), 2)

    def memory_percent(self) -> float:
        resident = sum(pages for _, pages in self._read().values()) * self._page_size
        return round(min(100.0, 100.0 * resident / self._memory_bytes), 2)


def collect(sampler: Sampler, active_connections: int, period_end: datetime) -> MetricsSample:
    """The period that ends now: CPU over it (since the previous call), memory and connections now."""
    return MetricsSample(
        period_end=period_end,
        cpu=min(100.0, max(0.0, sampler.cpu_percent())),
        memory=min(100.0, max(0.0, sampler.memory_percent())),
        active_connections=max(0, active_connections),
    )
