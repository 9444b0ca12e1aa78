"""The simulated world behind the reconciler's ports, so that the property tests run the real reconciler.

``Reconciler`` and ``Executor`` (``lbcp.reconcile``) take their stores and
adapters as interfaces (``lbcp.reconcile.ports``); each class here implements
one of them over a ``World``'s in-memory state, with the semantics of the AWS
adapter it stands for: conditional record writes, ExecutionAlreadyExists,
owner-tag checks at deletion time, a lease with an expiry.

Every call goes through ``CallFaults.before``, which may make it fail as AWS
calls do (throttling, a 5xx), kill the reconciler right there (a Lambda
invocation that times out or crashes between two steps of a job: its lease is
never released), or let a second reconciler tick in the middle (two runs on
one load balancer at once).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from lbcp import LB_ID_TAG_KEY, LBVM_ID_TAG_KEY, PRODUCT_TAG_KEY, PRODUCT_TAG_VALUE
from lbcp.models.events import Event
from lbcp.models.lbvm import Lbvm, LbvmConflict
from lbcp.models.lifecycle import LifecycleInput
from lbcp.models.resource import LoadBalancerRecord
from lbcp.models.rollout import RolloutRecord
from lbcp.models.status import LoadBalancerStatus
from lbcp.reconcile.compute import NotOurs
from lbcp.reconcile.observed import EntryView, ObservedInstance, ObservedNetworkInterface
from lbcp.reconcile.ports import LeaseHeld

if TYPE_CHECKING:
    from tests.fleet.world import World

# The lease a run takes (``Leases``' default): it outlives a crashed run by this much.
LEASE_DURATION = timedelta(seconds=90)

AwsErrorKind = Literal["throttle", "server-error"]
_ERROR_CODES: dict[AwsErrorKind, str] = {"throttle": "ThrottlingException", "server-error": "InternalError"}


class AwsError(Exception):
    """What botocore raises once its own retries are spent: a throttle or a 5xx."""

    def __init__(self, operation: str, kind: AwsErrorKind) -> None:
        super().__init__(f"An error occurred ({_ERROR_CODES[kind]}) when calling the {operation} operation")
        self.operation = operation
        self.kind = kind


class ReconcilerDied(BaseException):
    """The reconciler's process ends here (timeout, crash): no ``except Exception`` and no clean-up runs.

    A BaseException, so that it passes the executor's per-job ``except
    Exception`` as a real crash would; the lease is left to expire.
    """


# Every port operation by name: what ``FailCall`` may pick.
OPERATIONS: tuple[str, ...] = (
    "load_balancers.get",
    "load_balancers.list",
    "load_balancers.write_status",
    "load_balancers.remove",
    "lbvms.list_all",
    "lbvms.list_for",
    "lbvms.get",
    "lbvms.create",
    "lbvms.update",
    "lbvms.delete",
    "compute.observe",
    "compute.terminate_instance",
    "compute.delete_network_interface",
    "compute.availability_zone",
    "entry.observe",
    "entry.ensure",
    "entry.register",
    "entry.deregister",
    "entry.teardown",
    "lifecycle.start",
    "lifecycle.complete",
    "launch_settings.image_id",
    "leases.acquire",
    "leases.release",
)


@dataclass
class CallFaults:
    """Faults armed for the reconciler's calls; each fires once."""

    # operation -> how its next call fails
    failing: dict[str, AwsErrorKind] = field(default_factory=dict)
    # the reconciler dies at its n-th call of the next tick
    die_at: int | None = None
    # a second reconciler ticks right before the n-th call of the next tick
    rival_at: int | None = None
    calls: int = 0  # calls of the current tick
    # Set while a rival's tick runs: its calls neither count nor trigger anything.
    rival: Callable[[], None] | None = None
    in_rival: bool = False
    fired: list[str] = field(default_factory=list)

    def new_tick(self) -> None:
        self.calls = 0

    def before(self, operation: str) -> None:
        if self.in_rival:
            return
        index = self.calls
        self.calls += 1
        if self.rival_at is not None and index == self.rival_at and self.rival is not None:
            self.rival_at = None
            self.fired.append(f"rival tick before call {index} ({operation})")
            self.in_rival = True
            try:
                self.rival()
            finally:
                self.in_rival = False
        if self.die_at is not None and index == self.die_at:
            self.die_at = None
            self.fired.append(f"reconciler died at call {index} ({operation})")
            raise ReconcilerDied(operation)
        kind = self.failing.pop(operation, None)
        if kind is not None:
            self.fired.append(f"{operation} failed ({kind})")
            raise AwsError(operation, kind)

    def disarm(self) -> None:
        self.failing.clear()
        self.die_at = None
        self.rival_at = None


