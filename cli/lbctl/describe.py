"""lbctl describe REF: one screen that answers most questions about a load balancer.

Built only from what the API already serves (``GET`` of the load balancer and
of its events): the spec in brief, the conditions, the LBVMs with why they are
there and why they are in their state, the scaler's last decision and what
would move it next, the rollouts, and the last events. No new AWS reads.

``scaling_outlook`` says what would change the desired capacity next in the
words of the spec's scaling policy, from the thresholds and cooldown the spec
stores (the scaler reads the same ones); ``lbctl why`` reuses it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from lbctl.argtypes import positive_int
from lbctl.client import lb_path
from lbctl.errors import EXIT_OK
from lbctl.output import NONE, age, cell, fields, parse_time, table, timestamp

EPILOG = (
    "The spec in brief, the conditions (why the phase is what it is), the LBVMs with their\n"
    "reasons, the scaler's last decision and what would change it next, the rollouts, and the\n"
    "last events. For one question at a time: lbctl why REF [capacity|phase|LBVM_ID].\n\n"
    "  lbctl describe web\n"
    "  lbctl describe web --events 20"
)
# The policy the API's "default" stands for (lbcp.models.spec.DEFAULT_SCALING_POLICY).
DEFAULT_POLICY = "noise-aware"
_UNITS = {"cpu": "%", "memory": "%", "activeConnections": " connections per LBVM"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", metavar="REF")
    parser.add_argument(
        "--events", type=positive_int, default=10, metavar="N", help="events to show, up to 100 (default 10)"
    )


def run(client: Any, args: argparse.Namespace, as_json: bool) -> int:
    lb = client.json("GET", lb_path(args.ref))
    # By id: the name may move to another load balancer between the two reads.
    page = client.json("GET", lb_path(str(lb["id"]), "events"), query={"limit": min(args.events, 100)})
    events = [item for item in page.get("items") or [] if isinstance(item, dict)]
    if as_json:
        sys.stdout.write(json.dumps({"loadBalancer": lb, "events": events}, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render(lb, events, limit=args.events) + "\n")
    return EXIT_OK


def clock(value: Any) -> str:
    """An API time (or a datetime) as 12:01 (UTC), the way conditions' messages name moments."""
    moment = value if isinstance(value, datetime) else parse_time(value)
    return moment.astimezone(UTC).strftime("%H:%M") if moment else NONE


def conditions_of(lb: dict[str, Any]) -> dict[str, dict[str, Any]]:
    status = lb.get("status") or {}
    return {c["type"]: c for c in status.get("conditions") or [] if isinstance(c, dict) and "type" in c}


def _threshold(metric: str, value: Any) -> str:
    number = f"{value:g}" if isinstance(value, (int, float)) else cell(value)
    return f"{number}{_UNITS.get(metric, '')}"


def _metrics(lb: dict[str, Any], key: str) -> list[str]:
    metrics = ((lb.get("scaling") or {}).get("metrics")) or {}
    return [
        f"{name} {'>' if key == 'scaleOutAbove' else '<'} {_threshold(name, values[key])}"
        for name, values in metrics.items()
        if isinstance(values, dict) and values.get(key) is not None
    ]


def _per_lbvm(lb: dict[str, Any], key: str) -> list[str]:
    metrics = ((lb.get("scaling") or {}).get("metrics")) or {}
    return [
        f"{name} {_threshold(name, values[key])}"
        for name, values in metrics.items()
        if isinstance(values, dict) and values.get(key) is not None
    ]


def policy_of(lb: dict[str, Any]) -> str:
    name = str((lb.get("scaling") or {}).get("policy") or "default")
    return DEFAULT_POLICY if name == "default" else name


def last_change(lb: dict[str, Any]) -> datetime | None:
    scaling = (lb.get("status") or {}).get("scaling") or {}
    moments = [parse_time(scaling.get(key)) for key in ("lastScaleOutAt", "lastScaleInAt")]
    return max((m for m in moments if m is not None), default=None)


