"""Conditions and the phase derived from them: each condition's transitions, through the real planner (pure)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from lbcp.models.lbvm import Lbvm
from lbcp.models.resource import LoadBalancerRecord
from lbcp.models.scaling import ScalingState
from lbcp.models.status import Condition
from lbcp.reconcile.observed import EntryView, LoadBalancerView
from lbcp.reconcile.plan import ReconcilePlan, plan
from lbcp.reconcile.plan.conditions import ORDER, Draft, phase_of, stamped
from tests.fleet.test_planner import NOW, OLD_TEMPLATE, SUBNET_A, SUBNET_B, lbvm, record, world

BOOTING = timedelta(seconds=30)


def at(rec: LoadBalancerRecord, vms: list[Lbvm], view: LoadBalancerView, now: datetime = NOW) -> ReconcilePlan:
    return plan(rec, vms, view, now, rng=random.Random(7))


def registered(vms: list[Lbvm]) -> LoadBalancerView:
    entry = EntryView(ready=True, dns_name="web.x", registered_instance_ids=frozenset(v.instance_id or "" for v in vms))
    return world(vms, entry)


def beating(vms: list[Lbvm], now: datetime) -> list[Lbvm]:
    """The LBVMs with their agents' heartbeats fresh at ``now`` (an older one would be a lost LBVM)."""
    return [vm.model_copy(update={"last_heartbeat_at": now - timedelta(seconds=5)}) for vm in vms]


def by_type(result: ReconcilePlan) -> dict[str, Condition]:
    return {condition.type: condition for condition in result.status.conditions}


def summary(result: ReconcilePlan) -> dict[str, tuple[str, str]]:
    return {kind: (c.status, c.reason) for kind, c in by_type(result).items()}


def after(rec: LoadBalancerRecord, result: ReconcilePlan) -> LoadBalancerRecord:
    """The record as the reconciler leaves it: this plan's status stored."""
    return rec.model_copy(update={"status": result.status})


def test_a_converged_fleet_is_ready_and_the_next_tick_writes_nothing() -> None:
    vms = [lbvm(1, subnet=SUBNET_A), lbvm(2, subnet=SUBNET_B)]
    rec = record(desired=2)
    first = at(rec, vms, registered(vms))
    assert summary(first) == {
        "Ready": ("True", "AsDesired"),
        "EntryReady": ("True", "EntryComplete"),
        "CapacityMet": ("True", "CapacityMet"),
        "ConfigApplied": ("True", "ConfigApplied"),
        "RolloutProgressing": ("False", "NoRollout"),
        "ScalingLimited": ("False", "WithinBounds"),
        "Degraded": ("False", "AsExpected"),
    }
    assert [c.type for c in first.status.conditions] == list(ORDER)  # Ready first, as kubectl shows it
    assert by_type(first)["Ready"].message == "2 of 2 LBVMs routable"
    assert by_type(first)["ConfigApplied"].message == "2 of 2 routable LBVMs run config version 1"
    assert by_type(first)["ScalingLimited"].message == "desired capacity 2, within capacity 1 to 6"
    assert first.status.phase == "Active"
    # Ten minutes on, nothing changed: the same conditions, the same transition times, no write.
    ten = NOW + timedelta(minutes=10)
    later = at(after(rec, first), beating(vms, ten), registered(vms), ten)
    assert later.status.conditions == first.status.conditions
    assert later.is_noop(first.status)


def test_a_new_load_balancer_is_provisioning_with_nothing_routable_and_no_entry() -> None:
    result = at(record(desired=3), [], LoadBalancerView())
    assert summary(result)["Ready"] == ("False", "EntryIncomplete")
    assert summary(result)["CapacityMet"] == ("False", "NoneRoutable")
    assert by_type(result)["CapacityMet"].message == "0 of 3 LBVMs routable; 3 to launch now"
    assert summary(result)["ConfigApplied"] == ("Unknown", "NoRoutableLbvms")
    assert summary(result)["Degraded"] == ("False", "AsExpected")  # nothing broke: it is still being built
    assert all(c.last_transition_time == NOW for c in result.status.conditions)
    assert result.status.phase == "Provisioning"


