"""lbctl why and describe on documents the API would serve, built by the real scaler, planner and models (pure)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from lbcp.models.events import Event
from lbcp.models.inspection import LbvmDetail
from lbcp.models.lbvm import Lbvm
from lbcp.models.resource import LoadBalancerRecord, representation
from lbcp.models.scaling import ScalingState
from lbcp.reconcile.observed import EntryView, LoadBalancerView
from lbcp.reconcile.plan import plan
from lbcp.scaling.model import MetricsWindow
from lbcp.scaling.run import evaluate_record
from lbctl.describe import render, scaling_outlook
from lbctl.why import answer
from tests.fleet.test_planner import LB, NOW, SUBNET_A, SUBNET_B, lbvm, record, world
from tests.fleet.test_rollout_decisions import NEW, fleet_of_four

VOTE = {"policy": "vote", "cooldownSeconds": 0}


def registered(vms: list[Lbvm]) -> LoadBalancerView:
    entry = EntryView(ready=True, dns_name="web.x", registered_instance_ids=frozenset(v.instance_id or "" for v in vms))
    return world(vms, entry)


def reconciled(rec: LoadBalancerRecord, vms: list[Lbvm], now: datetime = NOW) -> LoadBalancerRecord:
    """The record after a reconciler tick: the planner's status stored (its phase and conditions)."""
    fresh = [vm.model_copy(update={"last_heartbeat_at": now - timedelta(seconds=5)}) for vm in vms]
    decided = plan(rec, fresh, registered(fresh), now, rng=random.Random(3))
    return rec.model_copy(update={"status": decided.status})


def busy(now: datetime) -> MetricsWindow:
    """CPU at 85% in both zones for the last three minutes, the rest quiet."""
    values = {"cpu": 85.0, "memory": 50.0, "activeConnections": 100.0}
    return MetricsWindow(
        {
            (subnet, metric): [(now - timedelta(minutes=m), value) for m in (3, 2, 1)]
            for subnet in (SUBNET_A, SUBNET_B)
            for metric, value in values.items()
        }
    )


def scaled(rec: LoadBalancerRecord, now: datetime) -> LoadBalancerRecord:
    """The scaler's run on the busy window: its decision and memory written to the record."""
    decision = evaluate_record(rec, busy(now), now)
    status = rec.status.model_copy(update={"desired_capacity": decision.desired})
    return rec.model_copy(update={"desired_capacity": decision.desired, "scaling": decision.state, "status": status})


def document(rec: LoadBalancerRecord, now: datetime = NOW) -> dict[str, Any]:
    return representation(rec, now)


def test_why_capacity_names_the_scalers_numbers_and_the_max_that_stops_it() -> None:
    two = [lbvm(1, subnet=SUBNET_A), lbvm(2, subnet=SUBNET_B)]
    rec = reconciled(record(desired=2, capacity={"min": 1, "max": 3}, scaling=VOTE), two)
    rec = scaled(rec, NOW)  # cpu 85% > 80%: 2 -> 3
    assert rec.desired_capacity == 3
    three = [*two, lbvm(3)]
    minute = NOW + timedelta(minutes=1)
    rec = scaled(reconciled(rec, three, minute), minute)  # still 85%: wants 4, capacity.max says 3
    assert rec.scaling.hold == "max"
    rec = reconciled(rec, three, minute + timedelta(seconds=30))

    text = answer("capacity", document(rec, minute), now=minute)
    lines = text.splitlines()
    assert lines[0].startswith(
        "desired capacity is 3 because at 12:00 the scaler scaled out 2 -> 3: cpu 85% > 80% voted +1"
    ), text
    assert lines[1] == (
        "it is not 4 because capacity.max is 3 (ScalingLimited AtMaximum since 12:01); to allow more: "
        "lbctl patch web --set capacity.max=N"
    )
    assert len(lines) == 2  # the fleet meets it: nothing more to say


