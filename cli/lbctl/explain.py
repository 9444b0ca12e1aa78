"""lbctl plan REF and lbctl lbvm REF LBVM_ID: what the reconciler would do now, and one LBVM's story.

``plan`` prints the reconciler's plan like ``terraform plan``: the jobs it would
run (``+`` creates or registers, ``-`` drains, terminates or removes, ``~``
converges something that drifted), then each field where the desired state and
the observed one differ, as ``observed -> desired``. Nothing is acted on.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from lbctl.client import lb_path
from lbctl.errors import EXIT_OK
from lbctl.output import NONE, age, cell, fields, table, timestamp

PLAN_EPILOG = (
    "The reconciler's own planner, run by the API on a fresh observation of the account (instances,\n"
    "interfaces, the entry and its registrations). Nothing is acted on and nothing is written: it is\n"
    "a preview, and the reconciler decides again on its next tick from its own reads. A scale-in\n"
    "victim is drawn at random: the plan lists the LBVMs the draw picks from.\n\n"
    "  + launch, start, register, create     - drain, terminate, deregister, remove\n"
    "  ~ converge what drifted                fields: observed -> desired\n\n"
    "  lbctl plan web           jobs, and the fields out of sync\n"
    "  lbctl plan web --all     every field, in sync or not\n"
    "  lbctl plan web --json    the API's document"
)
LBVM_EPILOG = (
    "Why it exists (launch reason), why it is in its state (drain and end reasons, the agent's last\n"
    "error), its last heartbeat and config version, its lifecycle execution (ARN and the Step\n"
    "Functions console page), and its events, newest first.\n\n"
    "  lbctl lbvm web lbvm-0123456789ab"
)

_SIGNS = {
    "Launch": "+",
    "StartLifecycle": "+",
    "EnsureEntry": "+",
    "RegisterTarget": "+",
    "RepairEntryDrift": "~",
}


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", metavar="REF")
    parser.add_argument("--all", action="store_true", help="show every field, the ones in sync too")


def add_lbvm_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", metavar="REF")
    parser.add_argument("lbvm_id", metavar="LBVM_ID")
    parser.add_argument("--limit", type=int, default=20, metavar="N", help="events to show (default 20)")


def run_plan(client: Any, args: argparse.Namespace, as_json: bool) -> int:
    plan = client.json("GET", lb_path(args.ref, "plan"))
    if as_json:
        _print(plan)
    else:
        _out(render_plan(plan, show_all=args.all))
    return EXIT_OK


def run_lbvm(client: Any, args: argparse.Namespace, as_json: bool) -> int:
    detail = client.json("GET", lb_path(args.ref, "lbvms", args.lbvm_id))
    if as_json:
        _print(detail)
    else:
        _out(render_lbvm(detail, limit=args.limit))
    return EXIT_OK


def render_plan(plan: dict[str, Any], *, show_all: bool = False) -> str:
    phase, planned = plan.get("phase"), plan.get("plannedPhase")
    head = [
        ("Load balancer", plan.get("loadBalancerId")),
        ("Generation", plan.get("generation")),
        ("Planned at", timestamp(plan.get("plannedAt"))),
        ("Converging on", plan.get("template")),
        ("Phase", f"{cell(phase)} -> {cell(planned)}" if phase != planned else cell(phase)),
        ("Status", plan.get("message")),
    ]
    rollout = plan.get("rollout")
    if isinstance(rollout, dict):
        head.append(("Rollout", f"{rollout.get('id')} {rollout.get('state')}: {cell(rollout.get('progress'))}"))
    sections = [fields(head)]

    jobs = [job for job in plan.get("jobs") or [] if isinstance(job, dict)]
    if jobs:
        lines = ["The reconciler would:"]
        for job in jobs:
            lines.append(f"  {_SIGNS.get(str(job.get('action')), '-')} {job.get('action')}: {cell(job.get('reason'))}")
            if job.get("drawnFrom"):
                lines.append(f"      drawn at random from: {', '.join(str(i) for i in job['drawnFrom'])}")
        sections.append("\n".join(lines))
    notes = [note for note in plan.get("rolloutNotes") or [] if isinstance(note, dict)]
    if notes:
        sections.append(
            "Rollout:\n" + "\n".join(f"  {note.get('reason')}: {cell(note.get('message'))}" for note in notes)
        )

    diff = [field for field in plan.get("diff") or [] if isinstance(field, dict)]
    out_of_sync = [field for field in diff if not field.get("inSync")]
    shown = diff if show_all else out_of_sync
    if shown:
        rows = [[" " if field.get("inSync") else "~", field.get("field"), _value(field), field.get("note")]
                for field in shown]  # fmt: skip
        sections.append(
            "Desired against observed (observed -> desired):\n"
            + table(["", "FIELD", "VALUE", "NOTE"], rows, indent="  ")
        )
    in_sync = len(diff) - len(out_of_sync)
    sections.append(_summary(jobs, len(out_of_sync), in_sync, bool(plan.get("noop"))))
    return "\n\n".join(sections)


def _value(field: dict[str, Any]) -> str:
    desired = cell(field.get("desired"))
    return desired if field.get("inSync") else f"{cell(field.get('observed'))} -> {desired}"


def _summary(jobs: list[dict[str, Any]], out_of_sync: int, in_sync: int, noop: bool) -> str:
    if noop and not out_of_sync:
        return f"No changes: the reconciler would do nothing, and all {in_sync} fields are in sync."
    if not jobs:
        return (
            f"No jobs now; {out_of_sync} field(s) out of sync, {in_sync} in sync "
            "(the rest waits on a grace, a rollout step or the lifecycle)."
        )
    launches = sum(1 for job in jobs if job.get("action") == "Launch")
    drains = sum(1 for job in jobs if job.get("action") == "RequestDrain")
    other = len(jobs) - launches - drains
    return (
        f"Plan: {launches} to launch, {drains} to drain, {other} other; "
        f"{out_of_sync} field(s) out of sync, {in_sync} in sync."
    )


def render_lbvm(detail: dict[str, Any], *, limit: int = 20, now: datetime | None = None) -> str:
    heartbeat = detail.get("lastHeartbeatAt")
    state = f"{cell(detail.get('state'))} since {timestamp(detail.get('stateSince'))}"
    pairs: list[tuple[str, Any]] = [
        ("LBVM", detail.get("lbvmId")),
        ("Load balancer", detail.get("loadBalancerId")),
        ("State", state),
        ("Instance", detail.get("instanceId")),
        ("Subnet", f"{cell(detail.get('subnetId'))} ({cell(detail.get('availabilityZone'))})"),
        ("Private IP", detail.get("privateIp")),
        ("Template", detail.get("launchTemplate")),
        ("Launched", f"{timestamp(detail.get('createdAt'))} for generation {cell(detail.get('launchedGeneration'))}"),
        ("Launch reason", detail.get("launchReason")),
        ("Config version", detail.get("appliedConfigVersion")),
        ("Last heartbeat", f"{timestamp(heartbeat)} ({age(heartbeat, now)} ago)" if heartbeat else NONE),
        ("Agent", detail.get("agentState")),
        ("Connections", detail.get("activeConnections")),
    ]
    if detail.get("agentError"):
        pairs.append(("Agent error", detail["agentError"]))
    if detail.get("drainRequestedAt"):
        pairs.append(("Drain", f"{cell(detail.get('drainReason'))}, requested {timestamp(detail['drainRequestedAt'])}"))
    if detail.get("terminatedAt") or detail.get("endReason"):
        pairs.append(("Ended", f"{timestamp(detail.get('terminatedAt'))}: {cell(detail.get('endReason'))}"))
    pairs += [
        ("Waiting for", detail.get("waitingFor")),
        ("Execution", detail.get("executionArn")),
        ("Console", detail.get("executionConsoleUrl")),
    ]
    sections = [fields(pairs)]
    events = [event for event in detail.get("events") or [] if isinstance(event, dict)]
    if events:
        sections.append(
            "Events (newest first):\n"
            + table(
                ["TIME", "TYPE", "REASON", "MESSAGE"],
                [[timestamp(e.get("time")), e.get("type"), e.get("reason"), e.get("message")] for e in events[:limit]],
                indent="  ",
            )
        )
        if len(events) > limit or detail.get("eventsTruncated"):
            sections.append("(older events not shown: raise --limit, or see lbctl events)")
    else:
        sections.append("Events:\n  (none)")
    return "\n\n".join(sections)


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _print(document: Any) -> None:
    _out(json.dumps(document, indent=2, ensure_ascii=False))