def test_capacity_met_goes_false_on_a_scale_out_and_back_true_with_new_transition_times() -> None:
    two = [lbvm(1, subnet=SUBNET_A), lbvm(2, subnet=SUBNET_B)]
    rec = record(desired=2)
    converged = at(rec, two, registered(two))
    # The scaler asks for 3: one LBVM is starting, since a minute ago.
    rec = after(rec, converged).model_copy(
        update={"status": converged.status.model_copy(update={"desired_capacity": 3})}
    )
    three = [*two, lbvm(3, "Pending", age=timedelta(minutes=1))]
    scaling = at(rec, three, registered(three), NOW + timedelta(minutes=1))
    capacity = by_type(scaling)["CapacityMet"]
    assert (capacity.status, capacity.reason) == ("False", "LbvmsStarting")
    assert capacity.message == "2 of 3 LBVMs routable; 1 starting since 11:59"
    assert capacity.last_transition_time == NOW + timedelta(minutes=1)
    assert summary(scaling)["Ready"] == ("False", "LbvmsStarting")
    assert by_type(scaling)["Ready"].message == "CapacityMet is False: 2 of 3 LBVMs routable; 1 starting since 11:59"
    assert summary(scaling)["Degraded"] == ("True", "BelowCapacity")
    # Conditions whose status did not move keep their time.
    assert by_type(scaling)["EntryReady"].last_transition_time == NOW
    assert scaling.status.phase == "Degraded"

    up = beating([*two, lbvm(3)], NOW + timedelta(minutes=3))
    done = at(after(rec, scaling), up, registered(up), NOW + timedelta(minutes=3))
    assert summary(done)["CapacityMet"] == ("True", "CapacityMet")
    assert by_type(done)["CapacityMet"].last_transition_time == NOW + timedelta(minutes=3)
    assert by_type(done)["Ready"].last_transition_time == NOW + timedelta(minutes=3)
    assert by_type(done)["EntryReady"].last_transition_time == NOW
    assert summary(done)["Degraded"] == ("False", "AsExpected")
    assert by_type(done)["Degraded"].last_transition_time == NOW + timedelta(minutes=3)
    assert done.status.phase == "Active"


def test_an_unroutable_lbvm_degrades_the_load_balancer_and_says_since_when() -> None:
    vms = [lbvm(1), lbvm(2, "Unroutable", subnet=SUBNET_B, age=timedelta(minutes=2))]
    result = at(record(desired=2), vms, registered(vms))
    assert summary(result)["CapacityMet"] == ("False", "LbvmsUnroutable")
    assert by_type(result)["Degraded"].message == "1 of 2 LBVMs routable; 1 to launch now; 1 unroutable since 11:58"
    assert summary(result)["Degraded"] == ("True", "LbvmsUnroutable")
    assert result.status.phase == "Degraded"


def test_an_incomplete_entry_blocks_ready_and_degrades_a_serving_fleet() -> None:
    vms = [lbvm(1), lbvm(2, subnet=SUBNET_B)]
    result = at(record(desired=2), vms, world(vms, EntryView(ready=False)))
    assert summary(result)["EntryReady"] == ("False", "EntryIncomplete")
    assert summary(result)["Ready"] == ("False", "EntryIncomplete")
    assert summary(result)["Degraded"] == ("True", "EntryIncomplete")
    assert result.status.phase == "Degraded"


def test_an_agent_error_degrades_without_taking_ready_away() -> None:
    vms = [lbvm(1, agent_error="haproxy -c failed: unknown keyword"), lbvm(2, subnet=SUBNET_B)]
    result = at(record(desired=2), vms, registered(vms))
    assert summary(result)["Degraded"] == ("True", "AgentErrors")
    assert by_type(result)["Degraded"].message == f"{vms[0].lbvm_id} reports: haproxy -c failed: unknown keyword"
    assert summary(result)["Ready"] == ("True", "AsDesired") and result.status.phase == "Active"


