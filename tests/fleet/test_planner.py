"""The planner's decisions, one situation at a time (pure: no AWS, time passed in)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from lbcp.logic.capacity import effective_desired_capacity
from lbcp.models.lbvm import Lbvm
from lbcp.models.resource import LoadBalancerRecord
from lbcp.reconcile.jobs import (
    DeleteNetworkInterface,
    DeregisterTarget,
    EnsureEntry,
    ForceTerminate,
    Launch,
    RegisterTarget,
    RemoveLoadBalancer,
    RequestDrain,
    StartLifecycle,
    TeardownEntry,
    TerminateInstance,
)
from lbcp.reconcile.launch import launch_template
from lbcp.reconcile.observed import (
    EntryView,
    LoadBalancerView,
    ObservedInstance,
    ObservedNetworkInterface,
)
from lbcp.reconcile.plan import ReconcilePlan, plan
from lbcp.service import initial_status
from lbcp.validation import parse_spec
from tests.unit.test_spec import valid

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LB = "lb-0123456789abcdef0"
SUBNET_A, SUBNET_B = "subnet-0123456789abcdef0", "subnet-0123456789abcdef1"
ZONES = {SUBNET_A: "us-east-1a", SUBNET_B: "us-east-1b"}
READY = EntryView(ready=True, dns_name="web.lb.example.com")


def record(desired: int = 2, deleting: bool = False, **spec_changes: Any) -> LoadBalancerRecord:
    spec = parse_spec({**valid(), "capacity": {"min": 1, "max": 6}, **spec_changes})
    status = initial_status(spec).model_copy(
        update={"desired_capacity": effective_desired_capacity(spec.capacity, desired)}
    )
    return LoadBalancerRecord(
        id=LB,
        generation=1,
        spec=spec,
        status=status,
        created_at=NOW - timedelta(hours=1),
        updated_at=NOW - timedelta(hours=1),
        desired_capacity=desired,
        deletion_requested_at=NOW - timedelta(minutes=1) if deleting else None,
    )


def lbvm(
    number: int,
    state: str = "Routable",
    subnet: str = SUBNET_A,
    age: timedelta = timedelta(hours=1),
    **changes: Any,
) -> Lbvm:
    fields: dict[str, Any] = {
        "lbvm_id": f"lbvm-{number:012x}",
        "load_balancer_id": LB,
        "subnet_id": subnet,
        "availability_zone": ZONES.get(subnet),
        "state": state,
        "state_since": NOW - age,
        "version": 3,
        "launched_generation": 1,
        "launch_reason": "test",
        "created_at": NOW - age - timedelta(minutes=2),
        "execution_arn": f"arn:aws:states:us-east-1:123456789012:execution:lifecycle:lbvm-{number:012x}",
        "instance_id": f"i-{number:017x}" if state != "Launching" else None,
        "applied_config_version": 1,
        "last_heartbeat_at": NOW - timedelta(seconds=5) if state in ("Routable", "Draining") else None,
    }
    fields.update(changes)
    return Lbvm(**fields)


def instance_of(vm: Lbvm, state: str = "running", age: timedelta = timedelta(hours=1)) -> ObservedInstance:
    assert vm.instance_id is not None
    return ObservedInstance(vm.instance_id, LB, vm.lbvm_id, state, vm.subnet_id, "10.0.0.1", NOW - age)


def world(vms: list[Lbvm], entry: EntryView = READY, **overrides: Any) -> LoadBalancerView:
    instances = tuple(instance_of(vm) for vm in vms if vm.instance_id and vm.state != "Terminated")
    return LoadBalancerView(**{"instances": instances, "entry": entry, **overrides})


def decide(rec: LoadBalancerRecord, vms: list[Lbvm], view: LoadBalancerView, seed: int = 7) -> ReconcilePlan:
    return plan(rec, vms, view, NOW, rng=random.Random(seed))


def kinds(result: ReconcilePlan) -> Counter[str]:
    return Counter(type(job).__name__ for job in result.jobs)


def test_a_new_load_balancer_gets_its_entry_and_its_lbvms_spread_over_zones() -> None:
    result = decide(record(desired=3), [], LoadBalancerView())
    assert kinds(result) == {"EnsureEntry": 1, "Launch": 3}
    launches = [job for job in result.jobs if isinstance(job, Launch)]
    assert [job.subnet_id for job in launches] == [SUBNET_A, SUBNET_B, SUBNET_A]
    assert "0 of 3 desired LBVMs" in launches[0].reason
    assert result.status.phase == "Provisioning"


def test_a_converged_load_balancer_needs_nothing_and_is_active() -> None:
    vms = [lbvm(1, subnet=SUBNET_A), lbvm(2, subnet=SUBNET_B)]
    registered = EntryView(
        ready=True, dns_name="web.x", registered_instance_ids=frozenset(v.instance_id or "" for v in vms)
    )
    result = decide(record(desired=2), vms, world(vms, registered))
    assert result.jobs == ()
    assert result.status.phase == "Active"
    assert result.status.message == "2 of 2 LBVMs routable"
    assert result.is_noop(result.status)


def test_an_instance_killed_behind_our_back_is_replaced_at_once_in_its_zone() -> None:
    vms = [lbvm(1, subnet=SUBNET_A), lbvm(2, subnet=SUBNET_B)]
    view = LoadBalancerView(instances=(instance_of(vms[0]), instance_of(vms[1], state="terminated")), entry=READY)
    result = decide(record(desired=2), vms, view)
    drain = next(job for job in result.jobs if isinstance(job, RequestDrain))
    assert (drain.lbvm_id, drain.drain_reason, drain.instance_lost) == (vms[1].lbvm_id, "replace", True)
    assert "is terminated (not terminated by the control plane)" in drain.reason
    [launch] = [job for job in result.jobs if isinstance(job, Launch)]
    assert launch.subnet_id == SUBNET_B
    assert result.status.phase == "Degraded"


def test_a_just_launched_instance_not_yet_listed_is_not_called_lost() -> None:
    vm = lbvm(1, state="Pending", age=timedelta(seconds=10))
    result = decide(record(desired=1), [vm], LoadBalancerView(entry=READY))
    assert not any(isinstance(job, RequestDrain) for job in result.jobs)


def test_an_unroutable_lbvm_gets_a_replacement_without_waiting_for_its_recovery() -> None:
    vms = [lbvm(1, subnet=SUBNET_A), lbvm(2, state="Unroutable", subnet=SUBNET_B, age=timedelta(seconds=5))]
    result = decide(record(desired=2), vms, world(vms))
    assert kinds(result) == {"Launch": 1}
    assert result.status.message == "1 of 2 LBVMs routable, 1 starting, 1 unroutable"


def test_the_excess_is_drained_from_the_fullest_zone_starting_lbvms_first() -> None:
    vms = [
        lbvm(1, subnet=SUBNET_A),
        lbvm(2, subnet=SUBNET_A),
        lbvm(3, state="Pending", subnet=SUBNET_A, age=timedelta(seconds=20)),
        lbvm(4, subnet=SUBNET_B),
    ]
    result = decide(record(desired=2), vms, world(vms))
    drained = [job for job in result.jobs if isinstance(job, RequestDrain)]
    assert drained[0].lbvm_id == vms[2].lbvm_id  # the one not serving yet
    assert len(drained) == 2
    assert all(job.drain_reason == "scale-in" for job in drained)
    remaining = [vm for vm in vms if vm.lbvm_id not in {job.lbvm_id for job in drained}]
    assert Counter(vm.subnet_id for vm in remaining) == {SUBNET_A: 1, SUBNET_B: 1}


def test_launches_never_exceed_max_plus_surge() -> None:
    # max 3 + surge 1: four instances exist (two unroutable), so nothing more is launched.
    vms = [
        lbvm(1, subnet=SUBNET_A),
        lbvm(2, subnet=SUBNET_B),
        lbvm(3, state="Unroutable", subnet=SUBNET_A, age=timedelta(seconds=5)),
        lbvm(4, state="Unroutable", subnet=SUBNET_B, age=timedelta(seconds=5)),
    ]
    result = decide(record(desired=3, capacity={"min": 1, "max": 3}), vms, world(vms))
    assert kinds(result)["Launch"] == 0


def test_deleting_drains_then_tears_down_the_entry_then_removes_the_records() -> None:
    vms = [lbvm(1), lbvm(2, subnet=SUBNET_B)]
    first = decide(record(deleting=True), vms, world(vms))
    assert kinds(first) == {"RequestDrain": 2}
    assert {job.drain_reason for job in first.jobs if isinstance(job, RequestDrain)} == {"delete"}
    assert first.status.phase == "Deleting"

    draining = [vm.model_copy(update={"state": "Draining", "drain_requested_at": NOW}) for vm in vms]
    assert decide(record(deleting=True), draining, world(draining)).jobs == ()

    gone = [vm.model_copy(update={"state": "Terminated", "terminated_at": NOW}) for vm in vms]
    teardown = decide(record(deleting=True), gone, LoadBalancerView(entry=READY))
    assert [type(job) for job in teardown.jobs] == [TeardownEntry]

    finished = decide(record(deleting=True), gone, LoadBalancerView(entry=EntryView(ready=False)))
    [remove] = finished.jobs
    assert isinstance(remove, RemoveLoadBalancer)
    assert set(remove.lbvm_ids) == {vm.lbvm_id for vm in vms}


def test_registration_drift_is_repaired_both_ways() -> None:
    vms = [lbvm(1), lbvm(2, subnet=SUBNET_B)]
    entry = EntryView(ready=True, registered_instance_ids=frozenset({vms[0].instance_id or "", "i-0ffffffffffffffff"}))
    result = decide(record(desired=2), vms, world(vms, entry))
    assert [(type(job), getattr(job, "lbvm_id", None) or getattr(job, "instance_id", None)) for job in result.jobs] == [
        (RegisterTarget, vms[1].lbvm_id),
        (DeregisterTarget, "i-0ffffffffffffffff"),
    ]


def test_unverified_registrations_are_left_alone() -> None:
    vms = [lbvm(1), lbvm(2, subnet=SUBNET_B)]
    assert decide(record(desired=2), vms, world(vms, EntryView(ready=True))).jobs == ()


def test_dns_mode_repairs_records() -> None:
    vms = [lbvm(1, private_ip="10.0.1.5"), lbvm(2, subnet=SUBNET_B, private_ip="10.0.2.5")]
    entry = EntryView(ready=True, dns_record_ips={vms[0].lbvm_id: "10.0.1.5", "lbvm-0000000000ee": "10.0.9.9"})
    rec = record(desired=2, entry={"mode": "dns"})
    result = decide(rec, vms, world(vms, entry))
    assert kinds(result) == {"RegisterTarget": 1, "DeregisterTarget": 1}


def test_orphans_are_removed_only_when_old_enough_and_ours() -> None:
    vm = lbvm(1)
    young = ObservedInstance("i-0aaaaaaaaaaaaaaaa", LB, None, "running", SUBNET_A, None, NOW - timedelta(minutes=1))
    old = ObservedInstance(
        "i-0bbbbbbbbbbbbbbbb", LB, "lbvm-0000000000dd", "running", SUBNET_A, None, NOW - timedelta(hours=1)
    )
    loose = ObservedNetworkInterface("eni-0ccccccccccccccc", LB, "lbvm-0000000000dd", "available", None)
    view = LoadBalancerView(instances=(instance_of(vm), young, old), network_interfaces=(loose,), entry=READY)
    result = decide(record(desired=1), [vm], view)
    assert [job for job in result.jobs if isinstance(job, TerminateInstance)] == [
        TerminateInstance(reason=result.jobs[0].reason, instance_id="i-0bbbbbbbbbbbbbbbb")
    ]
    assert any(isinstance(job, DeleteNetworkInterface) for job in result.jobs)


def test_a_marker_without_an_execution_gets_its_execution_started() -> None:
    marker = lbvm(1, state="Launching", age=timedelta(minutes=5), execution_arn=None)
    result = decide(record(desired=1), [marker], LoadBalancerView(entry=READY))
    assert [type(job) for job in result.jobs] == [StartLifecycle]


def test_stuck_lifecycles_get_backstops() -> None:
    pending = lbvm(1, state="Pending", age=timedelta(minutes=15))  # pending timeout is 10 min
    unroutable = lbvm(2, state="Unroutable", subnet=SUBNET_B, age=timedelta(minutes=10))  # recovery 2 min
    draining = lbvm(3, state="Draining", drain_requested_at=NOW - timedelta(minutes=20), drain_reason="scale-in")
    result = decide(record(desired=2), [pending, unroutable, draining], world([pending, unroutable, draining]))
    reasons = {getattr(job, "lbvm_id", None): type(job) for job in result.jobs}
    assert reasons[pending.lbvm_id] is RequestDrain
    assert reasons[unroutable.lbvm_id] is RequestDrain
    assert reasons[draining.lbvm_id] is ForceTerminate
    assert kinds(result)["Launch"] == 2  # both replacements start now


def test_a_subnet_removed_from_the_spec_is_vacated_after_its_replacement_is_up() -> None:
    other = "subnet-0123456789abcdef2"
    vms = [lbvm(1, subnet=SUBNET_A), lbvm(2, subnet=other)]
    rec = record(desired=2, subnetIds=[SUBNET_A, SUBNET_B])
    first = decide(rec, vms, world(vms))
    assert [(type(job), getattr(job, "subnet_id", None)) for job in first.jobs] == [(Launch, SUBNET_B)]
    replaced = [*vms, lbvm(3, subnet=SUBNET_B)]
    second = decide(rec, replaced, world(replaced))
    assert [(type(job), getattr(job, "lbvm_id", None)) for job in second.jobs] == [(RequestDrain, vms[1].lbvm_id)]


BOOTING = timedelta(seconds=30)  # a Pending LBVM well inside its pending timeout


def test_a_subnet_removed_from_the_spec_is_not_vacated_while_its_replacement_only_starts() -> None:
    other = "subnet-0123456789abcdef2"
    vms = [lbvm(1, subnet=SUBNET_A), lbvm(2, subnet=other), lbvm(3, "Pending", subnet=SUBNET_B, age=BOOTING)]
    result = decide(record(desired=2, subnetIds=[SUBNET_A, SUBNET_B]), vms, world(vms))
    assert result.jobs == ()  # lbvm 2 keeps serving until lbvm 3 is routable (maxUnavailable 0)
    assert result.status.phase == "Updating" and "1 to replace" in (result.status.message or "")


OLD_TEMPLATE = "c5.large from the latest Amazon Linux 2023 running haproxy"


def test_a_new_instance_type_rolls_the_fleet_surge_first_and_says_why() -> None:
    rec = record(desired=2, capacity={"min": 1, "max": 2}, instance={"type": "c6i.xlarge"})
    new_template = launch_template(rec.spec)
    assert new_template == "c6i.xlarge from the latest Amazon Linux 2023 running haproxy"
    old = [lbvm(1, launch_template=OLD_TEMPLATE), lbvm(2, subnet=SUBNET_B, launch_template=OLD_TEMPLATE)]

    first = decide(rec, old, world(old))  # room for one more instance: maxSurge 1
    assert [type(job) for job in first.jobs] == [Launch]
    assert first.status.phase == "Updating" and "2 to replace" in (first.status.message or "")

    booting = [*old, lbvm(3, "Pending", age=BOOTING, launch_template=new_template)]
    assert decide(rec, booting, world(booting)).jobs == ()  # nothing leaves before its replacement serves

    up = [*old, lbvm(3, launch_template=new_template)]
    [drain] = decide(rec, up, world(up)).jobs
    assert isinstance(drain, RequestDrain) and drain.drain_reason == "rollout"
    assert drain.lbvm_id == old[0].lbvm_id  # the oldest first
    assert drain.reason == (
        f"{old[0].lbvm_id}: launched as {OLD_TEMPLATE}; the spec now asks for {new_template}; replacing it: "
        "1 of 2 LBVMs routable as the spec describes, 2 to replace (maxSurge 1, maxUnavailable 0)"
    )

    done = [lbvm(3, launch_template=new_template), lbvm(4, subnet=SUBNET_B, launch_template=new_template)]
    finished = decide(rec, done, world(done))
    assert finished.jobs == () and finished.status.phase == "Active"


def test_max_unavailable_lets_a_full_fleet_roll_without_room_to_surge() -> None:
    rec = record(desired=2, capacity={"min": 1, "max": 2}, rollout={"maxSurge": 0, "maxUnavailable": 1})
    old = [lbvm(1, launch_template=OLD_TEMPLATE), lbvm(2, subnet=SUBNET_B, launch_template=OLD_TEMPLATE)]
    [drain] = decide(rec, old, world(old)).jobs
    assert isinstance(drain, RequestDrain) and drain.lbvm_id == old[0].lbvm_id and drain.drain_reason == "rollout"


def test_an_lbvm_recorded_without_a_template_and_a_starting_outdated_one() -> None:
    rec = record(desired=2, instance={"type": "c6i.xlarge"})
    new_template = launch_template(rec.spec)
    vms = [
        lbvm(1),  # no template on record: never rolled for it
        lbvm(2, subnet=SUBNET_B, launch_template=new_template),
        lbvm(3, "Pending", age=BOOTING, launch_template=OLD_TEMPLATE),  # serves nobody yet: goes at once
    ]
    result = decide(rec, vms, world(vms))
    assert [(type(job), getattr(job, "lbvm_id", None)) for job in result.jobs] == [(RequestDrain, vms[2].lbvm_id)]


def test_the_entry_is_ensured_when_incomplete() -> None:
    vms = [lbvm(1), lbvm(2, subnet=SUBNET_B)]
    result = decide(record(desired=2), vms, world(vms, EntryView(ready=False)))
    assert [type(job) for job in result.jobs] == [EnsureEntry]
    assert result.status.phase == "Degraded"  # routable, but the entry is not whole


def test_launch_reasons_during_a_rollout_count_the_lbvms_that_still_serve() -> None:
    # Four LBVMs on the old template serve while the first replacement is launched:
    # the reason must not say that none of the desired LBVMs is routable.
    rec = record(desired=4, capacity={"min": 1, "max": 4}, instance={"type": "c6i.xlarge"})
    old = [lbvm(n, subnet=(SUBNET_A, SUBNET_B)[n % 2], launch_template=OLD_TEMPLATE) for n in range(1, 5)]
    [launch] = decide(rec, old, world(old)).jobs
    assert isinstance(launch, Launch)
    assert "0 of 4 desired LBVMs are routable" not in launch.reason
    assert (
        "replacing LBVMs the spec no longer describes: 4 of 4 desired LBVMs serve (0 as the spec describes, "
        "4 awaiting replacement), 0 replacement(s) starting"
    ) in launch.reason


def test_max_surge_counts_from_the_desired_capacity_not_from_capacity_max() -> None:
    # desired 4 with headroom up to 10: a rollout may add maxSurge (1) instances, not 4 + 6.
    rec = record(desired=4, capacity={"min": 1, "max": 10}, instance={"type": "c6i.xlarge"})
    old = [lbvm(n, subnet=(SUBNET_A, SUBNET_B)[n % 2], launch_template=OLD_TEMPLATE) for n in range(1, 5)]
    assert kinds(decide(rec, old, world(old)))["Launch"] == 1


def test_surge_does_not_slow_a_scale_out() -> None:
    # A scale-out from 4 to 8 launches the 4 missing LBVMs at once: surge limits replacements only.
    rec = record(desired=8, capacity={"min": 1, "max": 10})
    vms = [lbvm(n, subnet=(SUBNET_A, SUBNET_B)[n % 2]) for n in range(1, 5)]
    assert kinds(decide(rec, vms, world(vms)))["Launch"] == 4
    # ... even while two LBVMs are still draining from an earlier scale-in.
    draining = [lbvm(n, "Draining", drain_reason="scale-in", drain_requested_at=NOW) for n in (5, 6)]
    assert kinds(decide(rec, vms + draining, world(vms + draining)))["Launch"] == 4


def test_max_surge_and_max_unavailable_as_percentages_of_desired() -> None:
    # desired 4: maxSurge 50% rounds up to 2, maxUnavailable 30% rounds down to 1.
    rec = record(
        desired=4,
        capacity={"min": 1, "max": 10},
        instance={"type": "c6i.xlarge"},
        rollout={"maxSurge": "50%", "maxUnavailable": "30%", "canary": 0},
    )
    old = [lbvm(n, subnet=(SUBNET_A, SUBNET_B)[n % 2], launch_template=OLD_TEMPLATE) for n in range(1, 5)]
    result = decide(rec, old, world(old))
    assert kinds(result) == {"Launch": 2, "RequestDrain": 1}


def test_the_status_says_why_each_lbvm_is_there_and_why_it_is_leaving() -> None:
    vms = [
        lbvm(1, launch_reason="launching an LBVM in subnet-a: 0 of 2 desired"),
        lbvm(2, subnet=SUBNET_B, launch_reason="rebalancing", drain_requested_at=NOW, drain_reason="scale-in"),
    ]
    result = decide(record(desired=2), vms, world(vms))
    shown = {vm.lbvm_id: vm for vm in result.status.lbvms}
    assert shown[vms[0].lbvm_id].launch_reason == "launching an LBVM in subnet-a: 0 of 2 desired"
    assert shown[vms[0].lbvm_id].drain_reason is None
    assert (shown[vms[1].lbvm_id].launch_reason, shown[vms[1].lbvm_id].drain_reason) == ("rebalancing", "scale-in")
    # The heartbeat time is not stored in the status: a heartbeat alone must not make a status write.
    assert all(vm.last_heartbeat_at is None for vm in result.status.lbvms)
    later = [vms[0].model_copy(update={"last_heartbeat_at": NOW}), vms[1]]
    assert decide(record(desired=2), later, world(later)).status == result.status
