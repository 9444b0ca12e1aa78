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