class _Port:
    def __init__(self, world: World) -> None:
        self._world = world

    def _call(self, operation: str) -> None:
        self._world.call_faults.before(operation)


# --- the records (``LoadBalancerRepository``, ``LbvmRepository``) ----------------------------------------


class RecordGone(Exception):
    """The conditional write found no record (the repository's NotFound)."""


class RecordBeingDeleted(Exception):
    """A status that is not Deleting, written to a load balancer being deleted (the repository's BeingDeleted)."""


@dataclass(frozen=True)
class RecordPage:
    items: list[LoadBalancerRecord]
    next_token: str | None = None


class WorldLoadBalancers(_Port):
    def get(self, lb_id: str) -> LoadBalancerRecord | None:
        self._call("load_balancers.get")
        record = self._world.record()
        return record if record is not None and record.id == lb_id else None

    def list(self, limit: int, token: str | None) -> RecordPage:
        self._call("load_balancers.list")
        record = self._world.record()
        return RecordPage([record] if record is not None else [])

    def get_many(self, lb_ids: Collection[str]) -> Sequence[LoadBalancerRecord]:
        # Not in ``OPERATIONS``: the world's reconciler runs full ticks only.
        self._call("load_balancers.get_many")
        record = self._world.record()
        return [record] if record is not None and record.id in lb_ids else []

    def write_status(
        self, lb_id: str, status: LoadBalancerStatus, events: Sequence[Event], rollouts: Sequence[RolloutRecord] = ()
    ) -> None:
        self._call("load_balancers.write_status")
        world = self._world
        if world.record() is None:
            raise RecordGone(lb_id)
        if world.deletion_requested_at is not None and status.phase != "Deleting":
            raise RecordBeingDeleted(lb_id)
        world.stored_status = status
        world.events.extend(events)
        for rollout in rollouts:
            world.rollout_history[rollout.id] = rollout

    def remove(self, lb_id: str, event: Event) -> None:
        self._call("load_balancers.remove")
        world = self._world
        if world.record() is None:
            return
        if world.deletion_requested_at is None:
            raise RecordGone(f"{lb_id} is not being deleted")  # the condition on deletionRequestedAt
        world.left_at_removal = world.leftovers()
        world.removed = True
        world.events.append(event)


class WorldLbvms(_Port):
    """``owner`` names the reconciler process using it, so the world can tell who decided on what."""

    def __init__(self, world: World, owner: str) -> None:
        super().__init__(world)
        self._owner = owner
        self._read: set[str] | None = None  # the ids of the last consistent read
        self._created: set[str] = set()  # what this reconciler created since

    def list_all(self, load_balancer_ids: Collection[str] | None = None) -> Iterator[Lbvm]:
        self._call("lbvms.list_all")
        every = self._world.records()
        return iter(
            every if load_balancer_ids is None else [v for v in every if v.load_balancer_id in load_balancer_ids]
        )

    def list_for(self, load_balancer_id: str) -> list[Lbvm]:
        self._call("lbvms.list_for")
        found = [lbvm for lbvm in self._world.records() if lbvm.load_balancer_id == load_balancer_id]
        self._read, self._created = {lbvm.lbvm_id for lbvm in found}, set()
        return found

    def get(self, load_balancer_id: str, lbvm_id: str) -> Lbvm | None:
        self._call("lbvms.get")
        return self._world.lbvms.get(lbvm_id)

    def create(self, lbvm: Lbvm) -> None:
        self._call("lbvms.create")
        world = self._world
        if lbvm.lbvm_id in world.lbvms:
            raise LbvmConflict(lbvm.lbvm_id)
        # A launch is decided on the consistent read before it; a marker someone else
        # created since then is a slot this launch may fill a second time.
        unseen = set(world.lbvms) - (self._read or set()) - self._created
        if unseen:
            world.stale_launches.append(f"{self._owner} launched {lbvm.lbvm_id} without seeing {sorted(unseen)}")
        self._created.add(lbvm.lbvm_id)
        world.lbvms[lbvm.lbvm_id] = lbvm
        world.lbvm_ids_ever.add(lbvm.lbvm_id)
        world.markers_created[lbvm.lbvm_id] += 1
        world.act("reconciler", "launch", lbvm.lbvm_id, lbvm.subnet_id)

    def update(self, current: Lbvm, **changes: Any) -> Lbvm:
        self._call("lbvms.update")
        world = self._world
        stored = world.lbvms.get(current.lbvm_id)
        if stored is None or stored.version != current.version:
            raise LbvmConflict(current.lbvm_id)
        updated = current.model_copy(update={**changes, "version": current.version + 1})
        Lbvm.model_validate(updated.model_dump())
        world.lbvms[current.lbvm_id] = updated
        if "drain_requested_at" in changes and stored.drain_requested_at is None:
            world.act("reconciler", "request-drain", current.lbvm_id, str(changes.get("drain_reason")))
        if changes.get("state") == "Terminated":
            world.act("reconciler", "force-terminate", current.lbvm_id, str(changes.get("end_reason")))
        return updated

    def delete(self, lbvm: Lbvm) -> None:
        self._call("lbvms.delete")
        self._world.lbvms.pop(lbvm.lbvm_id, None)