def test_why_capacity_of_a_fleet_short_of_its_minimum_names_the_launch_failure() -> None:
    rec = reconciled(record(desired=2, capacity={"min": 2, "max": 4}), [lbvm(1)])
    failure = Event(
        time=NOW,
        type="Warning",
        reason="LaunchFailed",
        message="RunInstances: InsufficientInstanceCapacity: no c6i.large capacity in us-east-1b",
    )
    text = answer("capacity", document(rec), events=[failure.model_dump(mode="json", by_alias=True)], now=NOW)
    assert "desired capacity is 2 because it is capacity.min, and the scaler has not changed it" in text
    assert "it changes next when the scaler's policy says so: sizes the fleet under peaks per LBVM of cpu 90%" in text
    assert "the fleet does not meet it yet: 1 of 2 LBVMs routable; 1 to launch now (CapacityMet" in text
    assert (
        "the last launch failed at 12:00: RunInstances: InsufficientInstanceCapacity: no c6i.large capacity in "
        "us-east-1b; until the account can launch it (quota, capacity, image), lower capacity.min or change "
        "instance.type"
    ) in text


def test_why_phase_lists_what_keeps_ready_away_and_what_to_do() -> None:
    vms = [lbvm(1), lbvm(2, "Pending", subnet=SUBNET_B, age=timedelta(minutes=1))]
    rec = reconciled(record(desired=2), vms)
    text = answer("phase", document(rec), now=NOW)
    assert text.splitlines() == [
        "phase is Degraded because Ready is False since 12:00 (LbvmsStarting):",
        "  - CapacityMet is False (LbvmsStarting) since 12:00: 1 of 2 LBVMs routable; 1 starting since 11:59",
        "    what to do: wait: starting LBVMs become routable after their first healthy heartbeat "
        "(within lifecycle.pendingTimeoutSeconds)",
        "Degraded since 12:00 (BelowCapacity): 1 of 2 LBVMs routable; 1 starting since 11:59",
    ]
    up = reconciled(rec, [lbvm(1), lbvm(2, subnet=SUBNET_B)], NOW + timedelta(minutes=2))
    assert answer("phase", document(up), now=NOW) == "phase is Active: Ready since 12:02: 2 of 2 LBVMs routable"


def test_why_phase_names_a_rejected_template_as_the_gap_between_spec_and_fleet() -> None:
    # The planner's own rejection (tests/fleet/test_rollout_decisions): two canaries failed the pending timeout.
    rec = record(desired=4, capacity={"min": 1, "max": 10}, instance={"type": "c6i.xlarge"})
    old = fleet_of_four()
    rec = reconciled(rec, old)
    failed = [
        lbvm(n, "Draining", launch_template=NEW, created_at=NOW, drain_reason="pending-timeout", drain_requested_at=NOW)
        for n in (9, 10)
    ]
    rec = reconciled(rec, old + failed)
    rec = reconciled(rec, old)
    text = answer("phase", document(rec), now=NOW)
    assert text.startswith("phase is Active: Ready since 12:00"), text
    assert f"the spec and the fleet disagree (RolloutProgressing RolloutRejected): the spec asks for {NEW}" in text
    assert text.endswith("change the instance or proxy in the spec to try again")


def test_why_a_drained_lbvm_went_away_from_its_record_its_events_and_the_scalers_decision() -> None:
    drained_at, ended_at = NOW - timedelta(minutes=9), NOW - timedelta(minutes=5)
    gone = lbvm(
        5,
        "Terminated",
        age=timedelta(minutes=5),
        created_at=NOW - timedelta(hours=2),
        launch_reason="0 of 3 desired LBVMs routable in subnet-0123456789abcdef0: launching one",
        drain_reason="scale-in",
        drain_requested_at=drained_at,
        terminated_at=ended_at,
        end_reason="drained: 0 active connections (threshold 1) after 240 s",
    )
    events = [
        Event(time=ended_at, type="Normal", reason="Terminated", message="terminated", lbvm_id=gone.lbvm_id),
        Event(
            time=drained_at,
            type="Normal",
            reason="DrainRequested",
            message=f"{gone.lbvm_id} in subnet-a: 3 LBVMs for a desired capacity of 2; draining the excess",
            lbvm_id=gone.lbvm_id,
        ),
    ]
    detail = LbvmDetail.of(gone, events, truncated=False).model_dump(mode="json", by_alias=True)
    scaling = ScalingState(
        last_scale_in_at=drained_at - timedelta(minutes=1),
        last_decision="scaled in 3 -> 2: cpu 20% < 40% voted -1; all -1: remove one [vote]",
    )
    rec = reconciled(record(desired=2), [lbvm(1), lbvm(2, subnet=SUBNET_B)]).model_copy(update={"scaling": scaling})
    text = answer(gone.lbvm_id, document(rec), detail=detail, now=NOW)
    assert text.splitlines() == [
        f"{gone.lbvm_id} is Terminated since 11:55 (in {SUBNET_A}, us-east-1a)",
        "launched at 10:00 for generation 1 because: 0 of 3 desired LBVMs routable in subnet-0123456789abcdef0: "
        "launching one",
        "drained (scale-in) from 11:51: the desired capacity went down and it was drawn for scale-in; the "
        f"reconciler said: {gone.lbvm_id} in subnet-a: 3 LBVMs for a desired capacity of 2; draining the excess; "
        "the scaler at 11:50: scaled in 3 -> 2: cpu 20% < 40% voted -1; all -1: remove one [vote]",
        "ended at 11:55: drained: 0 active connections (threshold 1) after 240 s",
    ]


