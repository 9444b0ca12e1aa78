"""Every shipped trace through every policy, side by side (the numbers behind the default policy).

    .venv/bin/python bench/scaling_policies.py [--traces bench/traces] [--json]

Fleet model: 1000 requests/s per LBVM, 2 to 40 LBVMs, 3 minutes from launch to
Routable, 1 minute of drain, metrics one period late, every policy with the
spec's default settings (``lbcp.scaling.sim.fleet`` says exactly what is
modelled). The last lines check the goal the default policy was chosen on: at
least half the seed (vote) policy's overload minutes, at no more instance
hours, and no flap on the noisy trace.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lbcp.models.spec import DEFAULT_SCALING_POLICY
from lbcp.scaling.policies import POLICIES
from lbcp.scaling.sim import SimResult, load_trace, simulate

TRACES = Path(__file__).resolve().parent / "traces"
BASELINE = "vote"
NOISY_TRACE = "noisy-flat"
HEADERS = ("TRACE", "POLICY", "OVERLOAD MIN", "INSTANCE H", "ACTIONS", "FLAPS")


def run(traces_dir: Path) -> dict[str, dict[str, SimResult]]:
    results: dict[str, dict[str, SimResult]] = {}
    for path in sorted(traces_dir.glob("*.csv")):
        trace = load_trace(path)
        results[path.stem] = {name: simulate(trace, name) for name in POLICIES}
    return results


def _row(cells: tuple[str, ...] | list[str], widths: list[int]) -> str:
    return "  ".join(
        cell.ljust(width) if i < 2 else cell.rjust(width)
        for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
    )


def table(results: dict[str, dict[str, SimResult]]) -> str:
    rows: list[list[str]] = []
    totals: dict[str, list[float]] = {name: [0, 0.0, 0, 0] for name in POLICIES}
    for trace, by_policy in results.items():
        for name, result in by_policy.items():
            label = f"{name} (default)" if name == DEFAULT_SCALING_POLICY else name
            rows.append(
                [
                    trace,
                    label,
                    str(result.overload_minutes),
                    f"{result.instance_hours:.1f}",
                    str(result.scaling_actions),
                    str(result.flaps),
                ]
            )
            total = totals[name]
            total[0] += result.overload_minutes
            total[1] += result.instance_hours
            total[2] += result.scaling_actions
            total[3] += result.flaps
    for name, (overload, hours, actions, flaps) in totals.items():
        label = f"{name} (default)" if name == DEFAULT_SCALING_POLICY else name
        rows.append(["ALL TRACES", label, f"{overload:.0f}", f"{hours:.1f}", f"{actions:.0f}", f"{flaps:.0f}"])
    widths = [max(len(HEADERS[i]), *(len(row[i]) for row in rows)) for i in range(len(HEADERS))]
    lines = [_row(HEADERS, widths)]
    previous = None
    for row in rows:
        if previous is not None and row[0] != previous:
            lines.append("")
        lines.append(_row(row, widths))
        previous = row[0]
    return "\n".join(lines)


def verdict(results: dict[str, dict[str, SimResult]], default: str = DEFAULT_SCALING_POLICY) -> tuple[bool, list[str]]:
    base_overload = sum(r[BASELINE].overload_minutes for r in results.values())
    base_hours = sum(r[BASELINE].instance_hours for r in results.values())
    overload = sum(r[default].overload_minutes for r in results.values())
    hours = sum(r[default].instance_hours for r in results.values())
    noisy_flaps = results[NOISY_TRACE][default].flaps if NOISY_TRACE in results else 0
    checks = [
        (
            overload * 2 <= base_overload,
            f"overload minutes {overload} vs {base_overload} for {BASELINE}"
            f" ({(overload - base_overload) / max(base_overload, 1):+.0%}; goal: at most half)",
        ),
        (
            hours <= base_hours,
            f"instance hours {hours:.1f} vs {base_hours:.1f} for {BASELINE}"
            f" ({(hours - base_hours) / base_hours:+.1%}; goal: no more)",
        ),
        (noisy_flaps == 0, f"flaps on {NOISY_TRACE}: {noisy_flaps} (goal: 0)"),
    ]
    return all(ok for ok, _ in checks), [f"{'ok  ' if ok else 'FAIL'} {text}" for ok, text in checks]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--traces", type=Path, default=TRACES, help="folder of t,load CSV traces")
    parser.add_argument("--json", action="store_true", help="print {trace: {policy: numbers}}")
    args = parser.parse_args(argv)
    results = run(args.traces)
    if args.json:
        print(json.dumps({t: {p: r.to_json() for p, r in by.items()} for t, by in results.items()}, indent=2))
        return 0
    print(table(results))
    ok, lines = verdict(results)
    print()
    print(f"default policy: {DEFAULT_SCALING_POLICY} (checked against {BASELINE}, all traces together)")
    for line in lines:
        print("  " + line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