# --- EC2 (``Ec2Compute``) ------------------------------------------------------------------------------------


class WorldCompute(_Port):
    def observe(
        self, load_balancer_ids: Collection[str] | None = None
    ) -> tuple[list[ObservedInstance], list[ObservedNetworkInterface]]:
        """``Filters=[tag:lbcp:product=lbcp]`` (and ``tag:lbcp:load-balancer-id`` in the ids, if given),
        then skipped unless it has a load balancer id tag."""
        self._call("compute.observe")
        world = self._world

        def listed(tags: dict[str, str]) -> bool:
            return _listed(tags) and (load_balancer_ids is None or tags[LB_ID_TAG_KEY] in load_balancer_ids)

        instances = [
            ObservedInstance(
                instance_id=i.instance_id,
                load_balancer_id=i.tags[LB_ID_TAG_KEY],
                lbvm_id=i.tags.get(LBVM_ID_TAG_KEY),
                state=i.state,
                subnet_id=i.subnet_id,
                private_ip=i.private_ip,
                launched_at=i.launched_at,
            )
            for i in sorted(world.instances.values(), key=lambda i: i.instance_id)
            if listed(i.tags) and world.now >= i.listed_from
        ]
        interfaces = [
            ObservedNetworkInterface(
                network_interface_id=n.interface_id,
                load_balancer_id=n.tags[LB_ID_TAG_KEY],
                lbvm_id=n.tags.get(LBVM_ID_TAG_KEY),
                status=n.status,
                attached_instance_id=n.attached_to,
            )
            for n in sorted(world.interfaces.values(), key=lambda n: n.interface_id)
            if listed(n.tags)
        ]
        return instances, interfaces

    def terminate_instance(self, load_balancer_id: str, instance_id: str) -> None:
        self._call("compute.terminate_instance")
        world = self._world
        instance = world.instances.get(instance_id)
        if instance is None:
            return  # describe finds nothing: nothing to do
        if not _owned_by(instance.tags, load_balancer_id):
            world.violations.append(f"the reconciler asked to terminate {instance_id}, tags {instance.tags}")
            raise NotOurs(instance_id)
        world.terminate("reconciler", instance_id)

    def owner_of(self, instance_id: str) -> str | None:
        self._call("compute.owner_of")
        instance = self._world.instances.get(instance_id)
        return instance.tags[LB_ID_TAG_KEY] if instance is not None and _listed(instance.tags) else None

    def delete_network_interface(self, load_balancer_id: str, network_interface_id: str) -> None:
        self._call("compute.delete_network_interface")
        world = self._world
        interface = world.interfaces.get(network_interface_id)
        if interface is None:
            return
        if not _owned_by(interface.tags, load_balancer_id):
            world.violations.append(f"the reconciler asked to delete {network_interface_id}, tags {interface.tags}")
            raise NotOurs(network_interface_id)
        world.delete_interface("reconciler", network_interface_id)

    def availability_zone(self, subnet_id: str) -> str | None:
        self._call("compute.availability_zone")
        from tests.fleet.world import ZONES

        return ZONES.get(subnet_id)


