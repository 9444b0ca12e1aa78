"""Conditions of a load balancer, and the phase derived from them (pure).

Kubernetes style: each condition answers one question about the load balancer
with ``True``, ``False`` or ``Unknown``, a reason from a fixed vocabulary
(``lbcp.models.status.ConditionReason``) and a sentence with the numbers.

=====================  ===============================================================
EntryReady             everything the entry needs exists (target groups, listeners, SG)
CapacityMet            at least the desired capacity is Routable
ConfigApplied          every Routable LBVM runs the config version it is told
                       (Unknown with none Routable: nothing to tell)
RolloutProgressing     LBVMs remain to be replaced onto the template the fleet converges on
ScalingLimited         the scaler wanted to move and something held it (capacity.max or
                       .min, missing metrics, cooldown, stabilization, pool safeguards)
Degraded               serving with less than it should: unroutable LBVMs, fewer routable
                       than desired, an incomplete entry, agents reporting errors
Ready                  EntryReady, CapacityMet, ConfigApplied not False, RolloutProgressing
                       not True; when False, the reason of the first that blocks it
=====================  ===============================================================

``lastTransitionTime`` moves only when a condition's status changes
(``stamped``): a new message alone keeps it, so a converged fleet computes the
very same conditions tick after tick and the reconciler writes nothing. For the
same reason no message holds an age ("for 3 minutes"): they name moments
("since 12:01"), which stay put.

ScalingLimited reads the scaler's memory (``ScalingState.hold``) from the load
balancer record the reconciler reads anyway, so it is computed here with the
rest, at no extra read; it lags the scaler by at most one reconciler tick (the
scaler writes its memory only when it changes, so ``hold`` is always its last
evaluation's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from lbcp.models.config_rollout import ConfigRolloutStatus
from lbcp.models.rollout import RolloutStatus
from lbcp.models.scaling import ScalingState
from lbcp.models.status import Condition, ConditionReason, ConditionStatus, ConditionType, Phase

# The order conditions are served in: Ready first, as kubectl shows it.
ORDER: tuple[ConditionType, ...] = (
    "Ready",
    "EntryReady",
    "CapacityMet",
    "ConfigApplied",
    "RolloutProgressing",
    "ScalingLimited",
    "Degraded",
)
# CapacityMet reasons that mean no LBVM serves at all (the phase is Provisioning, not Degraded).
NOTHING_ROUTABLE: frozenset[ConditionReason] = frozenset({"NoneRoutable", "NoneDesired"})

# The scaler's hold keys (``lbcp.scaling.evaluate``, the policies) as ScalingLimited reasons.
_HOLDS: dict[str, ConditionReason] = {
    "max": "AtMaximum",
    "min": "AtMinimum",
    "missing-metrics": "MetricsMissing",
    "cooldown": "CoolingDown",
    "stabilizing": "Stabilizing",
    "warming-up": "WarmingUp",
    "pool-short": "PoolShort",
    "min-per-zone": "MinPerZone",
}


@dataclass(frozen=True)
class Draft:
    """A condition before its transition time is known."""

    type: ConditionType
    status: ConditionStatus
    reason: ConditionReason
    message: str


@dataclass(frozen=True)
class Facts:
    """What the status rule counted, as plain values (the LBVMs that this plan drains already left)."""

    desired: int
    routable: int
    entry_ready: bool
    starting: Sequence[datetime] = ()  # when each starting LBVM entered its state
    launching: int = 0  # launches planned in this tick (no record yet)
    unroutable: Sequence[datetime] = ()
    draining: int = 0
    # Routable LBVMs not on the config version they are told, and the version most are told.
    outdated: int = 0
    told_version: int | None = None
    to_replace: int = 0
    template: str = ""  # what the fleet converges on, in words
    rollout: RolloutStatus | None = None
    rollout_held_back: bool = False
    config_rollout: ConfigRolloutStatus | None = None
    config_held_back: bool = False
    generation: int = 1
    agent_errors: Sequence[tuple[str, str]] = ()  # (LBVM id, error) of LBVMs that serve
    scaling: ScalingState = field(default_factory=ScalingState)
    capacity_min: int = 0
    capacity_max: int = 0
    cooldown: timedelta = timedelta(minutes=10)
    # The reconciler's failure streak at this generation (``lbcp.reconcile.backoff``): consecutive attempts
    # that failed (a launch refused by EC2, a job AWS keeps rejecting), since when, the last error, and when
    # the next attempt is due. From FAILED_AFTER of them, a fleet that is not Ready is Failed.
    failures: int = 0
    failing_since: datetime | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    # LBVMs of this generation that ended without ever serving (EC2 refused the launch, or no healthy
    # heartbeat came), since the last one that served: when each was launched, and what ended the last.
    failed_launches: Sequence[datetime] = ()
    last_launch_failure: str | None = None


def clock(moment: datetime) -> str:
    """A moment as messages name it: 12:01 (UTC, like every stored time)."""
    return f"{moment.astimezone(UTC):%H:%M}"


def _since(moments: Sequence[datetime]) -> str:
    return f" since {clock(min(moments))}" if moments else ""


def capacity_text(facts: Facts) -> str:
    """``3 of 4 LBVMs routable; 1 starting since 12:01``: the counts behind CapacityMet and Degraded."""
    text = f"{facts.routable} of {facts.desired} LBVMs routable"
    if facts.starting:
        text += f"; {len(facts.starting)} starting{_since(facts.starting)}"
    if facts.launching:
        text += f"; {facts.launching} to launch now"
    if facts.unroutable:
        text += f"; {len(facts.unroutable)} unroutable{_since(facts.unroutable)}"
    if facts.draining:
        text += f"; {facts.draining} draining"
    return text


def entry_ready(facts: Facts) -> Draft:
    if facts.entry_ready:
        return Draft(
            "EntryReady", "True", "EntryComplete", "the entry's target groups, listeners and security group exist"
        )
    return Draft(
        "EntryReady",
        "False",
        "EntryIncomplete",
        "the entry is incomplete: the reconciler creates what it lacks (target groups, listeners, security group)",
    )


def capacity_met(facts: Facts) -> Draft:
    text = capacity_text(facts)
    if facts.routable >= facts.desired:
        return Draft("CapacityMet", "True", "NoneDesired" if facts.routable == 0 else "CapacityMet", text)
    reason: ConditionReason
    if facts.routable == 0:
        reason = "NoneRoutable"
    elif facts.unroutable:
        reason = "LbvmsUnroutable"
    elif len(facts.starting) + facts.launching >= facts.desired - facts.routable:
        reason = "LbvmsStarting"  # the gap is being filled
    else:
        reason = "BelowCapacity"  # and nothing under way fills it yet
    return Draft("CapacityMet", "False", reason, text)


def config_applied(facts: Facts) -> Draft:
    version = facts.told_version
    told = f"config version {version}" if version is not None else "their config version"
    if facts.outdated:
        rolling = facts.config_rollout is not None and facts.config_rollout.active
        text = f"{facts.outdated} of {facts.routable} routable LBVMs not yet on the config they are told"
        if rolling and facts.config_rollout is not None:
            text += f" (config rollout {facts.config_rollout.id}: {facts.config_rollout.progress})"
        return Draft("ConfigApplied", "False", "ConfigRollingOut" if rolling else "ConfigPending", text)
    if facts.routable == 0:
        return Draft("ConfigApplied", "Unknown", "NoRoutableLbvms", f"no routable LBVM runs {told} yet")
    held = facts.config_rollout
    if facts.config_held_back and held is not None:
        # The fleet runs what it is told; what it is told is not what the spec asks for (the gap, in words).
        return Draft(
            "ConfigApplied",
            "True",
            "ConfigHeldBack",
            f"{facts.routable} of {facts.routable} routable LBVMs run config version {held.from_version}; the spec "
            f"asks for version {facts.generation}, whose config rollout {held.id} rejected it: change the spec "
            "to try again",
        )
    return Draft(
        "ConfigApplied", "True", "ConfigApplied", f"{facts.routable} of {facts.routable} routable LBVMs run {told}"
    )


def rollout_progressing(facts: Facts) -> Draft:
    rollout = facts.rollout
    if facts.to_replace:
        text = f"{facts.to_replace} LBVM(s) to replace onto {facts.template}"
        if rollout is not None and rollout.active:
            text += f" (rollout {rollout.id}: {rollout.progress}"
            text += f"; waiting for {rollout.waiting_for})" if rollout.waiting_for else ")"
            reason: ConditionReason = "RolloutPaused" if rollout.state == "Paused" else "Replacing"
            return Draft("RolloutProgressing", "True", reason, text)
        return Draft("RolloutProgressing", "True", "Replacing", text)
    if rollout is None:
        return Draft("RolloutProgressing", "False", "NoRollout", f"every LBVM runs {facts.template}")
    if facts.rollout_held_back:
        return Draft(
            "RolloutProgressing",
            "False",
            "RolloutRejected",
            f"the spec asks for {rollout.to_template.description}, which rollout {rollout.id} rejected: running "
            f"{rollout.from_template.description}; change the instance or proxy in the spec to try again",
        )
    if rollout.active:
        waiting = f"; waiting for {rollout.waiting_for}" if rollout.waiting_for else ""
        return Draft(
            "RolloutProgressing",
            "False",
            "RolloutWaiting",
            f"rollout {rollout.id} {rollout.state}, nothing to replace now{waiting}",
        )
    if rollout.state == "Succeeded":
        return Draft(
            "RolloutProgressing", "False", "RolloutComplete", f"rollout {rollout.id} succeeded: {rollout.progress}"
        )
    return Draft(
        "RolloutProgressing", "False", "RolloutEnded", f"rollout {rollout.id} {rollout.state}: {rollout.message}"
    )


def scaling_limited(facts: Facts) -> Draft:
    desired, low, high = facts.desired, facts.capacity_min, facts.capacity_max
    reason = _HOLDS.get(facts.scaling.hold or "")
    if reason is None:
        return Draft(
            "ScalingLimited", "False", "WithinBounds", f"desired capacity {desired}, within capacity {low} to {high}"
        )
    texts: dict[ConditionReason, str] = {
        "AtMaximum": f"desired capacity {desired} is capacity.max {high}: the scaler asks for more",
        "AtMinimum": f"desired capacity {desired} is capacity.min {low}: the scaler would scale in",
        "MetricsMissing": f"kept {desired}: no scale-in while metrics are missing or stale",
        "Stabilizing": f"kept {desired}: scale-in waits for the stabilization window",
        "WarmingUp": f"kept {desired}: LBVMs launched last are still warming up",
        "PoolShort": f"kept {desired}: no scale-in while fewer LBVMs are routable than desired",
        "MinPerZone": f"kept {desired}: scaling.minPerZone keeps it",
    }
    text = texts.get(reason, "")
    if reason == "CoolingDown":
        state = facts.scaling
        last = max((at for at in (state.last_scale_out_at, state.last_scale_in_at) if at is not None), default=None)
        text = f"kept {desired}: cooling down"
        if last is not None:
            text += f" after the change at {clock(last)}, until {clock(last + facts.cooldown)}"
    return Draft("ScalingLimited", "True", reason, text)


# Consecutive failed attempts after which a load balancer that is not Ready is Failed: one failure is
# routine (the next tick retries it), three in a row over several minutes of backoff is a fleet that
# cannot converge until something changes (capacity, the image, a permission).
FAILED_AFTER = 3


# Degraded reasons that make a load balancer that is not Ready Failed.
CANNOT_CONVERGE: frozenset[ConditionReason] = frozenset({"ReconcileFailing", "LaunchesFailing"})


def failing(facts: Facts) -> bool:
    return facts.failures >= FAILED_AFTER and facts.last_error is not None


def degraded(facts: Facts) -> Draft:
    counts = capacity_text(facts)
    if len(facts.failed_launches) >= FAILED_AFTER and facts.last_launch_failure is not None:
        return Draft(
            "Degraded",
            "True",
            "LaunchesFailing",
            f"{counts}; the last {len(facts.failed_launches)} LBVMs launched since "
            f"{clock(min(facts.failed_launches))} ended without ever serving (the last: "
            f"{facts.last_launch_failure}); the reconciler keeps launching replacements",
        )
    if failing(facts) and facts.failing_since is not None:
        next_attempt = f"; next attempt at {clock(facts.next_attempt_at)}" if facts.next_attempt_at else ""
        return Draft(
            "Degraded",
            "True",
            "ReconcileFailing",
            f"{counts}; the last {facts.failures} attempts to converge failed, since {clock(facts.failing_since)} "
            f"({facts.last_error}){next_attempt}",
        )
    if facts.unroutable:
        return Draft("Degraded", "True", "LbvmsUnroutable", counts)
    if 0 < facts.routable < facts.desired:
        return Draft("Degraded", "True", "BelowCapacity", counts)
    if facts.routable and not facts.entry_ready:
        return Draft("Degraded", "True", "EntryIncomplete", f"{counts}; the entry is incomplete")
    if facts.agent_errors:
        lbvm_id, error = facts.agent_errors[0]
        more = f" (and {len(facts.agent_errors) - 1} more)" if len(facts.agent_errors) > 1 else ""
        return Draft("Degraded", "True", "AgentErrors", f"{lbvm_id} reports: {error}{more}")
    return Draft("Degraded", "False", "AsExpected", counts)


def ready(parts: Sequence[Draft]) -> Draft:
    """Ready from the others: the reason of the first that blocks it, and every blocker's message."""
    by_type = {draft.type: draft for draft in parts}
    # Ready needs these to hold exactly; Unknown blocks too (an entry nobody could read is no entry).
    wanted: tuple[tuple[ConditionType, ConditionStatus], ...] = (
        ("EntryReady", "True"),
        ("CapacityMet", "True"),
    )
    # And these not to: ConfigApplied Unknown (no routable LBVM to tell) is CapacityMet's concern, not its own.
    refused: tuple[tuple[ConditionType, ConditionStatus], ...] = (
        ("ConfigApplied", "False"),
        ("RolloutProgressing", "True"),
    )
    blockers = [by_type[kind] for kind, status in wanted if by_type[kind].status != status]
    blockers += [by_type[kind] for kind, status in refused if by_type[kind].status == status]
    if not blockers:
        return Draft("Ready", "True", "AsDesired", by_type["CapacityMet"].message)
    message = "; ".join(f"{draft.type} is {draft.status}: {draft.message}" for draft in blockers)
    return Draft("Ready", "False", blockers[0].reason, message)


