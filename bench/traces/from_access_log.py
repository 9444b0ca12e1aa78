"""Turn real web traffic into bench traces: access logs or request-count series to ``t,load`` CSV.

    # Common Log Format access logs (plain or .gz), counted per minute:
    .venv/bin/python bench/traces/from_access_log.py clf NASA_access_log_Jul95.gz \\
        --start 1995-07-01T00:00 --days 14 --out bench/traces/nasa-jul95.csv
    # a series of request counts, one number per second (or --step seconds), from --series-start:
    .venv/bin/python bench/traces/from_access_log.py series workload.txt --series-start 1995-07-01T00:00:01 \\
        --start 1995-07-01T00:00 --days 14 --out trace.csv
    # the two shipped NASA traces, from the per-second series described below:
    .venv/bin/python bench/traces/from_access_log.py nasa workload.tbz2

Output: one row per minute, ``t`` the minute's start in seconds from ``--start``
and ``load`` in the bench's unit, requests per second for LBVMs that serve 1000
each: the minute's request count times ``--scale`` (default 80, see below). A
minute with no request in the log is a row with load 0.

**The shipped NASA traces** (``nasa-jul95.csv``, ``nasa-aug95.csv``) are the
NASA-HTTP logs: every HTTP request to the NASA Kennedy Space Center WWW server
in Florida in July and August 1995, collected by Jim Dumoulin and published in
the Internet Traffic Archive (https://ita.ee.lbl.gov/html/contrib/NASA-HTTP.html),
whose page says "The logs may be freely redistributed". Timestamps are the
server's local time (-0400) at one-second resolution. The counts were taken
from the per-second request series ``dataset/nasa/workload.tbz2`` of
https://github.com/reconfigurable-ml-pipeline/web-service-datasets (made from
those two logs by its ``dataset/nasa/dataset_reader.py``): one number per
second from the July log's first request (01/Jul/1995:00:00:01) to its last
(28/Jul/1995:13:32:25, 2381544 numbers), then the same for the August log from
01/Aug/1995:00:00:01, with zeros for seconds without a request (also through
the outage from 01/Aug/1995:14:52:01 to 03/Aug/1995:04:36:13, when Hurricane
Erin shut the server down). The reader drops each log's very last second
(one request in each). The windows are two whole weeks each: 1-14 July 1995
(Saturday to Friday) and 4-17 August 1995 (Friday to Thursday, after the
outage), 20160 minutes.

**Scale.** The logs' rates are tiny (a median of 47 requests a minute in the
July window, at most 405 in one minute, on 13 July, the day of the STS-70
launch), so each logged request in a minute counts as ``--scale`` = 80
requests/s: the busiest minute becomes 32400 requests/s, 81% of the bench
fleet's maximum (40 LBVMs of 1000), so some policy can serve every minute; the
July median becomes 3760 requests/s (about 4 LBVMs). Scaling multiplies, so the
relative noise from one minute to the next (the point of these traces) is the
log's own.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import re
import sys
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

HERE = Path(__file__).resolve().parent
MINUTE = 60
DEFAULT_SCALE = 80.0
# [01/Jul/1995:00:00:01 -0400]: the zone is ignored, times are the log's local time.
CLF_TIME = re.compile(r"\[(\d{2}/[A-Za-z]{3}/\d{4}:\d{2}:\d{2}:\d{2})(?: [+-]\d{4})?\]")
CLF_FORMAT = "%d/%b/%Y:%H:%M:%S"

# The NASA series (see the module's docstring): where each log starts in it and how long it is.
NASA_JULY_START = datetime(1995, 7, 1, 0, 0, 1)
NASA_JULY_SECONDS = 2381544
NASA_AUGUST_START = datetime(1995, 8, 1, 0, 0, 1)
NASA_WINDOWS = {
    "nasa-jul95": datetime(1995, 7, 1),
    "nasa-aug95": datetime(1995, 8, 4),
}
NASA_DAYS = 14


def _open_text(path: Path) -> TextIO:
    # The NASA logs have a few bytes that are not UTF-8 in request lines; timestamps are ASCII.
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="latin-1")
    return path.open(encoding="latin-1")


def clf_times(lines: Iterable[str]) -> Iterator[datetime]:
    """Each request's time in Common Log Format lines (lines without a readable time are skipped)."""
    for line in lines:
        match = CLF_TIME.search(line)
        if match is None:
            continue
        try:
            yield datetime.strptime(match.group(1), CLF_FORMAT)
        except ValueError:
            continue


