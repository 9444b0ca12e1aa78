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
from dataclasses import dataclass
from pathlib import Path

from lbcp.models.spec import DEFAULT_SCALING_POLICY
from lbcp.scaling.policies import POLICIES
from lbcp.scaling.sim import ForesightResult, SimResult, foresight, load_trace, simulate

TRACES = Path(__file__).resolve().parent / "traces"
BASELINE = "vote"
# The policy the default replaced: the spiky traces must not get more overload minutes than with it.
PREVIOUS_DEFAULT = "target-tracking"
NOISY_TRACE = "noisy-flat"
# Real web traffic (bench/traces/from_access_log.py): per-minute request counts of the NASA-HTTP logs.
REAL_TRACES = ("nasa-jul95", "nasa-aug95")
SPIKY_TRACES = ("flash-crowd", "step-spike", "noisy-flat")
MAX_FLAPS_PER_DAY = 2.0
MAX_X_FORESIGHT = 1.25
FORESIGHT = "foresight"
HEADERS = (
    "TRACE",
    "POLICY",
    "OVERLOAD MIN",
    "INSTANCE H",
    "xFORESIGHT",
    "ACTIONS",
    "ACTIONS/H",
    "FLAPS",
    "FLAPS/DAY",
)


@dataclass(frozen=True)
class TraceResults:
    foresight: ForesightResult
    policies: dict[str, SimResult]

    def x_foresight(self, policy: str) -> float:
        return self.policies[policy].instance_hours / self.foresight.instance_hours


def run(traces_dir: Path) -> dict[str, TraceResults]:
    results: dict[str, TraceResults] = {}
    for path in sorted(traces_dir.glob("*.csv")):
        trace = load_trace(path)
        results[path.stem] = TraceResults(foresight(trace), {name: simulate(trace, name) for name in POLICIES})
    return results


def _row(cells: tuple[str, ...] | list[str], widths: list[int]) -> str:
    return "  ".join(
        cell.ljust(width) if i < 2 else cell.rjust(width)
        for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
    )


def _label(name: str) -> str:
    return f"{name} (default)" if name == DEFAULT_SCALING_POLICY else name


def table(results: dict[str, TraceResults]) -> str:
    rows: list[list[str]] = []
    totals: dict[str, list[float]] = {name: [0, 0.0, 0, 0] for name in POLICIES}
    base_hours = 0.0
    all_minutes = sum(r.foresight.minutes for r in results.values())
    for trace, by in results.items():
        base = by.foresight
        base_hours += base.instance_hours
        rows.append(
            [trace, FORESIGHT, str(base.unavoidable_overload_minutes), f"{base.instance_hours:.1f}", "1.00"] + ["-"] * 4
        )
        for name, result in by.policies.items():
            rows.append(
                [
                    trace,
                    _label(name),
                    str(result.overload_minutes),
                    f"{result.instance_hours:.1f}",
                    f"{by.x_foresight(name):.2f}",
                    str(result.scaling_actions),
                    f"{result.actions_per_hour:.2f}",
                    str(result.flaps),
                    f"{result.flaps_per_day:.1f}",
                ]
            )
            total = totals[name]
            total[0] += result.overload_minutes
            total[1] += result.instance_hours
            total[2] += result.scaling_actions
            total[3] += result.flaps
    for name, (overload, hours, actions, flaps) in totals.items():
        rows.append(
            [
                "ALL TRACES",
                _label(name),
                f"{overload:.0f}",
                f"{hours:.1f}",
                f"{hours / base_hours:.2f}",
                f"{actions:.0f}",
                f"{actions / (all_minutes / 60):.2f}",
                f"{flaps:.0f}",
                f"{flaps / (all_minutes / 1440):.1f}",
            ]
        )
    widths = [max(len(HEADERS[i]), *(len(row[i]) for row in rows)) for i in range(len(HEADERS))]
    lines = [_row(HEADERS, widths)]
    previous = None
    for row in rows:
        if previous is not None and row[0] != previous:
            lines.append("")
        lines.append(_row(row, widths))
        previous = row[0]
    return "\n".join(lines)