def _listed(tags: dict[str, str]) -> bool:
    return tags.get(PRODUCT_TAG_KEY) == PRODUCT_TAG_VALUE and LB_ID_TAG_KEY in tags


def _owned_by(tags: dict[str, str], load_balancer_id: str) -> bool:
    """What ``Ec2Compute._require_ours`` accepts."""
    return tags.get(PRODUCT_TAG_KEY) == PRODUCT_TAG_VALUE and tags.get(LB_ID_TAG_KEY) == load_balancer_id


# --- the entry (``EntryAdapter``) ----------------------------------------------------------------------------


class WorldEntry(_Port):
    def observe(
        self, records: Sequence[LoadBalancerRecord], verify: Iterable[str], *, scoped: bool = False
    ) -> dict[str, EntryView]:
        self._call("entry.observe")
        world = self._world
        verified = set(verify)
        return {
            record.id: world.entry_view(verified=record.id in verified and world.verified())
            for record in records
            if record.id == world.lb_id
        }

    def ensure(self, record: LoadBalancerRecord, serving: Sequence[Lbvm] = ()) -> EntryView:
        self._call("entry.ensure")
        self._world.ensure_entry()
        return self._world.entry_view(verified=False)

    def register(self, record: LoadBalancerRecord, lbvm: Lbvm) -> None:
        self._call("entry.register")
        self._world.register("reconciler", lbvm)

    def deregister(self, record: LoadBalancerRecord, *, lbvm_id: str | None, instance_id: str | None) -> None:
        self._call("entry.deregister")
        self._world.deregister("reconciler", lbvm_id=lbvm_id, instance_id=instance_id)

    def teardown(self, record: LoadBalancerRecord) -> int:
        self._call("entry.teardown")
        self._world.teardown_entry()
        return self._world.entry_view(verified=False).resources_left


# --- Step Functions (``StepFunctionsLifecycle``) and launch settings ------------------------------------------


class WorldLifecycle(_Port):
    def start(self, lifecycle_input: LifecycleInput) -> str:
        self._call("lifecycle.start")
        return self._world.start_execution(lifecycle_input.lbvm_id)

    def complete(self, token: str, output: Mapping[str, Any]) -> bool:
        """The world's executions notice a drain request at their next step; no callback waits on a token."""
        self._call("lifecycle.complete")
        return False


class WorldLaunchSettings(_Port):
    def image_id(self, record: LoadBalancerRecord) -> str:
        self._call("launch_settings.image_id")
        return "ami-0123456789abcdef0"

    def user_data(self, record: LoadBalancerRecord, lbvm: Lbvm) -> str:
        return f"#!/bin/sh\n# {lbvm.lbvm_id} of {record.id}\n"


# --- the lease (``Leases``) ------------------------------------------------------------------------------------


@dataclass
class LeaseTable:
    """The lease items: load balancer id -> (owner, expiry), as the conditional put leaves them."""

    held_by: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    dead: set[str] = field(default_factory=set)  # owners whose process died: they release nothing


class WorldLeases(_Port):
    def __init__(self, world: World, owner: str) -> None:
        super().__init__(world)
        self.owner = owner

    @contextlib.contextmanager
    def held(self, load_balancer_id: str, now: datetime) -> Iterator[None]:
        self._acquire(load_balancer_id, now)
        try:
            yield
        except ReconcilerDied:
            self._world.leases.dead.add(self.owner)
            raise
        finally:
            if self.owner not in self._world.leases.dead:
                self._release(load_balancer_id)

    def _acquire(self, load_balancer_id: str, now: datetime) -> None:
        self._call("leases.acquire")
        table = self._world.leases
        holder = table.held_by.get(load_balancer_id)
        # "attribute_not_exists(pk) OR expires < :now OR owner = :me", in whole seconds as stored.
        if holder is not None and holder[0] != self.owner and int(holder[1].timestamp()) >= int(now.timestamp()):
            raise LeaseHeld(load_balancer_id)
        table.held_by[load_balancer_id] = (self.owner, now + LEASE_DURATION)

    def _release(self, load_balancer_id: str) -> None:
        self._call("leases.release")
        table = self._world.leases
        holder = table.held_by.get(load_balancer_id)
        if holder is not None and holder[0] == self.owner:
            del table.held_by[load_balancer_id]
