"""What the reconciler needs from the outside world, as small interfaces.

The AWS implementations live in adapters: EC2 in ``compute.py``, the public
image parameter in ``launch.py``, rollout alarms in ``alarms.py``, the entry in
``lbcp.entry``, Step Functions in ``lifecycle_port.py``, the lease in
``lease.py``, the records in ``lbcp.dal``. The simulated world of the property
tests implements every one of them in memory, so that those tests run the
real reconciler and executor.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from lbcp.models.events import Event
from lbcp.models.lbvm import Lbvm
from lbcp.models.lifecycle import LifecycleInput
from lbcp.models.resource import LoadBalancerRecord
from lbcp.models.rollout import RolloutRecord
from lbcp.models.status import LoadBalancerStatus
from lbcp.reconcile.backoff import RetryStreak
from lbcp.reconcile.observed import EntryView, ObservedAlarm, ObservedInstance, ObservedNetworkInterface


class LeaseHeld(Exception):
    """Another run holds the lease."""


class RecordPage(Protocol):
    @property
    def items(self) -> list[LoadBalancerRecord]: ...

    @property
    def next_token(self) -> str | None: ...


class LoadBalancerStore(Protocol):
    """The load balancer records, as the reconciler reads and writes them."""

    def get(self, lb_id: str) -> LoadBalancerRecord | None:
        """Strongly consistent."""
        ...

    def list(self, limit: int, token: str | None) -> RecordPage: ...

    def get_many(self, lb_ids: Collection[str]) -> Sequence[LoadBalancerRecord]:
        """The records of these load balancers that exist (strongly consistent, in as few calls as the API allows)."""
        ...

    def write_status(
        self,
        lb_id: str,
        status: LoadBalancerStatus,
        events: Sequence[Event],
        rollouts: Sequence[RolloutRecord] = (),
    ) -> None:
        """The status and the events that explain it, together (a deleting record stays Deleting).

        ``rollouts``: rollout records that changed, for the rollout history.
        """
        ...

    def remove(self, lb_id: str, event: Event) -> None:
        """The last finalizer step: the record goes, its events stay until they expire."""
        ...


class LbvmStore(Protocol):
    """The LBVM records; every update is conditional on the version read (``LbvmConflict``)."""

    def list_all(self, load_balancer_ids: Collection[str] | None = None) -> Iterator[Lbvm]:
        """Every LBVM of every load balancer, or of ``load_balancer_ids`` (eventually consistent)."""
        ...

    def list_for(self, load_balancer_id: str) -> list[Lbvm]:
        """One load balancer's LBVMs, strongly consistent."""
        ...

    def get(self, load_balancer_id: str, lbvm_id: str) -> Lbvm | None: ...

    def create(self, lbvm: Lbvm) -> None:
        """The pending marker; ``LbvmConflict`` if the id exists."""
        ...

    def update(self, current: Lbvm, **changes: Any) -> Lbvm: ...

    def delete(self, lbvm: Lbvm) -> None: ...


class LeasePort(Protocol):
    def held(self, load_balancer_id: str, now: datetime) -> AbstractContextManager[None]:
        """Hold the load balancer's lease for the block; ``LeaseHeld`` if another run holds it."""
        ...


class ComputePort(Protocol):
    def observe(
        self, load_balancer_ids: Collection[str] | None = None
    ) -> tuple[list[ObservedInstance], list[ObservedNetworkInterface]]:
        """Every instance and interface carrying our product tag (paginated, all load balancers);
        with ``load_balancer_ids``, only those carrying one of their owner tags."""
        ...

    def terminate_instance(self, load_balancer_id: str, instance_id: str) -> None:
        """Terminate, after checking the instance carries this load balancer's owner tag."""
        ...

    def delete_network_interface(self, load_balancer_id: str, network_interface_id: str) -> None: ...

    def owner_of(self, instance_id: str) -> str | None:
        """The load balancer whose owner tags the instance carries (None: not ours, or gone)."""
        ...

    def availability_zone(self, subnet_id: str) -> str | None:
        """The subnet's Availability Zone (for status and events)."""
        ...


class EntryPort(Protocol):
    def observe(
        self, records: Sequence[LoadBalancerRecord], verify: Iterable[str], *, scoped: bool = False
    ) -> dict[str, EntryView]:
        """The entry of each load balancer; registrations only for the ids in ``verify``.

        ``scoped``: read only these load balancers' resources (by name), not the account's listings.
        """
        ...

    def ensure(self, record: LoadBalancerRecord, serving: Sequence[Lbvm] = ()) -> EntryView:
        """Create or converge the entry; ``serving`` (the Routable LBVMs) carry the name through a mode switch."""
        ...

    def register(self, record: LoadBalancerRecord, lbvm: Lbvm) -> None: ...

    def deregister(self, record: LoadBalancerRecord, *, lbvm_id: str | None, instance_id: str | None) -> None:
        """By instance (pool) and/or LBVM id (dns): an LBVM's record may be long gone."""
        ...

    def teardown(self, record: LoadBalancerRecord) -> int:
        """Remove what is left of the entry; returns how many resources remain."""
        ...


class LifecyclePort(Protocol):
    def start(self, lifecycle_input: LifecycleInput) -> str:
        """Start the LBVM's lifecycle execution, named after it (idempotent); returns its ARN."""
        ...

    def complete(self, token: str, output: Mapping[str, Any]) -> bool:
        """Complete a waiting callback; False when the token is no longer waited on."""
        ...


class LaunchSettingsPort(Protocol):
    def image_id(self, record: LoadBalancerRecord) -> str: ...

    def user_data(self, record: LoadBalancerRecord, lbvm: Lbvm) -> str:
        """The instance's user data (plain text; the executor encodes it)."""
        ...


class ImagePort(Protocol):
    def new_tick(self) -> None:
        """Forget what was read: the next ``latest`` reads the parameter again (once per tick)."""

    def latest(self, architecture: str) -> str:
        """The AMI the public Amazon Linux 2023 parameter names now for this architecture."""
        ...


class AlarmPort(Protocol):
    def read(self, names: Iterable[str]) -> dict[str, ObservedAlarm]:
        """The named alarms' states, in as few calls as the API allows; a name that does not exist is absent."""
        ...


class RetryStore(Protocol):
    """The failure streaks of load balancers (``lbcp.reconcile.backoff``), kept apart from their records."""

    def list_all(self) -> Iterator[RetryStreak]:
        """Every streak (one paginated listing; eventually consistent)."""
        ...

    def get_many(self, load_balancer_ids: Collection[str]) -> dict[str, RetryStreak]:
        """The streaks of these load balancers, by id (absent: not failing)."""
        ...

    def save(self, previous: RetryStreak | None, streak: RetryStreak, event: Event | None) -> bool:
        """Store ``streak`` and ``event`` together if the stored streak is still ``previous``; False if not."""
        ...

    def clear(self, streak: RetryStreak) -> None:
        """Delete the streak if it is still the stored one."""
        ...


class DeadLetterPort(Protocol):
    def send(self, record: LoadBalancerRecord, streak: RetryStreak) -> None:
        """Hand a load balancer that keeps failing to a person: one message per streak."""
        ...
