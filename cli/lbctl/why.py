"""lbctl why REF [capacity|phase|LBVM_ID]: a short causal answer from stored decisions and events.

The answers are pure functions of API documents (the load balancer with its
status and conditions, its events, one LBVM's detail), so they live here in the
CLI rather than behind a new route: every fact they use is already served, and
their wording can change without changing the API. Each answer names where the
spec and what the system knows disagree (a rejected template, a held-back
config version, a capacity the account cannot launch) and what the user can do.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from lbctl.client import lb_path
from lbctl.describe import clock, conditions_of, last_change, scaling_outlook
from lbctl.errors import EXIT_OK, UsageError
from lbctl.output import NONE, parse_time, timestamp

EPILOG = (
    "  lbctl why web              why the phase is what it is (the default)\n"
    "  lbctl why web capacity     why the desired capacity is what it is, and what would move it\n"
    "  lbctl why web lbvm-0123456789ab   why that LBVM was launched, and why it is in its state"
)
TOPICS = ("phase", "capacity")

# What a user can do about a condition that keeps Ready away, by its reason.
HINTS: dict[str, str] = {
    "EntryIncomplete": "the reconciler creates what is missing on its next tick; if it stays, lbctl events REF "
    "shows EntryFailed with AWS's error",
    "NoneRoutable": "new LBVMs become routable after their agent's first healthy heartbeat; if none comes, "
    "lbctl events REF shows LaunchFailed or the pending timeout",
    "LbvmsStarting": "wait: starting LBVMs become routable after their first healthy heartbeat "
    "(within lifecycle.pendingTimeoutSeconds)",
    "LbvmsUnroutable": "an unroutable LBVM recovers or is replaced; lbctl lbvm REF LBVM_ID shows its last heartbeat",
    "BelowCapacity": "lbctl plan REF shows what the reconciler would launch now, lbctl events REF why launches fail",
    "ConfigRollingOut": "a staged config rollout is under way: lbctl get REF shows its progress",
    "ConfigPending": "the LBVMs apply their config on their next heartbeat; lbctl lbvm REF LBVM_ID shows "
    "an agent error",
    "Replacing": "a rollout replaces LBVMs onto the template the spec asks for: lbctl rollout status REF",
    "RolloutPaused": "the rollout is paused: lbctl rollout resume REF (or abort)",
    "LaunchesFailing": "EC2 refuses the launches or the LBVMs never come up: lbctl events REF shows each "
    "failure; change what the error names (instance.type, instance.imageId, subnets) with lbctl patch REF, "
    "or fix the account (capacity, quotas, the image)",
    "ReconcileFailing": "the reconciler retries with a growing backoff (a PATCH tries again at once): "
    "lbctl events REF shows ReconcileFailing with the AWS error; fix what it names (often a permission or a quota)",
}
# Gaps: the system holds the fleet somewhere the spec does not ask for, until the user acts.
GAPS = frozenset({"RolloutRejected", "ConfigHeldBack"})
_DRAINS = {
    "scale-in": "the desired capacity went down and it was drawn for scale-in",
    "replace": "it was replaced: its instance was lost, or it was stuck or unhealthy",
    "rollout": "a rollout replaced it with an LBVM on the template the spec asks for",
    "delete": "the load balancer is being deleted",
    "unhealthy": "its agent's heartbeats stopped for longer than lifecycle.unhealthyTimeoutSeconds",
    "pending-timeout": "it never sent a healthy heartbeat within lifecycle.pendingTimeoutSeconds",
    "orphan": "no record of the control plane accounted for it (an orphan)",
}
_LAUNCH_FAILURES = frozenset({"LaunchFailed", "LaunchRefused", "LifecycleStartFailed"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", metavar="REF")
    parser.add_argument("topic", metavar="capacity|phase|LBVM_ID", nargs="?", default="phase")


def run(client: Any, args: argparse.Namespace, as_json: bool) -> int:
    topic = str(args.topic)
    if topic not in TOPICS and not topic.startswith("lbvm-"):
        raise UsageError(f"why what? {topic!r}: capacity, phase or an LBVM id (lbvm-...)")
    lb = client.json("GET", lb_path(args.ref))
    lb_id = str(lb["id"])
    events: list[dict[str, Any]] = []
    detail: dict[str, Any] | None = None
    if topic == "capacity":
        page = client.json("GET", lb_path(lb_id, "events"), query={"limit": 50})
        events = [item for item in page.get("items") or [] if isinstance(item, dict)]
    elif topic.startswith("lbvm-"):
        detail = client.json("GET", lb_path(lb_id, "lbvms", topic))
    text = answer(topic, lb, events=events, detail=detail, now=datetime.now(UTC))
    if as_json:
        sys.stdout.write(json.dumps({"topic": topic, "answer": text}, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(text + "\n")
    return EXIT_OK


def answer(
    topic: str,
    lb: dict[str, Any],
    *,
    events: list[dict[str, Any]] | None = None,
    detail: dict[str, Any] | None = None,
    now: datetime,
) -> str:
    if topic == "capacity":
        return why_capacity(lb, events or [], now)
    if topic == "phase":
        return why_phase(lb)
    if detail is None:
        raise ValueError("an LBVM answer needs the LBVM's detail")
    return why_lbvm(lb, detail)


def _since(condition: dict[str, Any]) -> str:
    return clock(condition.get("lastTransitionTime"))


def _hint(reason: str, lb: dict[str, Any]) -> str | None:
    hint = HINTS.get(reason)
    return hint.replace("REF", str(lb.get("name") or lb.get("id"))) if hint else None


def why_capacity(lb: dict[str, Any], events: list[dict[str, Any]], now: datetime) -> str:
    status = lb.get("status") or {}
    capacity = lb.get("capacity") or {}
    desired = status.get("desiredCapacity")
    scaling = status.get("scaling") or {}
    conditions = conditions_of(lb)
    name = lb.get("name") or lb.get("id")
    last = last_change(lb)
    lines = []
    if last is not None and scaling.get("lastDecision"):
        lines.append(f"desired capacity is {desired} because at {clock(last)} the scaler "
                     f"{scaling['lastDecision']}")  # fmt: skip
    elif desired == capacity.get("min"):
        lines.append(f"desired capacity is {desired} because it is capacity.min, and the scaler has not changed it")
    else:
        lines.append(f"desired capacity is {desired}; the scaler has recorded no decision that set it")
    warm = scaling.get("warm")
    if isinstance(warm, dict):
        lines.append(f"a warm floor keeps at least {warm.get('floor')} until {timestamp(warm.get('expiresAt'))}"
                     + (f" ({warm['reason']})" if warm.get("reason") else ""))  # fmt: skip

    limited = conditions.get("ScalingLimited")
    if limited and limited.get("status") == "True":
        reason = limited.get("reason")
        held = f"(ScalingLimited {reason} since {_since(limited)})"
        if reason == "AtMaximum" and isinstance(desired, int):
            lines.append(
                f"it is not {desired + 1} because capacity.max is {capacity.get('max')} {held}; to allow more: "
                f"lbctl patch {name} --set capacity.max=N"
            )
        elif reason == "AtMinimum" and isinstance(desired, int):
            lines.append(
                f"it is not {desired - 1} because capacity.min is {capacity.get('min')} {held}; to allow fewer: "
                f"lbctl patch {name} --set capacity.min=N"
            )
        else:
            lines.append(f"it is held: {limited.get('message')} {held}")
    else:
        lines.append("it changes next when the scaler's policy says so: " + "; ".join(scaling_outlook(lb, now)))

    met = conditions.get("CapacityMet")
    if met and met.get("status") == "False":
        lines.append(f"the fleet does not meet it yet: {met.get('message')} (CapacityMet {met.get('reason')} "
                     f"since {_since(met)})")  # fmt: skip
        failure = next((e for e in events if e.get("reason") in _LAUNCH_FAILURES), None)
        if failure is not None:
            # The gap between the spec and the account: the spec's min or the scaler's decision cannot be launched.
            lines.append(
                f"the last launch failed at {clock(failure.get('time'))}: {failure.get('message')}; until the account "
                f"can launch it (quota, capacity, image), lower capacity.min or change instance.type"
            )
    return "\n".join(lines)


def why_phase(lb: dict[str, Any]) -> str:
    status = lb.get("status") or {}
    phase = status.get("phase")
    conditions = conditions_of(lb)
    ready = conditions.get("Ready")
    if phase == "Pending" or ready is None:
        return (
            f"phase is {phase}: the reconciler has not acted on generation {lb.get('generation')} yet "
            "(it runs every minute and on every change of the spec)"
        )
    if phase == "Deleting":
        return f"phase is Deleting: {ready.get('message')}"
    lines = []
    if ready.get("status") == "True":
        lines.append(f"phase is {phase}: Ready since {_since(ready)}: {ready.get('message')}")
    else:
        lines.append(f"phase is {phase} because Ready is False since {_since(ready)} ({ready.get('reason')}):")
        blocking = [
            c
            for kind, c in conditions.items()
            if (kind in ("EntryReady", "CapacityMet") and c.get("status") != "True")
            or (kind == "ConfigApplied" and c.get("status") == "False")
            or (kind == "RolloutProgressing" and c.get("status") == "True")
        ]
        for condition in blocking:
            lines.append(
                f"  - {condition['type']} is {condition.get('status')} ({condition.get('reason')}) since "
                f"{_since(condition)}: {condition.get('message')}"
            )
            if (hint := _hint(str(condition.get("reason")), lb)) is not None:
                lines.append(f"    what to do: {hint}")
    degraded = conditions.get("Degraded")
    if degraded and degraded.get("status") == "True":
        lines.append(f"Degraded since {_since(degraded)} ({degraded.get('reason')}): {degraded.get('message')}")
        if phase == "Failed" and (hint := _hint(str(degraded.get("reason")), lb)) is not None:
            lines.append(f"  it cannot converge as things are; what to do: {hint}")
    gaps = [c for c in conditions.values() if c.get("reason") in GAPS]
    for gap in gaps:
        lines.append(f"the spec and the fleet disagree ({gap['type']} {gap.get('reason')}): {gap.get('message')}")
    return "\n".join(lines)


def _event(detail: dict[str, Any], *reasons: str) -> dict[str, Any] | None:
    return next((e for e in detail.get("events") or [] if isinstance(e, dict) and e.get("reason") in reasons), None)


def why_lbvm(lb: dict[str, Any], detail: dict[str, Any]) -> str:
    lbvm_id = detail.get("lbvmId")
    state = detail.get("state")
    where = f"{detail.get('subnetId')}, {detail.get('availabilityZone') or NONE}"
    lines = [f"{lbvm_id} is {state} since {clock(detail.get('stateSince'))} (in {where})"]
    lines.append(
        f"launched at {clock(detail.get('createdAt'))} for generation {detail.get('launchedGeneration')} because: "
        f"{detail.get('launchReason') or NONE}"
    )
    reason = detail.get("drainReason")
    if reason:
        drained = f"drained ({reason}) from {clock(detail.get('drainRequestedAt'))}: {_DRAINS.get(reason, reason)}"
        requested = _event(detail, "DrainRequested")
        if requested is not None:
            drained += f"; the reconciler said: {requested.get('message')}"
        scaled_in = parse_time(((lb.get("status") or {}).get("scaling") or {}).get("lastScaleInAt"))
        asked = parse_time(detail.get("drainRequestedAt"))
        if reason == "scale-in" and scaled_in is not None and asked is not None and scaled_in <= asked:
            decision = ((lb.get("status") or {}).get("scaling") or {}).get("lastDecision")
            drained += f"; the scaler at {clock(scaled_in)}: {decision}"
        lines.append(drained)
    if detail.get("agentError"):
        lines.append(f"its agent last reported: {detail['agentError']}")
    if state == "Terminated" or detail.get("endReason"):
        lines.append(f"ended at {clock(detail.get('terminatedAt'))}: {detail.get('endReason') or NONE}")
    elif state in ("Pending", "Launching"):
        lines.append("it waits for its agent's first healthy heartbeat (lifecycle.pendingTimeoutSeconds)")
    elif state == "Unroutable":
        lines.append(
            f"its last heartbeat was at {clock(detail.get('lastHeartbeatAt'))}: it recovers, or is replaced after "
            "lifecycle.recoveryTimeoutSeconds"
        )
    failure = _event(detail, "LaunchFailed", "LaunchRefused", "LifecycleFailed", "DrainFailed")
    if failure is not None:
        lines.append(f"{failure.get('reason')} at {clock(failure.get('time'))}: {failure.get('message')}")
    return "\n".join(lines)