def test_lbvms_to_replace_make_the_rollout_progress_and_the_phase_updating() -> None:
    rec = record(desired=2, capacity={"min": 1, "max": 2}, instance={"type": "c6i.xlarge"})
    old = [lbvm(1, launch_template=OLD_TEMPLATE), lbvm(2, subnet=SUBNET_B, launch_template=OLD_TEMPLATE)]
    result = at(rec, old, registered(old))
    progressing = by_type(result)["RolloutProgressing"]
    assert (progressing.status, progressing.reason) == ("True", "Replacing")
    assert progressing.message.startswith(
        "2 LBVM(s) to replace onto c6i.xlarge from the latest Amazon Linux 2023 running haproxy (rollout ro-"
    )
    assert summary(result)["Ready"] == ("False", "Replacing")
    assert result.status.phase == "Updating"


def test_scaling_limited_follows_the_scalers_hold_and_keeps_its_time_from_one_hold_to_another() -> None:
    vms = [lbvm(1), lbvm(2, subnet=SUBNET_B)]
    rec = record(desired=2)

    def held(previous: LoadBalancerRecord, hold: str | None, now: datetime, **state: datetime) -> ReconcilePlan:
        changed = previous.model_copy(update={"scaling": ScalingState(hold=hold, **state)})
        return at(changed, vms, registered(vms), now)

    at_max = held(rec.model_copy(update={"spec": record(desired=2, capacity={"min": 1, "max": 2}).spec}), "max", NOW)
    limited = by_type(at_max)["ScalingLimited"]
    assert (limited.status, limited.reason) == ("True", "AtMaximum")
    assert limited.message == "desired capacity 2 is capacity.max 2: the scaler asks for more"
    assert at_max.status.phase == "Active"  # a limit is not a fault

    out_at = NOW - timedelta(minutes=4)
    cooling = held(after(rec, at_max), "cooldown", NOW + timedelta(minutes=1), last_scale_out_at=out_at)
    limited = by_type(cooling)["ScalingLimited"]
    assert (limited.status, limited.reason) == ("True", "CoolingDown")
    assert limited.message == "kept 2: cooling down after the change at 11:56, until 12:06"
    assert limited.last_transition_time == NOW  # still limited: the time it became so stays

    missing = held(after(rec, cooling), "missing-metrics", NOW + timedelta(minutes=2))
    assert summary(missing)["ScalingLimited"] == ("True", "MetricsMissing")
    at_min = held(after(rec, missing), "min", NOW + timedelta(minutes=3))
    assert (
        by_type(at_min)["ScalingLimited"].message == "desired capacity 2 is capacity.min 1: the scaler would scale in"
    )

    free = held(after(rec, at_min), None, NOW + timedelta(minutes=4))
    limited = by_type(free)["ScalingLimited"]
    assert (limited.status, limited.reason) == ("False", "WithinBounds")
    assert limited.last_transition_time == NOW + timedelta(minutes=4)


def test_a_deleting_load_balancer_serves_only_ready_false_deleting() -> None:
    vms = [lbvm(1)]
    result = at(record(desired=1, deleting=True), vms, registered(vms))
    assert summary(result) == {"Ready": ("False", "Deleting")}
    assert by_type(result)["Ready"].message == result.status.message
    assert result.status.phase == "Deleting"


def test_stamped_moves_the_time_only_on_a_change_of_status() -> None:
    before = stamped([Draft("CapacityMet", "False", "LbvmsStarting", "1 of 2 LBVMs routable")], [], NOW)
    reworded = stamped(
        [Draft("CapacityMet", "False", "BelowCapacity", "1 of 3 LBVMs routable")], before, NOW + timedelta(minutes=1)
    )
    assert reworded[0].last_transition_time == NOW and reworded[0].reason == "BelowCapacity"
    flipped = stamped([Draft("CapacityMet", "True", "CapacityMet", "3 of 3")], reworded, NOW + timedelta(minutes=2))
    assert flipped[0].last_transition_time == NOW + timedelta(minutes=2)


