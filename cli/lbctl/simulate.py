"""``lbctl simulate``: what a scaling policy would have done on a load trace (offline, no API).

The replay is ``lbcp.scaling.sim``: the production policies and guards, a
fleet model with launch latency and per-LBVM capacity, one evaluation a minute.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lbctl.argtypes import non_negative_int, positive_float, positive_int
from lbctl.documents import load_document
from lbctl.errors import EXIT_OK, UsageError
from lbctl.output import fields

if TYPE_CHECKING:
    from lbcp.models.spec import Scaling
    from lbcp.scaling.sim import SimResult

POLICY_CHOICES = ("default", "vote", "target-tracking", "step", "noise-aware")

EPILOG = """\
The trace is a CSV file with the header t,load: t in seconds from the start,
load in requests per second (the load holds until the next sample).

Model: one LBVM serves --capacity requests/s at 100% CPU; a new LBVM serves
--launch-latency seconds after the decision; a scale-in victim stops serving
at once and is billed for --drain seconds; the policy runs once a minute on
metrics --metric-lag periods old. The fleet starts at --initial LBVMs (default:
enough to serve the first minute at 60% CPU).

Reported: overload minutes (minutes whose peak offered load exceeds routable
capacity), instance hours (launch to termination), scaling actions (changes of
desired capacity) and flaps (an action less than 15 minutes after one in the
other direction). --json prints exactly these four as one object.

examples:
  lbctl simulate --trace bench/traces/flash-crowd.csv --policy vote
  lbctl simulate --trace traffic.csv --policy default --spec web.yaml --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trace", required=True, metavar="TRACE.csv", help="load trace: CSV with header t,load")
    parser.add_argument("--policy", choices=POLICY_CHOICES, default="default", help="(default: default)")
    parser.add_argument(
        "--capacity", type=positive_float, default=1000.0, metavar="RPS", help="requests/s one LBVM serves (1000)"
    )
    parser.add_argument("--spec", metavar="FILE", help="a spec, or its scaling section, whose settings to use")
    parser.add_argument("--min", type=positive_int, metavar="N", help="capacity.min (spec's, else 2)")
    parser.add_argument("--max", type=positive_int, metavar="N", help="capacity.max (spec's, else 40)")
    parser.add_argument("--initial", type=positive_int, metavar="N", help="LBVMs serving at the start")
    parser.add_argument("--launch-latency", type=non_negative_int, default=180, metavar="SECONDS", help="(180)")
    parser.add_argument("--drain", type=non_negative_int, default=60, metavar="SECONDS", help="(60)")
    parser.add_argument("--metric-lag", type=non_negative_int, default=1, metavar="PERIODS", help="(1)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="scale-in victim choice (0)")
    parser.add_argument("--actions", action="store_true", help="also list every scaling action and its explanation")
    parser.add_argument("--plot", metavar="OUT.png", help="draw load, capacity and decisions (needs matplotlib)")


def _settings(path: str | None) -> tuple[Scaling | None, dict[str, Any]]:
    """The scaling section and capacity of --spec (a full spec or a scaling section)."""
    if path is None:
        return None, {}
    from pydantic import ValidationError

    from lbcp.models.spec import Scaling

    document = load_document(path)
    if not isinstance(document, dict):
        raise UsageError(f"{path}: must be a spec or a scaling section (a mapping)")
    section = document.get("scaling", {} if "capacity" in document or "name" in document else document)
    try:
        scaling = Scaling.model_validate(section)
    except ValidationError as exc:
        problems = "; ".join(
            f"scaling.{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise UsageError(f"{path}: {problems}") from None
    capacity = document.get("capacity")
    return scaling, capacity if isinstance(capacity, dict) else {}


def cmd_simulate(args: argparse.Namespace, as_json: bool) -> int:
    from lbcp.scaling.sim import FleetModel, TraceError, load_trace, simulate

    scaling, capacity = _settings(args.spec)
    minimum = args.min or _bound(capacity.get("min"), 2)
    maximum = args.max or _bound(capacity.get("max"), 40)
    if minimum > maximum:
        raise UsageError(f"--min ({minimum}) must not exceed --max ({maximum})")
    try:
        trace = load_trace(Path(args.trace))
    except TraceError as exc:
        raise UsageError(str(exc)) from None
    model = FleetModel(
        capacity_rps=args.capacity,
        launch_latency_seconds=args.launch_latency,
        drain_seconds=args.drain,
        minimum=minimum,
        maximum=maximum,
        initial=None if args.initial is None else max(minimum, min(maximum, args.initial)),
        metric_lag=args.metric_lag,
        seed=args.seed,
    )
    result = simulate(trace, args.policy, scaling, model)
    if args.plot is not None:
        from lbctl.plot import draw

        label = f"{args.policy} ({result.policy})" if args.policy == "default" else result.policy
        draw(result, model.capacity_rps, f"{Path(args.trace).name}: {label}", Path(args.plot))
    if as_json:
        sys.stdout.write(json.dumps(result.to_json()) + "\n")
        return EXIT_OK
    sys.stdout.write(render(result, args, model) + "\n")
    return EXIT_OK


def _bound(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else default


def render(result: SimResult, args: argparse.Namespace, model: Any) -> str:
    label = f"{args.policy} ({result.policy})" if args.policy == "default" else result.policy
    hours, minutes = divmod(result.minutes, 60)
    lines = [
        f"Simulated {hours}h{minutes:02d}m of {Path(args.trace).name} with the {label} policy:",
        fields(
            [
                ("Overload minutes", f"{result.overload_minutes}  (peak offered load above routable capacity)"),
                ("Instance hours", f"{result.instance_hours:.2f}"),
                ("Scaling actions", result.scaling_actions),
                ("Flaps", f"{result.flaps}  (a scale-out and a scale-in within 15 minutes)"),
            ],
            indent="  ",
        ),
        (
            f"Fleet: {model.capacity_rps:g} requests/s per LBVM, {model.minimum}-{model.maximum} LBVMs, "
            f"launch {model.launch_latency_seconds}s, drain {model.drain_seconds}s, "
            f"metrics {model.metric_lag} period(s) late"
        ),
    ]
    if args.actions:
        lines.append("Actions:" if result.actions else "Actions: none")
        for action in result.actions:
            at = f"{action.time_seconds // 3600:02d}:{action.time_seconds // 60 % 60:02d}"
            lines.append(f"  {at}  {action.message}")
    return "\n".join(lines)