def scaling_outlook(lb: dict[str, Any], now: datetime) -> list[str]:
    """What would change the desired capacity next, one sentence a line, from the spec's scaling section."""
    scaling = lb.get("scaling") or {}
    capacity = lb.get("capacity") or {}
    policy = policy_of(lb)
    cooldown = timedelta(seconds=int(scaling.get("cooldownSeconds") or 0))
    stabilization = int(scaling.get("scaleInStabilizationSeconds") or 0)
    out, into = _metrics(lb, "scaleOutAbove"), _metrics(lb, "scaleInBelow")
    lines: list[str]
    if policy == "vote":
        lines = [
            f"scales out by 1 when any of {', '.join(out) or NONE}",
            f"scales in by 1 when all of {', '.join(into) or NONE}",
        ]
    elif policy == "step":
        steps = ", ".join(
            f"+{step.get('add')} at {step.get('aboveByPercent'):g}% past" for step in scaling.get("steps") or []
        )
        lines = [
            f"scales out when any of {', '.join(out) or NONE} ({steps})",
            f"scales in by 1 when all of {', '.join(into) or NONE}",
        ]
    elif policy == "target-tracking":
        tolerance = float(scaling.get("tolerance") or 0) * 100
        lines = [
            f"sizes the fleet for targets per LBVM of {', '.join(_per_lbvm(lb, 'target')) or NONE} "
            f"(no change within {tolerance:g}%); scales out at once",
            f"scales in to the highest need of the last {stabilization} s",
        ]
    else:  # noise-aware
        lines = [
            f"sizes the fleet under peaks per LBVM of {', '.join(_per_lbvm(lb, 'peak')) or NONE}; scales out when "
            f"the {scaling.get('smoothingMinutes')}-minute mean of demand is "
            f"{float(scaling.get('scaleOutTolerance') or 0) * 100:g}% above capacity, or the last minute "
            f"{scaling.get('burstPercent'):g}% above",
            f"scales in only when mean + {scaling.get('noiseSigmas'):g} sigma of demand over "
            f"{scaling.get('noiseWindowSeconds')} s fits in fewer LBVMs",
        ]
    last = last_change(lb)
    if last is not None and cooldown and now < last + cooldown:
        what = "no change" if policy in ("vote", "step") else "no scale-in"
        lines.append(f"{what} before {clock(last + cooldown)} (cooldown after the change at {clock(last)})")
    elif cooldown:
        lines.append(f"no cooldown in force ({int(cooldown.total_seconds())} s after each change)")
    lines.append(f"never below capacity.min {capacity.get('min')} nor above capacity.max {capacity.get('max')}")
    warm = ((lb.get("status") or {}).get("scaling") or {}).get("warm")
    if isinstance(warm, dict):
        lines.append(f"a warm floor keeps at least {warm.get('floor')} until {timestamp(warm.get('expiresAt'))}")
    return lines


def _spec_summary(lb: dict[str, Any]) -> list[tuple[str, Any]]:
    status = lb.get("status") or {}
    capacity = lb.get("capacity") or {}
    instance = lb.get("instance") or {}
    waf = lb.get("waf") or {}
    entry = lb.get("entry") or {}
    listeners = ", ".join(
        f"{item.get('protocol')}:{item.get('port')} -> {item.get('defaultBackend')}"
        + (f" (+{len(item['rules'])} rules)" if item.get("rules") else "")
        for item in lb.get("listeners") or []
        if isinstance(item, dict)
    )
    ready = conditions_of(lb).get("Ready")
    phase = cell(status.get("phase"))
    if ready and ready.get("lastTransitionTime"):
        phase += f" (Ready {ready.get('status')} since {timestamp(ready['lastTransitionTime'])})"
    return [
        ("Name", f"{lb.get('name')} ({lb.get('id')})"),
        ("Type", lb.get("type")),
        ("Phase", phase),
        ("Status", status.get("message")),
        ("Generation", f"{lb.get('generation')} (observed {cell(status.get('observedGeneration'))})"),
        ("Listeners", listeners),
        (
            "Capacity",
            f"min {cell(capacity.get('min'))}, desired {cell(status.get('desiredCapacity'))}, "
            f"max {cell(capacity.get('max'))}",
        ),
        ("Instance", f"{cell(instance.get('type'))}, image {instance.get('imageId') or 'latest Amazon Linux 2023'}"),
        ("Proxy", lb.get("proxy")),
        ("WAF", f"enabled ({waf.get('mode')})" if waf.get("enabled") else "disabled"),
        ("Entry", f"{cell(entry.get('mode'))}, {cell((status.get('entry') or {}).get('dnsName'))}"),
    ]


