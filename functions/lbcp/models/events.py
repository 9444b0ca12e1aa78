"""Events: an append-only record of what the control plane decided and why."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from lbcp.models.status import StatusModel

EventType = Literal["Normal", "Warning"]

# The vocabulary of event reasons: one word per kind of decision or transition, by
# who decides it. A failure has a word of its own (LaunchFailed, not Launching with
# type Warning), so that a reader (or an alarm's filter) can tell them apart by
# reason alone. Words are added, never renamed or removed: stored events are read
# back through this type until they expire.

# The API: what a user asked for.
ApiReason = Literal[
    "Created",
    "SpecUpdated",
    "DeletionRequested",
    "WarmRequested",
    "RolloutPauseRequested",
    "RolloutResumeRequested",
    "RolloutAbortRequested",
]

# The reconciler: one pair per kind of job (``lbcp.reconcile.jobs``).
ReconcilerReason = Literal[
    "EnsuringEntry",
    "EntryFailed",
    "Launching",
    "LaunchFailed",
    "StartingLifecycle",
    "LifecycleStartFailed",
    "DrainRequested",
    "DrainRequestFailed",
    "ForcedTermination",
    "ForcedTerminationFailed",
    "TerminatingOrphan",
    "OrphanTerminationFailed",
    "DeletingOrphanInterface",
    "OrphanInterfaceDeletionFailed",
    "RegistrationRepaired",
    "RegistrationRepairFailed",
    "EntryDriftRepaired",
    "TearingDownEntry",
    "EntryTeardownFailed",
    "Deleted",
    "DeletionFailed",
    # A load balancer's attempts keep failing (``lbcp.reconcile.backoff``): said at the first failure and each
    # doubling of the streak; and once, when the streak is handed to the dead-letter queue.
    "ReconcileFailing",
    "ReconcileDeadLettered",
]

# An LBVM's lifecycle execution: its transitions, and the steps that failed.
LifecycleReason = Literal[
    "Pending",
    "Routable",
    "Recovered",
    "Unroutable",
    "Draining",
    "Terminated",
    "LaunchRefused",
    "DrainFailed",
    "LifecycleFailed",
    "AgentError",
    "BackendUnavailable",
    "BackendAvailable",
]

# The scaler: a change of desired capacity, a hold worth telling, a warm floor's end.
ScalingReason = Literal["ScaledOut", "ScaledIn", "ScalingHeld", "WarmExpired"]

# The consistency checker: a finding on this load balancer (first seen), an orphan of it swept; the automatic
# GC's quarantine of an orphan and its release.
ConsistencyReason = Literal["ConsistencyFinding", "OrphanSwept", "OrphanQuarantined", "OrphanReleased"]

# The planner's rollout decisions (``lbcp.reconcile.plan.rollout``): one per transition; and a newer
# Amazon Linux 2023 image than the fleet runs, said once per image (``lbcp.reconcile.plan.images``).
RolloutReason = Literal[
    "RolloutStarted",
    "RolloutProgressed",
    "RolloutPaused",
    "RolloutResumed",
    "RolloutSucceeded",
    "RolloutFailed",
    "RolledBack",
    "RolloutSuperseded",
    "NewerImageAvailable",
]

EventReason = Literal[ApiReason, ReconcilerReason, LifecycleReason, ScalingReason, ConsistencyReason, RolloutReason]


class Event(StatusModel):
    """One decision or transition.

    ``reason`` is a short machine-readable CamelCase word (``Created``,
    ``SpecUpdated``, ``ScaledOut``); ``message`` says the same to a person,
    with the numbers that led to it.
    """

    time: datetime
    type: EventType
    reason: EventReason
    message: str
    generation: int | None = None
    actor: str | None = None
    instance_id: str | None = None
    # The LBVM it concerns, where there is one (GET .../lbvms/{lbvmId} lists its events by it).
    lbvm_id: str | None = None