def test_describe_shows_spec_conditions_lbvms_scaling_and_events_on_one_screen() -> None:
    two = [lbvm(1, subnet=SUBNET_A), lbvm(2, subnet=SUBNET_B, agent_error="haproxy reload failed")]
    rec = reconciled(record(desired=2, capacity={"min": 1, "max": 3}, scaling={"policy": "vote"}), two)
    rec = scaled(rec, NOW)
    rec = reconciled(rec, [*two, lbvm(3, "Pending", age=timedelta(seconds=20))], NOW + timedelta(seconds=30))
    later = NOW + timedelta(minutes=2)
    events = [
        Event(time=NOW, type="Normal", reason="ScaledOut", message="scaled out 2 -> 3", actor="scaler").model_dump(
            mode="json", by_alias=True
        )
    ]
    text = render(document(rec, later), events, now=later)
    for needle in (
        f"Name:        web ({LB})",
        "Phase:       Degraded (Ready False since",
        "Listeners:   HTTP:80 -> app, HTTPS:443 -> app (+1 rules)",
        "Capacity:    min 1, desired 3, max 3",
        "Instance:    c6i.large, image latest Amazon Linux 2023",
        "WAF:         disabled",
        "CapacityMet         False   LbvmsStarting  12:00  2 of 3 LBVMs routable; 1 starting since 11:59",
        "Degraded            True    BelowCapacity",
        "LBVMs (1 Pending, 2 Routable):",
        "agent error: haproxy reload failed; launched: test",
        "Policy:         vote",
        "Last decision:  12:00: scaled out 2 -> 3: cpu 85% > 80% voted +1",
        "    - scales out by 1 when any of cpu > 80%, memory > 80%, activeConnections > 2000 connections per LBVM",
        "    - scales in by 1 when all of cpu < 40%, memory < 40%, activeConnections < 500 connections per LBVM",
        "    - no change before 12:10 (cooldown after the change at 12:00)",
        "    - never below capacity.min 1 nor above capacity.max 3",
        "Rollouts:\n  (none)",
        "Events (last 1, newest first):",
        "2026-11-28T12:00:00Z  Normal  ScaledOut  scaled out 2 -> 3",
    ):
        assert needle in text, f"{needle!r} not in:\n{text}"
    # Past the cooldown, the outlook says so.
    assert "no cooldown in force (600 s after each change)" in scaling_outlook(
        document(rec, later), NOW + timedelta(minutes=11)
    )


def test_why_phase_explains_a_failed_fleet_with_the_error_and_what_to_do() -> None:
    from tests.fleet.test_conditions import _failed_launch

    vms = [_failed_launch(1, 9), _failed_launch(2, 8), _failed_launch(3, 7)]  # never heard from: no heartbeat
    rec = record(desired=2)
    rec = rec.model_copy(update={"status": plan(rec, vms, registered(vms), NOW, rng=random.Random(3)).status})
    assert rec.status.phase == "Failed"
    lines = answer("phase", document(rec), now=NOW).splitlines()
    assert lines[0] == "phase is Failed because Ready is False since 12:00 (NoneRoutable):"
    degraded = next(line for line in lines if line.startswith("Degraded since"))
    assert "(LaunchesFailing)" in degraded and "InsufficientInstanceCapacity" in degraded
    assert lines[-1].startswith("  it cannot converge as things are; what to do: EC2 refuses the launches")
    assert "lbctl patch web" in lines[-1]