def verdict(results: dict[str, TraceResults], default: str = DEFAULT_SCALING_POLICY) -> tuple[bool, list[str]]:
    """The targets the default policy is held to; each check says its numbers."""
    synthetic = {name: r for name, r in results.items() if name not in REAL_TRACES}
    base_overload = sum(r.policies[BASELINE].overload_minutes for r in synthetic.values())
    base_hours = sum(r.policies[BASELINE].instance_hours for r in synthetic.values())
    overload = sum(r.policies[default].overload_minutes for r in synthetic.values())
    hours = sum(r.policies[default].instance_hours for r in synthetic.values())
    checks: list[tuple[bool, str]] = [
        (
            overload * 2 <= base_overload,
            f"synthetic traces: overload minutes {overload} vs {base_overload} for {BASELINE}"
            f" ({(overload - base_overload) / max(base_overload, 1):+.0%}; goal: at most half)",
        ),
        (
            hours <= base_hours,
            f"synthetic traces: instance hours {hours:.1f} vs {base_hours:.1f} for {BASELINE}"
            f" ({(hours - base_hours) / base_hours:+.1%}; goal: no more)",
        ),
    ]
    if NOISY_TRACE in results:
        noisy_flaps = results[NOISY_TRACE].policies[default].flaps
        checks.append((noisy_flaps == 0, f"flaps on {NOISY_TRACE}: {noisy_flaps} (goal: 0)"))
    for name in REAL_TRACES:
        if name not in results:
            continue
        result, ratio = results[name].policies[default], results[name].x_foresight(default)
        checks.append(
            (
                result.flaps_per_day <= MAX_FLAPS_PER_DAY,
                f"{name}: {result.flaps_per_day:.1f} flaps/day ({result.flaps} in {result.minutes / 1440:g} days;"
                f" goal: at most {MAX_FLAPS_PER_DAY:g})",
            )
        )
        checks.append(
            (
                ratio <= MAX_X_FORESIGHT,
                f"{name}: x{ratio:.2f} the instance hours of perfect foresight"
                f" ({result.instance_hours:.1f} vs {results[name].foresight.instance_hours:.1f};"
                f" goal: at most x{MAX_X_FORESIGHT:g})",
            )
        )
    if default != PREVIOUS_DEFAULT:
        for name in SPIKY_TRACES:
            if name not in results:
                continue
            mine = results[name].policies[default].overload_minutes
            theirs = results[name].policies[PREVIOUS_DEFAULT].overload_minutes
            checks.append(
                (mine <= theirs, f"{name}: {mine} overload minutes vs {theirs} for {PREVIOUS_DEFAULT} (goal: no more)")
            )
    return all(ok for ok, _ in checks), [f"{'ok  ' if ok else 'FAIL'} {text}" for ok, text in checks]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--traces", type=Path, default=TRACES, help="folder of t,load CSV traces")
    parser.add_argument("--json", action="store_true", help="print {trace: {policy: numbers}}")
    args = parser.parse_args(argv)
    results = run(args.traces)
    if args.json:
        document = {
            trace: {
                FORESIGHT: {
                    "instanceHours": round(by.foresight.instance_hours, 3),
                    "unavoidableOverloadMinutes": by.foresight.unavoidable_overload_minutes,
                },
                **{
                    name: {**result.to_json(), "xForesight": round(by.x_foresight(name), 3)}
                    for name, result in by.policies.items()
                },
            }
            for trace, by in results.items()
        }
        print(json.dumps(document, indent=2))
        return 0
    print(table(results))
    ok, lines = verdict(results)
    print()
    print(f"default policy: {DEFAULT_SCALING_POLICY}")
    for line in lines:
        print("  " + line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
