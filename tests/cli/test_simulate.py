"""``lbctl simulate``: offline replays of load traces (no API, no runtime)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lbctl.main import main

TRACES = Path(__file__).resolve().parents[2] / "bench" / "traces"
LBCTL = Path(sys.executable).parent / "lbctl"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["simulate", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def small_trace(tmp_path: Path) -> Path:
    # One LBVM's worth at 90% CPU for ten minutes.
    path = tmp_path / "small.csv"
    path.write_text("t,load\n" + "".join(f"{60 * m},900\n" for m in range(10)), encoding="utf-8")
    return path


def test_json_is_exactly_the_four_numbers(capsys: pytest.CaptureFixture[str], small_trace: Path) -> None:
    code, out, err = run(
        capsys,
        "--trace",
        str(small_trace),
        "--policy",
        "vote",
        "--json",
        "--min",
        "1",
        "--initial",
        "1",
        "--launch-latency",
        "120",
        "--metric-lag",
        "0",
    )
    assert (code, err) == (0, "")
    assert json.loads(out) == {"overloadMinutes": 0, "instanceHours": 0.317, "scalingActions": 1, "flaps": 0}


def test_text_output_names_the_policy_and_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--trace", str(TRACES / "step-spike.csv"), "--actions")
    assert code == 0
    assert "with the default (noise-aware) policy" in out
    assert "Overload minutes:" in out and "Flaps:" in out
    assert "Fleet: 1000 requests/s per LBVM, 2-40 LBVMs, launch 180s, drain 60s" in out
    assert "scaled out" in out and "[noise-aware]" in out


def test_capacity_changes_the_fleet(capsys: pytest.CaptureFixture[str], small_trace: Path) -> None:
    _, out, _ = run(
        capsys, "--trace", str(small_trace), "--policy", "vote", "--json", "--capacity", "500", "--min", "1"
    )
    assert json.loads(out)["overloadMinutes"] == 0  # starts with 900 / (500 x 60%) -> 3 LBVMs


def test_settings_come_from_a_spec_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = tmp_path / "web.yaml"
    spec.write_text(
        "name: web\ncapacity: {min: 2, max: 3}\nscaling:\n  policy: vote\n  cooldownSeconds: 60\n", encoding="utf-8"
    )
    _, with_spec, _ = run(
        capsys, "--trace", str(TRACES / "step-spike.csv"), "--policy", "vote", "--spec", str(spec), "--actions"
    )
    assert "2-3 LBVMs" in with_spec
    assert "held at capacity.max 3" not in with_spec  # holds are not actions
    section = tmp_path / "scaling.json"
    section.write_text(json.dumps({"cooldownSeconds": 60}), encoding="utf-8")
    code, _, _ = run(capsys, "--trace", str(TRACES / "step-spike.csv"), "--spec", str(section), "--json")
    assert code == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--trace", "/nonexistent.csv"], "No such file"),
        (["--trace", "BAD", "--policy", "pid"], "invalid choice"),
        (["--trace", "SMALL", "--min", "5", "--max", "2"], "--min (5) must not exceed --max (2)"),
        (["--trace", "SMALL", "--capacity", "0"], "must be a number above 0"),
        (["--trace", "SMALL", "--spec", "SPEC"], "scaling.tolerance"),
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], small_trace: Path, tmp_path: Path, argv: list[str], message: str
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("scaling: {tolerance: 2}\n", encoding="utf-8")
    argv = [str(small_trace) if a == "SMALL" else str(spec) if a == "SPEC" else a for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert message in err


def test_plot_draws_the_timeline_to_a_png(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "flash.png"
    code, _, _ = run(capsys, "--trace", str(TRACES / "flash-crowd.csv"), "--policy", "vote", "--plot", str(out))
    assert code == 0
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.size == (1210, 715)  # 11 x 6.5 inches at 110 dpi
        # Not a blank canvas: the lines are drawn (many distinct colours).
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is not None and len(colours) > 50


def test_a_bad_trace_names_the_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("t,load\n0,10\n60,-1\n", encoding="utf-8")
    code, _, err = run(capsys, "--trace", str(path))
    assert code == 2
    assert f"{path}:3: t and load must be finite and not negative" in err


def test_the_installed_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(LBCTL), "simulate", "--trace", str(TRACES / "noisy-flat.csv"), "--policy", "default", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)) == {"overloadMinutes", "instanceHours", "scalingActions", "flaps"}
