"""The planner: desired state + recorded LBVMs + observed world + now -> a ReconcilePlan (pure).

Level-triggered: the plan depends only on what is true now, never on what
happened in earlier ticks, so a lost event or a crashed run is healed by the
next tick. Most of the LBVM lifecycle (pending timeout, heartbeat loss,
recovery, draining) is driven by each LBVM's own state machine; the planner
decides how many LBVMs there should be, where, and repairs what drifted:

1. a load balancer being deleted is drained, its entry torn down, and its
   records removed once nothing is left (finalizers, in that order);
2. the entry is created when any part of it is missing;
3. LBVMs whose instance vanished behind our back are replaced at once;
4. LBVMs whose lifecycle is stuck past its own timeouts get a backstop;
5. capacity: launch to reach the desired number of routable-or-starting
   LBVMs (spread over the subnets), drain the excess (keeping AZs balanced),
   never exceeding capacity.max + rollout.maxSurge instances; LBVMs the spec
   no longer describes (a dropped subnet, another instance type, image or
   proxy) are rolled: replaced surge-first, never taking the routable count
   below desired - rollout.maxUnavailable;
6. registrations and DNS records that drifted from the LBVM states are fixed;
7. instances and interfaces that carry our tags but no live LBVM are removed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lbcp.heartbeats import PERSIST_INTERVAL as HEARTBEAT_PERSIST_INTERVAL
from lbcp.models.lbvm import DrainReason, Lbvm
from lbcp.models.resource import LoadBalancerRecord
from lbcp.models.spec import LoadBalancerSpec
from lbcp.models.status import EntryStatus, LbvmStatus, LoadBalancerStatus, Phase
from lbcp.reconcile.jobs import (
    DeleteNetworkInterface,
    DeregisterTarget,
    EnsureEntry,
    ForceTerminate,
    Job,
    Launch,
    RegisterTarget,
    RemoveLoadBalancer,
    RequestDrain,
    StartLifecycle,
    TeardownEntry,
    TerminateInstance,
)
from lbcp.reconcile.launch import launch_template
from lbcp.reconcile.observed import LoadBalancerView, ObservedInstance
from lbcp.reconcile.placement import subnets_for_launches
from lbcp.scaling.victim import LbvmRef, choose_scale_in_victims


@dataclass(frozen=True)
class PlannerSettings:
    # A marker may exist this long without an execution before the execution is (re)started.
    launch_grace: timedelta = timedelta(seconds=60)
    # EC2 lists a new instance a little after RunInstances: do not call it lost before this.
    instance_visibility_grace: timedelta = timedelta(seconds=60)
    # Registrations race with the lifecycle's own; only repair ones older than this.
    registration_grace: timedelta = timedelta(seconds=30)
    # How far past its own timeouts a lifecycle may run before the backstop acts.
    stuck_margin: timedelta = timedelta(seconds=120)
    # An orphan must be this old before it is removed (it may be a launch in flight).
    orphan_grace: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class ReconcilePlan:
    load_balancer_id: str
    jobs: tuple[Job, ...]
    status: LoadBalancerStatus

    def is_noop(self, stored: LoadBalancerStatus) -> bool:
        return not self.jobs and self.status == stored


@dataclass
class _Fleet:
    """The LBVM records of one load balancer, sorted by what the planner needs."""

    records: Sequence[Lbvm]
    routable: list[Lbvm] = field(default_factory=list)
    starting: list[Lbvm] = field(default_factory=list)  # Launching, Pending
    unroutable: list[Lbvm] = field(default_factory=list)
    draining: list[Lbvm] = field(default_factory=list)  # Draining, or a drain requested
    terminated: list[Lbvm] = field(default_factory=list)

    def __post_init__(self) -> None:
        for lbvm in self.records:
            if lbvm.state == "Terminated":
                self.terminated.append(lbvm)
            elif lbvm.state == "Draining" or lbvm.drain_requested_at is not None:
                self.draining.append(lbvm)
            elif lbvm.state == "Routable":
                self.routable.append(lbvm)
            elif lbvm.state == "Unroutable":
                self.unroutable.append(lbvm)
            else:
                self.starting.append(lbvm)

    @property
    def not_terminated(self) -> list[Lbvm]:
        return [lbvm for lbvm in self.records if lbvm.state != "Terminated"]


def plan(
    record: LoadBalancerRecord,
    lbvms: Sequence[Lbvm],
    observed: LoadBalancerView,
    now: datetime,
    *,
    rng: random.Random,
    settings: PlannerSettings | None = None,
) -> ReconcilePlan:
    settings = settings or PlannerSettings()
    fleet = _Fleet(lbvms)
    instances = {i.instance_id: i for i in observed.instances}
    jobs: list[Job] = []

    if record.deletion_requested_at is not None:
        backstops = _stuck_lifecycles(record, fleet, now, settings, deleting=True)
        handled = {job.lbvm_id for job in backstops if isinstance(job, (RequestDrain, ForceTerminate))}
        jobs += backstops
        jobs += _finalize(record, fleet, observed, instances, handled)
    else:
        if not observed.entry.ready:
            jobs.append(EnsureEntry(reason="the entry is incomplete; creating what is missing"))
        lost = _lost_instances(fleet, instances, now, settings)
        jobs += lost
        jobs += _stuck_lifecycles(record, fleet, now, settings)
        handled = {job.lbvm_id for job in jobs if isinstance(job, (RequestDrain, ForceTerminate))}
        jobs += _capacity(record, fleet, observed, handled, rng)
        jobs += _registration_drift(record, fleet, observed, now, settings)
    jobs += _orphans(fleet, observed, now, settings)
    return ReconcilePlan(record.id, tuple(jobs), _status(record, fleet, observed, jobs))


# --- 1. finalizers -----------------------------------------------------------------


def _finalize(
    record: LoadBalancerRecord,
    fleet: _Fleet,
    observed: LoadBalancerView,
    instances: dict[str, ObservedInstance],
    handled: set[str],
) -> list[Job]:
    jobs: list[Job] = []
    for lbvm in fleet.routable + fleet.starting + fleet.unroutable:
        if lbvm.lbvm_id in handled:
            continue
        jobs.append(
            RequestDrain(
                reason=f"{lbvm.lbvm_id}: the load balancer is being deleted",
                lbvm_id=lbvm.lbvm_id,
                drain_reason="delete",
                instance_lost=lbvm.instance_id is not None and not _alive(instances.get(lbvm.instance_id)),
            )
        )
    if jobs or handled or fleet.draining:
        return jobs  # entry teardown waits until every LBVM has drained
    alive = [i for i in observed.instances if i.alive]
    if alive or observed.network_interfaces:
        return []  # orphan clean-up (below) removes them first
    if observed.entry.ready or observed.entry.resources_left:
        return [TeardownEntry(reason="every LBVM is terminated; removing the entry")]
    return [
        RemoveLoadBalancer(
            reason="teardown complete: no LBVM, instance, interface or entry resource is left",
            lbvm_ids=tuple(lbvm.lbvm_id for lbvm in fleet.records),
        )
    ]


# --- 3. instances that vanished behind our back -----------------------------------------


def _alive(instance: ObservedInstance | None) -> bool:
    return instance is not None and instance.alive


def _lost_instances(
    fleet: _Fleet, instances: dict[str, ObservedInstance], now: datetime, settings: PlannerSettings
) -> list[Job]:
    jobs: list[Job] = []
    for lbvm in fleet.routable + fleet.starting + fleet.unroutable:
        if lbvm.instance_id is None:
            continue
        instance = instances.get(lbvm.instance_id)
        if instance is None and now - lbvm.state_since < settings.instance_visibility_grace:
            continue
        if not _alive(instance):
            seen = f"is {instance.state}" if instance else "no longer exists"
            jobs.append(
                RequestDrain(
                    reason=f"{lbvm.lbvm_id}: instance {lbvm.instance_id} {seen} (not terminated by the control "
                    "plane); replacing it",
                    lbvm_id=lbvm.lbvm_id,
                    drain_reason="replace",
                    instance_lost=True,
                    deregister_now=True,
                )
            )
    return jobs


# --- 4. backstops for lifecycles that overran their own timeouts ----------------------------


def _stuck_lifecycles(
    record: LoadBalancerRecord, fleet: _Fleet, now: datetime, settings: PlannerSettings, *, deleting: bool = False
) -> list[Job]:
    """Backstops: each LBVM's own lifecycle normally handles these; act when it plainly has not.

    Every path ends in ForceTerminate if the lifecycle does not even drain:
    a drain request that is not carried out within the drain timeout (plus
    margins) is carried out by the reconciler itself.
    """
    lifecycle, drain = record.spec.lifecycle, record.spec.drain
    pending_bound = _seconds(lifecycle.pending_timeout_seconds) + settings.stuck_margin
    jobs: list[Job] = []
    for lbvm in fleet.starting:
        age = now - lbvm.state_since
        if lbvm.state == "Launching" and lbvm.execution_arn is None and deleting:
            # Nothing was launched for it (no execution): nothing to drain either.
            jobs.append(ForceTerminate(reason=f"{lbvm.lbvm_id}: never launched; removing it", lbvm_id=lbvm.lbvm_id))
        elif lbvm.state == "Launching" and now - lbvm.created_at > pending_bound:
            # Covers an execution that stopped before its instance existed, and one
            # that could never be (re)started: the same bound as a pending timeout.
            jobs.append(
                RequestDrain(
                    reason=f"{lbvm.lbvm_id}: still launching {int((now - lbvm.created_at).total_seconds())} s after "
                    f"the launch decision (pending timeout {lifecycle.pending_timeout_seconds} s); replacing it",
                    lbvm_id=lbvm.lbvm_id,
                    drain_reason="pending-timeout",
                    deregister_now=True,
                )
            )
        elif lbvm.state == "Launching" and lbvm.execution_arn is None and now - lbvm.created_at > settings.launch_grace:
            jobs.append(
                StartLifecycle(
                    reason=f"{lbvm.lbvm_id}: its lifecycle execution has not started "
                    f"{int((now - lbvm.created_at).total_seconds())} s after the launch decision; starting it",
                    lbvm_id=lbvm.lbvm_id,
                )
            )
        elif lbvm.state == "Pending" and age > pending_bound:
            jobs.append(
                RequestDrain(
                    reason=f"{lbvm.lbvm_id}: no healthy heartbeat {int(age.total_seconds())} s after launch "
                    f"(pending timeout {lifecycle.pending_timeout_seconds} s)",
                    lbvm_id=lbvm.lbvm_id,
                    drain_reason="pending-timeout",
                    deregister_now=True,
                )
            )
    # A Routable LBVM whose heartbeats stopped, yet whose lifecycle did not take it
    # out: heartbeats are stored at least every PERSIST_INTERVAL, so silence well past
    # the unhealthy timeout means the lifecycle is stuck.
    silence_bound = _seconds(lifecycle.unhealthy_timeout_seconds) + HEARTBEAT_PERSIST_INTERVAL + settings.stuck_margin
    for lbvm in fleet.routable:
        last_sign = lbvm.last_heartbeat_at or lbvm.state_since
        if now - last_sign > silence_bound:
            jobs.append(
                RequestDrain(
                    reason=f"{lbvm.lbvm_id}: Routable but no heartbeat for {int((now - last_sign).total_seconds())} s "
                    f"(unhealthy timeout {lifecycle.unhealthy_timeout_seconds} s); taking it out",
                    lbvm_id=lbvm.lbvm_id,
                    drain_reason="unhealthy",
                    deregister_now=True,
                )
            )
    for lbvm in fleet.unroutable:
        age = now - lbvm.state_since
        if age > _seconds(lifecycle.recovery_timeout_seconds) + settings.stuck_margin:
            jobs.append(
                RequestDrain(
                    reason=f"{lbvm.lbvm_id}: unroutable for {int(age.total_seconds())} s (recovery timeout "
                    f"{lifecycle.recovery_timeout_seconds} s)",
                    lbvm_id=lbvm.lbvm_id,
                    drain_reason="unhealthy",
                    deregister_now=True,
                )
            )
    for lbvm in fleet.draining:
        started = lbvm.drain_requested_at or lbvm.state_since
        limit = _seconds(drain.timeout_seconds) + settings.stuck_margin * 2
        if now - started > limit:
            jobs.append(
                ForceTerminate(
                    reason=f"{lbvm.lbvm_id}: still draining {int((now - started).total_seconds())} s after the drain "
                    f"request (drain timeout {drain.timeout_seconds} s); terminating it directly",
                    lbvm_id=lbvm.lbvm_id,
                )
            )
    return jobs


def _seconds(value: int) -> timedelta:
    return timedelta(seconds=value)


# --- 5. capacity ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Replacement:
    """Why a serving or starting LBVM must give way to a new one."""

    why: str
    drain_reason: DrainReason


def _replacements(spec: LoadBalancerSpec, lbvms: Sequence[Lbvm]) -> dict[str, _Replacement]:
    """LBVMs the spec no longer describes: in a subnet it dropped, or launched from another template."""
    template = launch_template(spec)
    result = {}
    for lbvm in lbvms:
        if lbvm.subnet_id not in spec.subnet_ids:
            result[lbvm.lbvm_id] = _Replacement(f"subnet {lbvm.subnet_id} is no longer in the spec", "replace")
        elif lbvm.launch_template is not None and lbvm.launch_template != template:
            result[lbvm.lbvm_id] = _Replacement(
                f"launched as {lbvm.launch_template}; the spec now asks for {template}", "rollout"
            )
    return result


def _capacity(
    record: LoadBalancerRecord, fleet: _Fleet, observed: LoadBalancerView, handled: set[str], rng: random.Random
) -> list[Job]:
    spec = record.spec
    desired = record.status.desired_capacity
    # Routable and starting LBVMs count towards the desired capacity; Unroutable
    # ones do not: a replacement is launched at once, and if the sick one
    # recovers, the surplus is drained on a later tick.
    counted = [lbvm for lbvm in fleet.routable + fleet.starting if lbvm.lbvm_id not in handled]
    # LBVMs the spec no longer describes still serve, but are replaced (a rolling update).
    replacements = _replacements(spec, counted)
    outgoing = [lbvm for lbvm in counted if lbvm.lbvm_id in replacements]
    placed = [lbvm for lbvm in counted if lbvm.lbvm_id not in replacements]
    jobs: list[Job] = []

    # Every instance that exists or is about to: the surge bound applies to all of them.
    in_flight = {lbvm.instance_id for lbvm in fleet.not_terminated if lbvm.instance_id}
    instances_alive = len({i.instance_id for i in observed.instances if i.alive} | in_flight)
    markers_without_instance = sum(1 for lbvm in fleet.not_terminated if lbvm.instance_id is None)
    ceiling = spec.capacity.max + spec.rollout.max_surge
    room = max(0, ceiling - instances_alive - markers_without_instance)

    jobs += _roll(spec, desired, placed, outgoing, replacements)
    excess_placed = len(placed) - desired
    if excess_placed > 0:
        refs = [LbvmRef(lbvm.lbvm_id, lbvm.subnet_id, lbvm.state) for lbvm in placed]
        by_id = {lbvm.lbvm_id: lbvm for lbvm in placed}
        for ref in choose_scale_in_victims(refs, excess_placed, rng):
            victim = by_id[ref.lbvm_id]
            jobs.append(
                RequestDrain(
                    reason=f"{victim.lbvm_id} in {victim.subnet_id}: {len(placed)} LBVMs for a desired capacity of "
                    f"{desired}; draining the excess (keeping Availability Zones balanced)",
                    lbvm_id=victim.lbvm_id,
                    drain_reason="scale-in",
                )
            )
        return jobs

    missing = desired - len(placed)
    zones = _zones(fleet)
    unavailable_allowed = spec.rollout.max_unavailable
    if missing > 0:
        launches = min(missing, room)
        routable = sum(1 for lbvm in placed if lbvm.state == "Routable")
        for subnet_id in subnets_for_launches(spec.subnet_ids, placed, launches):
            jobs.append(
                Launch(
                    reason=f"launching an LBVM in {subnet_id}{_zone_text(zones.get(subnet_id))}: "
                    f"{len(placed)} of {desired} desired LBVMs are routable ({routable}) or starting "
                    f"({len(placed) - routable})",
                    subnet_id=subnet_id,
                    availability_zone=zones.get(subnet_id),
                )
            )
        return jobs
    if outgoing:
        return jobs  # rebalancing waits for the rollout
    # Rebalance, as Auto Scaling does: when the zones differ by more than one
    # (a subnet was added, a zone lost LBVMs), launch one in the emptiest zone;
    # the surplus that follows is drained from the fullest zone on a later tick.
    per_subnet = {subnet_id: 0 for subnet_id in spec.subnet_ids}
    for lbvm in placed:
        per_subnet[lbvm.subnet_id] += 1
    if max(per_subnet.values()) - min(per_subnet.values()) <= 1:
        return jobs
    if room > 0:
        [subnet_id] = subnets_for_launches(spec.subnet_ids, placed, 1)
        jobs.append(
            Launch(
                reason=f"rebalancing Availability Zones: {_counts(per_subnet)}; launching one in {subnet_id}"
                f"{_zone_text(zones.get(subnet_id))}, then draining one from the fullest zone",
                subnet_id=subnet_id,
                availability_zone=zones.get(subnet_id),
            )
        )
    elif unavailable_allowed > 0:
        # No room to surge: drain from the fullest zone first; the launch into the
        # emptiest follows once it is gone (within maxUnavailable).
        refs = [LbvmRef(lbvm.lbvm_id, lbvm.subnet_id, lbvm.state) for lbvm in placed]
        [chosen] = choose_scale_in_victims(refs, 1, rng)
        jobs.append(
            RequestDrain(
                reason=f"rebalancing Availability Zones: {_counts(per_subnet)}; no room to launch first "
                f"(maxSurge {spec.rollout.max_surge}), so draining {chosen.lbvm_id} from the fullest zone first",
                lbvm_id=chosen.lbvm_id,
                drain_reason="scale-in",
            )
        )
    return jobs


def _roll(
    spec: LoadBalancerSpec,
    desired: int,
    placed: list[Lbvm],
    outgoing: list[Lbvm],
    replacements: dict[str, _Replacement],
) -> list[Job]:
    """Drain the LBVMs being replaced as fast as availability allows (a rolling update).

    The rule is a Deployment's: routable LBVMs never fall below
    ``desired - maxUnavailable``. A replacement counts only once it is
    routable, so an outgoing LBVM keeps serving while the LBVM that takes its
    place boots. Outgoing LBVMs that serve nothing yet go at once. Their
    replacements are launched by the capacity rule, within maxSurge.
    """
    routable_placed = sum(1 for lbvm in placed if lbvm.state == "Routable")
    serving_outgoing = [lbvm for lbvm in outgoing if lbvm.state == "Routable"]
    floor = max(0, desired - spec.rollout.max_unavailable)
    budget = max(0, routable_placed + len(serving_outgoing) - floor)
    # Subnets the spec dropped go first, then the oldest LBVMs.
    order = sorted(
        serving_outgoing, key=lambda lbvm: (replacements[lbvm.lbvm_id].drain_reason != "replace", lbvm.created_at)
    )
    leaving = [lbvm for lbvm in outgoing if lbvm.state != "Routable"] + order[:budget]
    progress = (
        f"{routable_placed} of {desired} LBVMs routable as the spec describes, {len(outgoing)} to replace "
        f"(maxSurge {spec.rollout.max_surge}, maxUnavailable {spec.rollout.max_unavailable})"
    )
    return [
        RequestDrain(
            reason=f"{lbvm.lbvm_id}: {replacements[lbvm.lbvm_id].why}; replacing it: {progress}",
            lbvm_id=lbvm.lbvm_id,
            drain_reason=replacements[lbvm.lbvm_id].drain_reason,
        )
        for lbvm in leaving
    ]


def _counts(per_subnet: dict[str, int]) -> str:
    return ", ".join(f"{count} in {subnet_id}" for subnet_id, count in per_subnet.items())


def _zones(fleet: _Fleet) -> dict[str, str]:
    return {lbvm.subnet_id: lbvm.availability_zone for lbvm in fleet.records if lbvm.availability_zone}


def _zone_text(zone: str | None) -> str:
    return f" ({zone})" if zone else ""


# --- 6. registrations and DNS records --------------------------------------------------------


def _registration_drift(
    record: LoadBalancerRecord, fleet: _Fleet, observed: LoadBalancerView, now: datetime, settings: PlannerSettings
) -> list[Job]:
    settled = [lbvm for lbvm in fleet.routable if now - lbvm.state_since > settings.registration_grace]
    # The lifecycle registers a Pending LBVM before calling it Routable: leave those alone.
    allowed = {lbvm.lbvm_id for lbvm in fleet.routable + fleet.starting}
    jobs: list[Job] = []
    entry = observed.entry
    if record.spec.entry.mode == "pool" and entry.registered_instance_ids is not None:
        registered = entry.registered_instance_ids
        for lbvm in settled:
            if lbvm.instance_id and lbvm.instance_id not in registered:
                jobs.append(
                    RegisterTarget(
                        reason=f"{lbvm.lbvm_id} is Routable but {lbvm.instance_id} is not registered with the entry",
                        lbvm_id=lbvm.lbvm_id,
                    )
                )
        allowed_instances = {lbvm.instance_id for lbvm in fleet.records if lbvm.lbvm_id in allowed}
        for instance_id in sorted(registered - allowed_instances):
            jobs.append(
                DeregisterTarget(
                    reason=f"{instance_id} is registered with the entry but is not a routable LBVM",
                    instance_id=instance_id,
                )
            )
    if record.spec.entry.mode == "dns" and entry.dns_record_ips is not None:
        records = entry.dns_record_ips
        for lbvm in settled:
            # Presence, not the address: which address is published (private or
            # public, by scheme) is the entry's business, and register() fixes it.
            if lbvm.instance_id and lbvm.lbvm_id not in records:
                jobs.append(
                    RegisterTarget(reason=f"{lbvm.lbvm_id} is Routable but has no DNS record", lbvm_id=lbvm.lbvm_id)
                )
        for lbvm_id in sorted(set(records) - allowed):
            jobs.append(
                DeregisterTarget(reason=f"a DNS record points at {lbvm_id}, which is not routable", lbvm_id=lbvm_id)
            )
    return jobs


# --- 7. orphans --------------------------------------------------------------------------------


def _orphans(fleet: _Fleet, observed: LoadBalancerView, now: datetime, settings: PlannerSettings) -> list[Job]:
    owners = {lbvm.lbvm_id: lbvm for lbvm in fleet.records}
    jobs: list[Job] = []
    for instance in observed.instances:
        if not instance.alive:
            continue
        owner = owners.get(instance.lbvm_id or "")
        if owner is not None and owner.state != "Terminated":
            continue
        if instance.launched_at is not None and now - instance.launched_at < settings.orphan_grace:
            continue
        what = f"LBVM {instance.lbvm_id} is terminated" if owner else "no LBVM record claims it"
        jobs.append(
            TerminateInstance(
                reason=f"instance {instance.instance_id} carries this load balancer's tags but {what}",
                instance_id=instance.instance_id,
            )
        )
    for interface in observed.network_interfaces:
        if interface.status != "available":
            continue  # attached: it goes with its instance
        owner = owners.get(interface.lbvm_id or "")
        if owner is not None and owner.state not in ("Terminated", "Draining") and owner.drain_requested_at is None:
            continue
        jobs.append(
            DeleteNetworkInterface(
                reason=f"network interface {interface.network_interface_id} is detached and no live LBVM uses it",
                network_interface_id=interface.network_interface_id,
            )
        )
    return jobs


# --- status ------------------------------------------------------------------------------------


def _status(
    record: LoadBalancerRecord, fleet: _Fleet, observed: LoadBalancerView, jobs: list[Job]
) -> LoadBalancerStatus:
    desired = record.status.desired_capacity
    # This plan's drains take effect now, whatever the records still say.
    leaving = {job.lbvm_id for job in jobs if isinstance(job, (RequestDrain, ForceTerminate))}
    serving = [lbvm for lbvm in fleet.routable if lbvm.lbvm_id not in leaving]
    routable = len(serving)
    draining = len(fleet.draining) + len(leaving)
    launching = sum(1 for job in jobs if isinstance(job, Launch))
    phase: Phase
    if record.deletion_requested_at is not None:
        phase = "Deleting"
        left = len(fleet.not_terminated)
        message = f"tearing down: {left} LBVM(s) left" if left else "tearing down the entry"
    else:
        outdated = [lbvm for lbvm in serving if (lbvm.applied_config_version or 0) < record.generation]
        staying = [lbvm for lbvm in fleet.routable + fleet.starting if lbvm.lbvm_id not in leaving]
        to_replace = len(_replacements(record.spec, staying))
        if routable >= desired and observed.entry.ready and not outdated and not to_replace:
            phase = "Active"
        elif routable == 0:
            phase = "Provisioning"
        elif routable >= desired and (outdated or to_replace):
            phase = "Updating"
        else:
            phase = "Degraded"
        message = f"{routable} of {desired} LBVMs routable"
        starting = len([lbvm for lbvm in fleet.starting if lbvm.lbvm_id not in leaving]) + launching
        unroutable = len([lbvm for lbvm in fleet.unroutable if lbvm.lbvm_id not in leaving])
        if starting:
            message += f", {starting} starting"
        if unroutable:
            message += f", {unroutable} unroutable"
        if draining:
            message += f", {draining} draining"
        if outdated:
            message += f", {len(outdated)} on an older config"
        if to_replace:
            message += f", {to_replace} to replace"
    return LoadBalancerStatus(
        phase=phase,
        observed_generation=record.generation,
        desired_capacity=desired,
        entry=EntryStatus(mode=record.spec.entry.mode, dns_name=observed.entry.dns_name),
        lbvms=[
            LbvmStatus(
                lbvm_id=lbvm.lbvm_id,
                instance_id=lbvm.instance_id,
                subnet_id=lbvm.subnet_id,
                availability_zone=lbvm.availability_zone,
                state=lbvm.state,
                since=lbvm.state_since,
                config_version=str(lbvm.applied_config_version) if lbvm.applied_config_version else None,
            )
            for lbvm in sorted(fleet.not_terminated, key=lambda lbvm: (lbvm.subnet_id, lbvm.created_at))
        ],
        message=message,
    )