def count_per_minute(times: Iterable[datetime], start: datetime, minutes: int) -> list[int]:
    """Requests in each minute from ``start`` (times outside the window are not counted)."""
    counts = [0] * minutes
    for moment in times:
        index = int((moment - start).total_seconds() // MINUTE)
        if 0 <= index < minutes:
            counts[index] += 1
    return counts


def series_per_minute(
    counts: Sequence[int], series_start: datetime, start: datetime, minutes: int, step: int = 1
) -> list[int]:
    """Per-minute totals of a count series whose ``i``-th number covers ``series_start + i * step`` seconds."""
    totals = [0] * minutes
    for i, count in enumerate(counts):
        moment = series_start + timedelta(seconds=i * step)
        index = int((moment - start).total_seconds() // MINUTE)
        if 0 <= index < minutes:
            totals[index] += count
    return totals


def trace_csv(per_minute: Sequence[int], scale: float = DEFAULT_SCALE) -> str:
    rows = [f"{minute * MINUTE},{count * scale:.1f}" for minute, count in enumerate(per_minute)]
    return "t,load\n" + "\n".join(rows) + "\n"


def read_series(path: Path) -> list[int]:
    """Whitespace-separated counts from a text file, a .gz, or a .tbz2 holding one text file."""
    if path.name.endswith((".tbz2", ".tar.bz2")):
        with tarfile.open(path, "r:bz2") as archive:
            member = next(m for m in archive.getmembers() if m.isfile())
            extracted = archive.extractfile(member)
            assert extracted is not None
            text = extracted.read().decode("ascii")
    elif path.suffix == ".bz2":
        text = bz2.decompress(path.read_bytes()).decode("ascii")
    elif path.suffix == ".gz":
        text = gzip.decompress(path.read_bytes()).decode("ascii")
    else:
        text = path.read_text(encoding="ascii")
    return [int(value) for value in text.split()]


def nasa_traces(series: Sequence[int]) -> dict[str, list[int]]:
    """The shipped two-week windows, per minute, from the NASA per-second series."""
    july, august = series[:NASA_JULY_SECONDS], series[NASA_JULY_SECONDS:]
    minutes = NASA_DAYS * 24 * 60
    return {
        "nasa-jul95": series_per_minute(july, NASA_JULY_START, NASA_WINDOWS["nasa-jul95"], minutes),
        "nasa-aug95": series_per_minute(august, NASA_AUGUST_START, NASA_WINDOWS["nasa-aug95"], minutes),
    }


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    clf = commands.add_parser("clf", help="Common Log Format access logs")
    clf.add_argument("logs", nargs="+", type=Path)
    series = commands.add_parser("series", help="a whitespace-separated series of request counts")
    series.add_argument("counts", type=Path)
    series.add_argument("--series-start", type=_when, required=True, help="time of the first number")
    series.add_argument("--step", type=int, default=1, help="seconds each number covers (1)")
    for sub in (clf, series):
        sub.add_argument("--start", type=_when, required=True, help="first minute of the trace (log's local time)")
        sub.add_argument("--days", type=float, default=14.0, help="length of the trace (14)")
        sub.add_argument("--out", type=Path, required=True)
    nasa = commands.add_parser("nasa", help="write the shipped nasa-jul95.csv and nasa-aug95.csv")
    nasa.add_argument("workload", type=Path, help="dataset/nasa/workload.tbz2 (or its workload.txt)")
    nasa.add_argument("--out-dir", type=Path, default=HERE)
    for sub in (clf, series, nasa):
        sub.add_argument("--scale", type=float, default=DEFAULT_SCALE, help="requests/s per logged request a minute")
    args = parser.parse_args(argv)

    if args.command == "nasa":
        for name, per_minute in nasa_traces(read_series(args.workload)).items():
            (args.out_dir / f"{name}.csv").write_text(trace_csv(per_minute, args.scale), encoding="utf-8")
            print(f"{name}.csv: {len(per_minute)} minutes, {sum(per_minute)} requests", file=sys.stderr)
        return 0
    minutes = round(args.days * 24 * 60)
    if args.command == "clf":
        per_minute = [0] * minutes
        for log in args.logs:
            with _open_text(log) as lines:
                for index, count in enumerate(count_per_minute(clf_times(lines), args.start, minutes)):
                    per_minute[index] += count
    else:
        per_minute = series_per_minute(read_series(args.counts), args.series_start, args.start, minutes, args.step)
    args.out.write_text(trace_csv(per_minute, args.scale), encoding="utf-8")
    print(f"{args.out}: {minutes} minutes, {sum(per_minute)} requests", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