def test_the_phase_follows_the_conditions_in_order() -> None:
    def phase(**statuses: tuple[str, str]) -> str:
        base = {
            "Ready": ("False", "LbvmsStarting"),
            "EntryReady": ("True", "EntryComplete"),
            "CapacityMet": ("True", "CapacityMet"),
            "ConfigApplied": ("True", "ConfigApplied"),
            "RolloutProgressing": ("False", "NoRollout"),
        }
        base.update(statuses)
        drafts = [Draft(kind, status, reason, "") for kind, (status, reason) in base.items()]  # type: ignore[arg-type]
        return phase_of(drafts, deleting=False)

    assert phase(Ready=("True", "AsDesired")) == "Active"
    assert phase(CapacityMet=("False", "NoneRoutable")) == "Provisioning"
    assert phase(CapacityMet=("True", "NoneDesired"), EntryReady=("False", "EntryIncomplete")) == "Provisioning"
    assert phase(ConfigApplied=("False", "ConfigRollingOut")) == "Updating"
    assert phase(RolloutProgressing=("True", "Replacing")) == "Updating"
    assert phase(CapacityMet=("False", "LbvmsStarting"), RolloutProgressing=("True", "Replacing")) == "Degraded"
    assert phase(EntryReady=("False", "EntryIncomplete")) == "Degraded"
    assert phase(CapacityMet=("False", "NoneRoutable"), Degraded=("True", "LaunchesFailing")) == "Failed"
    assert phase(CapacityMet=("False", "BelowCapacity"), Degraded=("True", "ReconcileFailing")) == "Failed"
    # Ready wins: a fleet that serves as desired while some job keeps failing is Active, not Failed.
    assert phase(Ready=("True", "AsDesired"), Degraded=("True", "ReconcileFailing")) == "Active"
    assert phase_of([], deleting=True) == "Deleting"


def test_entry_ready_turns_true_when_the_entry_is_whole_and_only_its_conditions_move() -> None:
    vms = [lbvm(1), lbvm(2, subnet=SUBNET_B)]
    rec = record(desired=2)
    broken = at(rec, vms, world(vms, EntryView(ready=False)))
    minute = NOW + timedelta(minutes=1)
    whole = at(after(rec, broken), beating(vms, minute), registered(vms), minute)
    moved = {c.type for c in whole.status.conditions if c.last_transition_time == minute}
    assert moved == {"EntryReady", "Ready", "Degraded"}
    assert summary(whole)["EntryReady"] == ("True", "EntryComplete")
    assert summary(whole)["Degraded"] == ("False", "AsExpected")
    assert whole.status.phase == "Active"


def test_a_rollout_progresses_while_lbvms_remain_to_replace_and_stops_when_none_remain() -> None:
    rec = record(desired=2, capacity={"min": 1, "max": 2}, instance={"type": "c6i.xlarge"})
    new = "c6i.xlarge from the latest Amazon Linux 2023 running haproxy"
    old = [lbvm(1, launch_template=OLD_TEMPLATE), lbvm(2, subnet=SUBNET_B, launch_template=OLD_TEMPLATE)]
    started = at(rec, old, registered(old))
    assert summary(started)["RolloutProgressing"] == ("True", "Replacing")
    later = NOW + timedelta(minutes=30)
    done = beating([lbvm(3, launch_template=new), lbvm(4, subnet=SUBNET_B, launch_template=new)], later)
    finished = at(after(rec, started), done, registered(done), later)
    progressing = by_type(finished)["RolloutProgressing"]
    assert (progressing.status, progressing.reason) == ("False", "RolloutWaiting")
    assert progressing.last_transition_time == later
    assert progressing.message.endswith(
        "Progressing, nothing to replace now; waiting for the bake to end at 12:35:00Z with the canary healthy"
    )
    assert finished.status.phase == "Active"  # baking replaces nothing: the fleet is as the spec asks
    baked = later + timedelta(minutes=10)
    succeeded = at(after(rec, finished), beating(done, baked), registered(done), baked)
    progressing = by_type(succeeded)["RolloutProgressing"]
    assert (progressing.status, progressing.reason) == ("False", "RolloutComplete")
    assert progressing.message.endswith("succeeded: 2 of 2 replaced")
    assert progressing.last_transition_time == later  # a new reason, the same status: the time stays