def _lbvm_note(item: dict[str, Any]) -> str:
    notes = []
    if item.get("drainReason"):
        notes.append(f"drain: {item['drainReason']}")
    if item.get("agentError"):
        notes.append(f"agent error: {item['agentError']}")
    if item.get("endReason"):
        notes.append(f"ended: {item['endReason']}")
    notes.append(f"launched: {item.get('launchReason') or NONE}")
    return "; ".join(notes)


def render(lb: dict[str, Any], events: list[dict[str, Any]], *, limit: int = 10, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    status = lb.get("status") or {}
    sections = [fields(_spec_summary(lb))]

    conditions = list(conditions_of(lb).values())
    if conditions:
        sections.append(
            "Conditions:\n"
            + table(
                ["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"],
                [
                    [
                        c.get("type"),
                        c.get("status"),
                        c.get("reason"),
                        clock(c.get("lastTransitionTime")),
                        c.get("message"),
                    ]
                    for c in conditions
                ],
                indent="  ",
            )
        )
    else:
        sections.append("Conditions:\n  (none yet: the reconciler has not acted on it)")

    lbvms = [item for item in status.get("lbvms") or [] if isinstance(item, dict)]
    if lbvms:
        states = Counter(str(item.get("state")) for item in lbvms)
        summary = ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
        sections.append(
            f"LBVMs ({summary}):\n"
            + table(
                ["LBVM", "STATE", "FOR", "ZONE", "CONFIG", "WHY"],
                [
                    [
                        item.get("lbvmId"),
                        item.get("state"),
                        age(item.get("since"), now) if item.get("since") else None,
                        item.get("availabilityZone"),
                        item.get("configVersion"),
                        _lbvm_note(item),
                    ]
                    for item in lbvms
                ],
                indent="  ",
            )
        )
    else:
        sections.append("LBVMs:\n  (none)")

    scaling = status.get("scaling") or {}
    last = last_change(lb)
    pairs: list[tuple[str, Any]] = [
        ("Policy", f"{policy_of(lb)}" + (" (default)" if (lb.get("scaling") or {}).get("policy") == "default" else "")),
        ("Last decision", f"{clock(last)}: {scaling.get('lastDecision')}" if last else NONE),
    ]
    limited = conditions_of(lb).get("ScalingLimited")
    if limited and limited.get("status") == "True":
        pairs.append(("Held", f"{limited.get('reason')} since {clock(limited.get('lastTransitionTime'))}: "
                              f"{limited.get('message')}"))  # fmt: skip
    sections.append(
        "Scaling:\n"
        + fields(pairs, indent="  ")
        + "\n  Next:\n"
        + "\n".join(f"    - {line}" for line in scaling_outlook(lb, now))
    )

    rollouts = []
    rollout = status.get("rollout")
    if isinstance(rollout, dict):
        rollouts.append(
            f"  template {rollout.get('id')} {rollout.get('state')}"
            + (f" ({rollout['step']})" if rollout.get("step") else "")
            + f": {rollout.get('progress')}; {rollout.get('message')}"
            + (" [rejected]" if rollout.get("rejected") else "")
        )
    config_rollout = status.get("configRollout")
    if isinstance(config_rollout, dict):
        rollouts.append(
            f"  config {config_rollout.get('id')} {config_rollout.get('state')} "
            f"(version {config_rollout.get('fromVersion')} -> {config_rollout.get('toVersion')}): "
            f"{config_rollout.get('progress')}; {config_rollout.get('message')}"
            + (" [rejected]" if config_rollout.get("rejected") else "")
        )
    sections.append("Rollouts:\n" + ("\n".join(rollouts) if rollouts else "  (none)"))

    shown = events[:limit]
    sections.append(
        f"Events (last {len(shown)}, newest first):\n"
        + (
            table(
                ["TIME", "TYPE", "REASON", "MESSAGE"],
                [[timestamp(e.get("time")), e.get("type"), e.get("reason"), e.get("message")] for e in shown],
                indent="  ",
            )
            if shown
            else "  (none)"
        )
    )
    return "\n\n".join(sections)