def drafts(facts: Facts) -> list[Draft]:
    parts = [
        entry_ready(facts),
        capacity_met(facts),
        config_applied(facts),
        rollout_progressing(facts),
        scaling_limited(facts),
        degraded(facts),
    ]
    return [ready(parts), *parts]


def deleting(message: str) -> list[Draft]:
    """While the load balancer is torn down only Ready is served: the rest describes a fleet being removed."""
    return [Draft("Ready", "False", "Deleting", message)]


def stamped(drafts: Sequence[Draft], previous: Sequence[Condition], now: datetime) -> list[Condition]:
    """Conditions with their transition times: kept from ``previous`` while the status stays, else ``now``."""
    before = {condition.type: condition for condition in previous}
    conditions = []
    for draft in drafts:
        old = before.get(draft.type)
        moved = old is None or old.status != draft.status
        conditions.append(
            Condition(
                type=draft.type,
                status=draft.status,
                reason=draft.reason,
                message=draft.message,
                last_transition_time=now if moved or old is None else old.last_transition_time,
            )
        )
    return sorted(conditions, key=lambda condition: ORDER.index(condition.type))


def phase_of(conditions: Sequence[Condition | Draft], *, deleting: bool) -> Phase:
    """The phase, from the conditions alone.

    Deleting while torn down; Active when Ready; Provisioning while nothing is
    routable; Updating when the capacity is met but LBVMs remain to be replaced
    or to apply their config; else Degraded (the Degraded condition says why).
    Failed when it is not Ready and Degraded says it cannot converge (the
    reconciler's attempts keep failing, or every LBVM launched ends without
    serving): Failed however far it got; one that is Ready while some job
    fails is still Active.
    """
    if deleting:
        return "Deleting"
    by_type = {condition.type: condition for condition in conditions}
    if by_type["Ready"].status == "True":
        return "Active"
    degraded = by_type.get("Degraded")
    if degraded is not None and degraded.reason in CANNOT_CONVERGE:
        return "Failed"
    capacity = by_type["CapacityMet"]
    if capacity.reason in NOTHING_ROUTABLE:
        return "Provisioning"
    if capacity.status == "True" and (
        by_type["ConfigApplied"].status == "False" or by_type["RolloutProgressing"].status == "True"
    ):
        return "Updating"
    return "Degraded"
