"""One evaluation: a policy's proposal through the shared guards, explained (pure).

Guards, in order (each says in the decision's notes when it acted):

1. **Missing data never scales in**: a metric absent or stale in a subnet
   where LBVMs serve blocks any decrease.
2. **Minimum pool safeguard**: no scale-in while fewer LBVMs are Routable than
   desired (the pool is already short: launching, or replacing a broken one),
   nor below ``minPerZone`` per subnet.
3. **Warm floor**: an operator's floor holds until it expires; the expiry
   itself is recorded.
4. **Bounds**: ``capacity.min`` and ``capacity.max`` always win.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from lbcp.models.events import ScalingReason
from lbcp.models.scaling import ScalingState
from lbcp.scaling.explain import finding_text
from lbcp.scaling.model import Current, Decision, MetricsWindow, Proposal, Reading
from lbcp.scaling.policies import Policy
from lbcp.scaling.readings import read_metrics
from lbcp.scaling.settings import PolicySettings


def decide(
    policy: Policy, window: MetricsWindow, current: Current, settings: PolicySettings, now: datetime
) -> Decision:
    readings = read_metrics(window, current, settings, now)
    proposal = policy.propose(readings, current, settings, now)
    return apply_guards(policy.name, proposal, readings=readings, current=current, settings=settings, now=now)


def apply_guards(
    policy_name: str,
    proposal: Proposal,
    *,
    readings: dict[str, Reading],
    current: Current,
    settings: PolicySettings,
    now: datetime,
) -> Decision:
    previous = current.desired
    state = proposal.state or current.state
    desired = proposal.desired
    notes = list(proposal.notes)
    hold = proposal.hold
    rule = proposal.rule

    if desired < previous:
        incomplete = [r for r in readings.values() if not r.complete]
        if incomplete:
            where = "; ".join(f"{r.metric} in {', '.join(r.missing) or 'every subnet'}" for r in incomplete)
            notes.append(f"no scale-in on missing or stale metrics ({where})")
            desired, hold = previous, "missing-metrics"
    if desired < previous:
        serving = current.serving_total
        if serving is not None and serving < previous:
            notes.append(f"no scale-in while only {serving} of {previous} LBVMs are Routable")
            desired, hold = previous, "pool-short"
    zone_floor = settings.min_per_zone * len(current.subnets)
    if desired < previous and desired < zone_floor:
        notes.append(f"minPerZone keeps {zone_floor} ({settings.min_per_zone} in each of {len(current.subnets)})")
        desired = min(previous, zone_floor)
        hold = "min-per-zone" if desired == previous else hold

    warm_expired = False
    warm = state.warm
    if warm is not None and warm.expires_at <= now:
        state = state.model_copy(update={"warm": None})
        warm_expired = True
        notes.append(f"warm floor of {warm.floor} expired")
    elif warm is not None and desired < warm.floor:
        notes.append(f"warm floor {warm.floor} until {warm.expires_at.isoformat()} (policy: {desired})")
        desired = warm.floor
        rule = f"warm floor {warm.floor} ({warm.reason or 'requested by ' + (warm.requested_by or 'an operator')})"

    bounded = max(settings.minimum, min(settings.maximum, desired))
    if bounded != desired:
        bound = "max" if desired > settings.maximum else "min"
        notes.append(f"held at capacity.{bound} {bounded} (policy: {desired})")
        if bounded == previous:
            hold = bound
        desired = bounded

    if desired > previous:
        state = state.model_copy(update={"last_scale_out_at": now})
    elif desired < previous:
        state = state.model_copy(update={"last_scale_in_at": now})
    if desired != previous:
        hold = None

    reason = _reason(previous, desired, hold, state.hold, warm_expired)
    message = _message(policy_name, previous, desired, rule=rule, proposal=proposal, notes=notes)
    if desired != previous:
        state = state.model_copy(update={"last_decision": message})
    state = state.model_copy(update={"hold": hold})
    return Decision(
        policy=policy_name,
        previous=previous,
        desired=desired,
        rule=rule,
        findings=proposal.findings,
        notes=tuple(notes),
        state=state,
        reason=reason,
        message=message,
        hold=hold,
    )


def _reason(
    previous: int, desired: int, hold: str | None, previous_hold: str | None, warm_expired: bool
) -> ScalingReason | Literal["Unchanged"]:
    if desired > previous:
        return "ScaledOut"
    if desired < previous:
        return "ScaledIn"
    if warm_expired:
        return "WarmExpired"
    if hold is not None and hold != previous_hold and hold not in ("cooldown", "stabilizing", "warming-up"):
        # Worth one event when it starts (at max, metrics missing), not one a minute.
        return "ScalingHeld"
    return "Unchanged"


def _message(policy: str, previous: int, desired: int, *, rule: str, proposal: Proposal, notes: list[str]) -> str:
    if desired > previous:
        head = f"scaled out {previous} -> {desired}"
    elif desired < previous:
        head = f"scaled in {previous} -> {desired}"
    else:
        head = f"kept {desired}"
    parts = [finding_text(f) for f in proposal.findings]
    body = "; ".join(parts) if parts else "no metrics"
    tail = f"; {'; '.join(notes)}" if notes else ""
    return f"{head}: {body}; {rule} [{policy}]{tail}"


def effective_state(state: ScalingState, now: datetime) -> ScalingState:
    """The state without a warm floor that has expired (for status displays)."""
    if state.warm is not None and state.warm.expires_at <= now:
        return state.model_copy(update={"warm": None})
    return state
