"""What the reconciler needs from the outside world, as small interfaces.

The AWS implementations live in adapters (EC2 in ``observer.py``, the entry in
``lbcp.entry``, Step Functions in ``lifecycle_port.py``); tests and the
simulated world of the property tests provide their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from lbcp.models.lbvm import Lbvm
from lbcp.models.lifecycle import LifecycleInput
from lbcp.models.resource import LoadBalancerRecord
from lbcp.reconcile.observed import EntryView, ObservedInstance, ObservedNetworkInterface


class ComputePort(Protocol):
    def observe(self) -> tuple[list[ObservedInstance], list[ObservedNetworkInterface]]:
        """Every instance and interface carrying our product tag (paginated, all load balancers)."""
        ...

    def terminate_instance(self, load_balancer_id: str, instance_id: str) -> None:
        """Terminate, after checking the instance carries this load balancer's owner tag."""
        ...

    def delete_network_interface(self, load_balancer_id: str, network_interface_id: str) -> None: ...

    def availability_zone(self, subnet_id: str) -> str | None:
        """The subnet's Availability Zone (for status and events)."""
        ...


class EntryPort(Protocol):
    def observe(self, records: Sequence[LoadBalancerRecord], verify: Iterable[str]) -> dict[str, EntryView]:
        """The entry of each load balancer; registrations only for the ids in ``verify``."""
        ...

    def ensure(self, record: LoadBalancerRecord) -> EntryView: ...

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

    def complete(self, token: str, output: dict[str, Any]) -> bool:
        """Complete a waiting callback; False when the token is no longer waited on."""
        ...


class LaunchSettingsPort(Protocol):
    def image_id(self, record: LoadBalancerRecord) -> str: ...

    def user_data(self, record: LoadBalancerRecord, lbvm: Lbvm) -> str:
        """The instance's user data (plain text; the executor encodes it)."""
        ...