def _failed_launch(number: int, minutes_ago: int, **changes: Any) -> Lbvm:
    """An LBVM of generation 1 that EC2 refused: drained for replacement, never heard from."""
    return lbvm(
        number,
        "Terminated",
        age=timedelta(minutes=minutes_ago),
        instance_id=None,
        last_heartbeat_at=None,
        applied_config_version=None,
        drain_reason="replace",
        end_reason="replace: terminated",
        failure="lifecycle step failed (Lbcp.LaunchFailed: InsufficientInstanceCapacity: We currently do not "
        "have sufficient c6i.large capacity in the Availability Zone you requested)",
        **changes,
    )


def test_a_fleet_whose_every_launch_fails_is_failed_and_says_with_what_error() -> None:
    rec = record(desired=2)
    two = at(rec, [_failed_launch(1, 9), _failed_launch(2, 8)], LoadBalancerView(entry=EntryView(ready=True)))
    assert two.status.phase == "Provisioning"  # two failures in a row: still trying, not Failed yet
    three = at(
        rec,
        [_failed_launch(1, 9), _failed_launch(2, 8), _failed_launch(3, 7)],
        LoadBalancerView(entry=EntryView(ready=True)),
    )
    assert three.status.phase == "Failed"
    degraded = by_type(three)["Degraded"]
    assert (degraded.status, degraded.reason) == ("True", "LaunchesFailing")
    assert "the last 3 LBVMs launched since" in degraded.message
    assert "InsufficientInstanceCapacity" in degraded.message and "lbvm-000000000003" in degraded.message


def test_launches_that_failed_before_one_that_served_do_not_count() -> None:
    rec = record(desired=2)
    serving = lbvm(4, age=timedelta(minutes=5))
    vms = [_failed_launch(1, 9), _failed_launch(2, 8), _failed_launch(3, 7), serving]
    result = at(rec, vms, world([serving]))
    assert result.status.phase != "Failed"
    assert by_type(result)["Degraded"].reason != "LaunchesFailing"


def test_a_reconcile_failure_streak_at_this_generation_fails_a_fleet_that_is_not_ready() -> None:
    from lbcp.reconcile.backoff import RetryStreak

    rec = record(desired=2)
    vms = [lbvm(1)]
    streak = RetryStreak(
        load_balancer_id=rec.id,
        generation=1,
        failures=3,
        first_failed_at=NOW - timedelta(minutes=6),
        last_failed_at=NOW - timedelta(minutes=2),
        last_error="EntryFailed: AccessDenied: elasticloadbalancing:CreateTargetGroup",
        not_before=NOW + timedelta(minutes=2),
    )
    failed = plan(rec, vms, world(vms), NOW, rng=random.Random(7), retry=streak)
    assert failed.status.phase == "Failed"
    message = by_type(failed)["Degraded"].message
    assert "the last 3 attempts to converge failed, since" in message and "AccessDenied" in message
    # The same streak about an older generation says nothing: a new spec starts from a clean slate.
    older = plan(rec, vms, world(vms), NOW, rng=random.Random(7), retry=replace(streak, generation=0))
    assert older.status.phase == "Degraded"
    # And two failures are routine: retried, not Failed.
    routine = plan(rec, vms, world(vms), NOW, rng=random.Random(7), retry=replace(streak, failures=2))
    assert routine.status.phase == "Degraded"


def test_config_applied_is_pending_until_every_routable_lbvm_reports_the_version_it_is_told() -> None:
    # No config rollout: an LBVM that has not reported its config yet (just routable, or an agent slow to
    # apply) is pending, and the condition turns True, with a new transition time, once it reports.
    rec = record(desired=2)
    vms = [lbvm(1), lbvm(2, subnet=SUBNET_B, applied_config_version=None)]
    first = at(rec, vms, registered(vms))
    assert summary(first)["ConfigApplied"] == ("False", "ConfigPending")
    assert by_type(first)["ConfigApplied"].message == "1 of 2 routable LBVMs not yet on the config they are told"
    assert first.status.phase == "Updating"
    later = NOW + timedelta(minutes=1)
    caught_up = [vms[0], vms[1].model_copy(update={"applied_config_version": vms[0].applied_config_version})]
    second = at(after(rec, first), caught_up, registered(caught_up), later)
    assert summary(second)["ConfigApplied"] == ("True", "ConfigApplied")
    assert by_type(second)["ConfigApplied"].last_transition_time == later
    assert second.status.phase == "Active"
