"""The corrective actions a plan can contain. Each is idempotent and carries its reason.

``reason`` is the sentence a person reads in the events API ("launching an
LBVM in us-east-1b: 2 of 3 desired LBVMs are routable or starting");
``event_reason`` is the machine-readable word for it, and ``failure_reason``
the word for the job having failed (``lbcp.models.events``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lbcp.models.events import ReconcilerReason
from lbcp.models.lbvm import DrainReason
from lbcp.models.rollout import LaunchTemplate


@dataclass(frozen=True)
class Job:
    reason: str
    event_reason: ClassVar[ReconcilerReason]
    failure_reason: ClassVar[ReconcilerReason]
    warning: ClassVar[bool] = False


@dataclass(frozen=True)
class EnsureEntry(Job):
    """Create whatever part of the entry is missing (security group, NLB, target groups, DNS)."""

    event_reason: ClassVar[ReconcilerReason] = "EnsuringEntry"
    failure_reason: ClassVar[ReconcilerReason] = "EntryFailed"


@dataclass(frozen=True)
class RepairEntryDrift(EnsureEntry):
    """The entry exists but differs from the spec (a hand-added rule): converge it, saying what was found."""

    event_reason: ClassVar[ReconcilerReason] = "EntryDriftRepaired"
    failure_reason: ClassVar[ReconcilerReason] = "EntryFailed"
    warning: ClassVar[bool] = True


@dataclass(frozen=True)
class Launch(Job):
    """Write a pending marker for a new LBVM and start its lifecycle execution."""

    subnet_id: str
    availability_zone: str | None
    # What to launch: None, the spec's template; during a canary or a rollback, another.
    template: LaunchTemplate | None = None
    event_reason: ClassVar[ReconcilerReason] = "Launching"
    failure_reason: ClassVar[ReconcilerReason] = "LaunchFailed"


@dataclass(frozen=True)
class StartLifecycle(Job):
    """(Re)start the named lifecycle execution of an LBVM whose marker has none yet."""

    lbvm_id: str
    event_reason: ClassVar[ReconcilerReason] = "StartingLifecycle"
    failure_reason: ClassVar[ReconcilerReason] = "LifecycleStartFailed"


@dataclass(frozen=True)
class RequestDrain(Job):
    """Ask an LBVM's lifecycle to drain it (deregister, wait for connections, terminate)."""

    lbvm_id: str
    drain_reason: DrainReason
    # The instance is gone, so it has no connections left to wait for.
    instance_lost: bool = False
    # Take it out of the entry now, not when its lifecycle gets to it: it is not serving
    # (lost, silent, never healthy), and its lifecycle may be the thing that is stuck.
    deregister_now: bool = False
    # A scale-in victim is drawn at random from these LBVMs (ids): another tick, or a preview, may draw another.
    drawn_from: tuple[str, ...] = ()
    event_reason: ClassVar[ReconcilerReason] = "DrainRequested"
    failure_reason: ClassVar[ReconcilerReason] = "DrainRequestFailed"


@dataclass(frozen=True)
class ForceTerminate(Job):
    """Backstop for an LBVM whose lifecycle is stuck: deregister, terminate, mark Terminated.

    Its interface is deleted as an orphan once the instance is gone (it cannot be while attached).
    """

    lbvm_id: str
    # What the LBVM's record keeps as the end of its life (``Lbvm.end_reason``).
    end_reason: str
    event_reason: ClassVar[ReconcilerReason] = "ForcedTermination"
    failure_reason: ClassVar[ReconcilerReason] = "ForcedTerminationFailed"
    warning: ClassVar[bool] = True


@dataclass(frozen=True)
class TerminateInstance(Job):
    """An instance carrying our owner tags with no live LBVM record behind it."""

    instance_id: str
    event_reason: ClassVar[ReconcilerReason] = "TerminatingOrphan"
    failure_reason: ClassVar[ReconcilerReason] = "OrphanTerminationFailed"
    warning: ClassVar[bool] = True


@dataclass(frozen=True)
class DeleteNetworkInterface(Job):
    network_interface_id: str
    event_reason: ClassVar[ReconcilerReason] = "DeletingOrphanInterface"
    failure_reason: ClassVar[ReconcilerReason] = "OrphanInterfaceDeletionFailed"


@dataclass(frozen=True)
class RegisterTarget(Job):
    lbvm_id: str
    event_reason: ClassVar[ReconcilerReason] = "RegistrationRepaired"
    failure_reason: ClassVar[ReconcilerReason] = "RegistrationRepairFailed"
    warning: ClassVar[bool] = True


@dataclass(frozen=True)
class DeregisterTarget(Job):
    """Remove an entry registration (pool) or DNS record (dns) that should not be there."""

    instance_id: str | None = None
    lbvm_id: str | None = None
    event_reason: ClassVar[ReconcilerReason] = "RegistrationRepaired"
    failure_reason: ClassVar[ReconcilerReason] = "RegistrationRepairFailed"
    warning: ClassVar[bool] = True


@dataclass(frozen=True)
class TeardownEntry(Job):
    event_reason: ClassVar[ReconcilerReason] = "TearingDownEntry"
    failure_reason: ClassVar[ReconcilerReason] = "EntryTeardownFailed"


@dataclass(frozen=True)
class RemoveLoadBalancer(Job):
    """The last finalizer step: nothing of the load balancer is left but its records."""

    lbvm_ids: tuple[str, ...] = ()
    event_reason: ClassVar[ReconcilerReason] = "Deleted"
    failure_reason: ClassVar[ReconcilerReason] = "DeletionFailed"
