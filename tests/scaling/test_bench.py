"""The shipped traces and the benchmark the default policy was chosen on."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from lbcp.scaling.sim import parse_trace

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def test_at_least_six_traces_ship_and_each_parses() -> None:
    names = {path.stem for path in (BENCH / "traces").glob("*.csv")}
    assert {"step-spike", "ramp", "diurnal", "flash-crowd", "noisy-flat", "slow-decline"} <= names
    for name in names:
        assert parse_trace((BENCH / "traces" / f"{name}.csv").read_text(encoding="utf-8")).minutes > 60


def test_the_traces_are_what_the_generator_makes() -> None:
    generator = _load(BENCH / "traces" / "generate.py")
    for name, make in generator.TRACES.items():
        expected = "t,load\n" + "".join(f"{t},{max(0.0, load):.1f}\n" for t, load in make())
        assert (BENCH / "traces" / f"{name}.csv").read_text(encoding="utf-8") == expected, name


def test_the_default_policy_meets_its_goal(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _load(BENCH / "scaling_policies.py")
    assert bench.main([]) == 0
    out = capsys.readouterr().out
    assert "ALL TRACES" in out
    assert "FAIL" not in out


def test_access_logs_become_per_minute_traces(tmp_path: Path) -> None:
    convert = _load(BENCH / "traces" / "from_access_log.py")
    log = tmp_path / "access.log"
    log.write_text(
        '199.72.81.55 - - [01/Jul/1995:00:00:01 -0400] "GET /history/apollo/ HTTP/1.0" 200 6245\n'
        'a.example - - [01/Jul/1995:00:00:59 -0400] "GET / HTTP/1.0" 200 1\n'
        "a line without a time\n"
        'b.example - - [01/Jul/1995:00:02:00 -0400] "GET / HTTP/1.0" 304 0\n'
        'c.example - - [30/Jun/1995:23:59:59 -0400] "GET / HTTP/1.0" 200 1\n',
        encoding="utf-8",
    )
    out = tmp_path / "trace.csv"
    assert convert.main(["clf", str(log), "--start", "1995-07-01T00:00", "--days", "0.0021", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == "t,load\n0,160.0\n60,0.0\n120,80.0\n"


def test_a_per_second_series_is_summed_per_minute() -> None:
    convert = _load(BENCH / "traces" / "from_access_log.py")
    from datetime import datetime

    # Numbers from 00:00:01: the first 59 fall in minute 0, the next 60 in minute 1.
    totals = convert.series_per_minute([1] * 120, datetime(1995, 7, 1, 0, 0, 1), datetime(1995, 7, 1), 3)
    assert totals == [59, 60, 1]


def test_the_nasa_traces_are_two_weeks_of_minutes() -> None:
    for name in ("nasa-jul95", "nasa-aug95"):
        trace = parse_trace((BENCH / "traces" / f"{name}.csv").read_text(encoding="utf-8"))
        assert trace.minutes == 14 * 24 * 60
        assert len(trace.times) == trace.minutes  # one row a minute
