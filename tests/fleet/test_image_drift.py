"""Image drift and rollout alarms, decided by the real planner (pure: plain models, time passed in)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from lbcp.models.lbvm import Lbvm
from lbcp.models.resource import LoadBalancerRecord
from lbcp.reconcile.jobs import Launch, RequestDrain
from lbcp.reconcile.observed import LoadBalancerView, ObservedAlarm, ObservedInstance
from lbcp.reconcile.plan import ReconcilePlan, plan
from lbcp.reconcile.plan.rollout import decide_rollout
from tests.fleet.test_planner import LB, NOW, READY, SUBNET_A, SUBNET_B, lbvm, record

OLD, NEW, NEWER = "ami-0000000000000000a", "ami-0000000000000000b", "ami-0000000000000000c"
LATEST = "c6i.large from the latest Amazon Linux 2023 running haproxy"


def pinned(ami: str) -> str:
    return f"c6i.large from the latest Amazon Linux 2023 ({ami}) running haproxy"


# What each test LBVM's instance runs, as EC2 lists it (lbvm id -> AMI).
RUNS: dict[str, str] = {}


def lbvm_on(number: int, image: str, **changes: Any) -> Lbvm:
    vm = lbvm(number, **changes)
    RUNS[vm.lbvm_id] = image
    return vm


def fleet(*images: str, template: str = LATEST) -> list[Lbvm]:
    return [
        lbvm_on(n, image, subnet=(SUBNET_A, SUBNET_B)[n % 2], launch_template=template)
        for n, image in enumerate(images, start=1)
    ]


def view(vms: list[Lbvm], latest: str | None) -> LoadBalancerView:
    """What EC2 lists (each instance with the AMI it runs) and what the public parameter says now."""
    instances = tuple(
        ObservedInstance(vm.instance_id, LB, vm.lbvm_id, "running", vm.subnet_id, "10.0.0.1", NOW, RUNS.get(vm.lbvm_id))
        for vm in vms
        if vm.instance_id and vm.state != "Terminated"
    )
    return LoadBalancerView(instances=instances, entry=READY, latest_image=latest)


def tick(
    rec: LoadBalancerRecord, vms: list[Lbvm], seen: LoadBalancerView, later: timedelta = timedelta()
) -> ReconcilePlan:
    return plan(rec, vms, seen, NOW + later, rng=random.Random(7))


def after(rec: LoadBalancerRecord, result: ReconcilePlan) -> LoadBalancerRecord:
    return rec.model_copy(update={"status": result.status})


def reasons(result: ReconcilePlan) -> list[str]:
    return [note.reason for note in result.notes]


# --- reported ----------------------------------------------------------------------------------------------


def test_a_newer_image_is_reported_with_the_numbers_once_per_image_and_nothing_is_replaced() -> None:
    rec = record(desired=3)
    vms = fleet(OLD, OLD, NEW)
    first = tick(rec, vms, view(vms, NEW))
    assert first.jobs == () and first.status.rollout is None
    drift = first.status.newer_image
    assert drift is not None
    assert drift.message == (
        f"a newer image is available: {NEW} (running {OLD} on 2 of 3 LBVMs); "
        "set rollout.followLatestImage to roll onto it"
    )
    assert (drift.image_id, drift.running_image_ids, drift.outdated, drift.lbvms, drift.since) == (
        NEW,
        [OLD],
        2,
        3,
        NOW,
    )
    assert reasons(first) == ["NewerImageAvailable"] and first.notes[0].message == drift.message

    # The next ticks say nothing new, and write nothing.
    rec = after(rec, first)
    second = tick(rec, vms, view(vms, NEW), timedelta(seconds=1))
    assert reasons(second) == [] and second.is_noop(rec.status)

    # A read that failed is not news either: what was said stands.
    unread = tick(rec, vms, view(vms, None), timedelta(seconds=2))
    assert reasons(unread) == [] and unread.status.newer_image == drift

    # An even newer image is news again, with its own first sighting.
    third = tick(rec, vms, view(vms, NEWER), timedelta(seconds=3))
    assert reasons(third) == ["NewerImageAvailable"]
    assert third.status.newer_image is not None
    assert third.status.newer_image.message.startswith(
        f"a newer image is available: {NEWER} (running {OLD}, {NEW} on 3 of 3 LBVMs)"
    )
    assert third.status.newer_image.since == NOW + timedelta(seconds=3)


def test_a_fleet_on_the_latest_image_or_on_an_image_of_its_own_reports_nothing() -> None:
    vms = fleet(NEW, NEW)
    assert tick(record(), vms, view(vms, NEW)).status.newer_image is None
    # The spec names its image: the public parameter is not its business.
    own = record(instance={"imageId": OLD})
    mine = fleet(OLD, OLD, template=f"c6i.large from {OLD} running haproxy")
    result = tick(own, mine, view(mine, NEW))
    assert result.status.newer_image is None and reasons(result) == []


def test_a_report_goes_away_once_every_lbvm_runs_the_latest_image() -> None:
    rec = record(desired=2)
    vms = fleet(OLD, NEW)
    rec = after(rec, tick(rec, vms, view(vms, NEW)))
    assert rec.status.newer_image is not None
    replaced = fleet(NEW, NEW)
    assert tick(rec, replaced, view(replaced, NEW)).status.newer_image is None


# --- followed (rollout.followLatestImage) --------------------------------------------------------------------


def test_following_rolls_onto_the_concrete_ami_a_rejected_one_is_not_retried_and_a_later_one_is() -> None:
    rec = record(desired=2, capacity={"min": 1, "max": 4}, rollout={"followLatestImage": True})
    vms = fleet(OLD, OLD)
    started = tick(rec, vms, view(vms, NEW))
    rollout = started.status.rollout
    assert rollout is not None and (rollout.state, rollout.step) == ("Progressing", "Canary")
    assert rollout.from_template.latest_image == OLD and rollout.to_template.latest_image == NEW
    [launch] = [job for job in started.jobs if isinstance(job, Launch)]
    assert launch.template is not None and launch.template.description == pinned(NEW)
    assert reasons(started) == ["RolloutStarted", "NewerImageAvailable"]
    assert started.status.newer_image is not None
    assert started.status.newer_image.message.endswith(
        f"rollout {rollout.id} rolls the fleet onto it (0 of 2 replaced)"
    )

    # Both canaries on the new AMI never get healthy: the rollout fails and the fleet returns to the old AMI.
    rec = after(rec, started)
    dead = [
        lbvm_on(
            n,
            NEW,
            state="Draining",
            launch_template=pinned(NEW),
            created_at=NOW,
            drain_reason="pending-timeout",
            drain_requested_at=NOW,
        )
        for n in (8, 9)
    ]
    failed = tick(rec, vms + dead, view(vms + dead, NEW), timedelta(seconds=10))
    rolled_back = failed.status.rollout
    assert rolled_back is not None and rolled_back.state == "RolledBack" and rolled_back.rejected
    assert reasons(failed) == ["RolloutFailed", "RolledBack"]

    # Rejected: an LBVM lost later comes back on the AMI the fleet ran (not on "the latest", which is the bad one).
    rec = after(rec, failed)
    one = vms[:1]
    held = tick(rec, one, view(one, NEW), timedelta(seconds=11))
    [replacement] = [job for job in held.jobs if isinstance(job, Launch)]
    assert replacement.template is not None and replacement.template.description == pinned(OLD)
    assert "RolloutStarted" not in reasons(held) and held.status.rollout == rolled_back
    assert held.status.newer_image is not None
    assert f"rollout {rolled_back.id} rejected it" in held.status.newer_image.message

    # AWS publishes a later image: that one is tried.
    later = tick(rec, vms, view(vms, NEWER), timedelta(seconds=12))
    retried = later.status.rollout
    assert retried is not None and retried.id != rolled_back.id and retried.to_template.latest_image == NEWER
    assert reasons(later) == ["RolloutStarted", "NewerImageAvailable"]


def test_following_starts_nothing_for_lbvms_already_on_the_latest_image_even_those_not_listed_yet() -> None:
    rec = record(desired=3, rollout={"followLatestImage": True})
    vms = fleet(NEW, NEW)
    booting = lbvm(3, state="Launching", launch_template=LATEST, created_at=NOW)  # no instance yet
    result = tick(rec, [*vms, booting], view(vms, NEW))
    assert result.status.rollout is None and result.status.newer_image is None
    assert not [job for job in result.jobs if isinstance(job, (Launch, RequestDrain))]


def test_switching_following_off_rolls_nothing() -> None:
    rec = record(desired=2)  # followLatestImage false: LBVMs pinned while it was on stay where they are
    vms = fleet(NEW, NEW, template=pinned(NEW))
    result = tick(rec, vms, view(vms, NEWER))
    assert result.status.rollout is None
    assert not [job for job in result.jobs if isinstance(job, (Launch, RequestDrain))]
    assert result.status.newer_image is not None and result.status.newer_image.outdated == 2


def test_a_failed_parameter_read_neither_starts_nor_supersedes_a_rollout() -> None:
    rec = record(desired=2, capacity={"min": 1, "max": 4}, rollout={"followLatestImage": True})
    vms = fleet(OLD, OLD)
    started = tick(rec, vms, view(vms, NEW))
    assert started.status.rollout is not None
    rec = after(rec, started)
    unread = tick(rec, vms, view(vms, None), timedelta(seconds=1))
    assert unread.status.rollout is not None and unread.status.rollout.id == started.status.rollout.id
    assert unread.status.rollout.active and "RolloutSuperseded" not in reasons(unread)
    # Without a rollout to lean on, an unread parameter leaves the fleet alone.
    quiet = tick(record(desired=2, rollout={"followLatestImage": True}), vms, view(vms, None))
    assert quiet.status.rollout is None and quiet.jobs == ()


# --- rollout alarms (rollout.alarmNames) ---------------------------------------------------------------------

ALARMS = ["api-5xx", "p99-latency"]
BREACH = "Threshold Crossed: 1 datapoint [12.0 (07/12/26 10:00:00)] was greater than the threshold (5.0)."


def alarm(name: str, state: str, reason: str = "") -> ObservedAlarm:
    return ObservedAlarm(name=name, state=state, reason=reason)


def test_an_alarm_in_alarm_fails_the_rollout_and_names_the_alarm_and_its_reason() -> None:
    rec = record(
        desired=2, capacity={"min": 1, "max": 4}, instance={"type": "c6i.xlarge"}, rollout={"alarmNames": ALARMS}
    )
    old = [lbvm(1, launch_template=LATEST), lbvm(2, subnet=SUBNET_B, launch_template=LATEST)]
    started = tick(rec, old, view(old, None)).status.rollout
    assert started is not None and started.step == "Canary"
    canary = lbvm(9, "Pending", launch_template="c6i.xlarge from the latest Amazon Linux 2023 running haproxy")
    lbvms = [*old, canary.model_copy(update={"created_at": NOW})]

    def decide(alarms: tuple[ObservedAlarm, ...] | None, rollout: Any = started) -> Any:
        return decide_rollout(
            rollout,
            None,
            rec.spec,
            generation=1,
            desired=2,
            lbvms=lbvms,
            now=NOW + timedelta(seconds=30),
            alarms=alarms,
        )

    # OK, no data yet, an alarm the spec does not name, or alarms not read this tick: the rollout goes on.
    for fine in (
        (alarm("api-5xx", "OK"), alarm("p99-latency", "INSUFFICIENT_DATA")),
        (alarm("someone-elses", "ALARM", BREACH),),
        None,
    ):
        going = decide(fine)
        assert going.rollout is not None and going.rollout.step == "Canary" and not going.notes
    failed = decide((alarm("api-5xx", "ALARM", BREACH), alarm("p99-latency", "OK")))
    assert failed.rollout is not None and failed.rollout.step == "Rollback" and failed.rollout.rejected
    assert failed.template.description == LATEST
    [note] = [note for note in failed.notes if note.reason == "RolloutFailed"]
    assert note.type == "Warning"
    assert f"alarm api-5xx is in ALARM ({BREACH}) at 0 of 2 replaced; rolling back to {LATEST}" in note.message
    # The way back is not judged by the alarms: they may well be why it is needed.
    back = decide((alarm("api-5xx", "ALARM", BREACH),), failed.rollout)
    assert (
        back.rollout is not None
        and back.rollout.step == "Rollback"
        and "RolloutFailed" not in [n.reason for n in back.notes]
    )


def test_a_paused_rollout_is_not_failed_by_its_alarms() -> None:
    from lbcp.models.rollout import RolloutControl

    rec = record(
        desired=2, capacity={"min": 1, "max": 4}, instance={"type": "c6i.xlarge"}, rollout={"alarmNames": ALARMS}
    )
    old = [lbvm(1, launch_template=LATEST), lbvm(2, subnet=SUBNET_B, launch_template=LATEST)]
    started = tick(rec, old, view(old, None)).status.rollout
    assert started is not None
    pause = RolloutControl(rollout_id=started.id, action="pause", requested_at=NOW, requested_by="ops")
    paused = decide_rollout(
        started,
        pause,
        rec.spec,
        generation=1,
        desired=2,
        lbvms=old,
        now=NOW,
        alarms=(alarm("api-5xx", "ALARM", BREACH),),
    )
    assert paused.rollout is not None and paused.rollout.state == "Paused"
    resume = pause.model_copy(update={"action": "resume"})
    resumed = decide_rollout(
        paused.rollout,
        resume,
        rec.spec,
        generation=1,
        desired=2,
        lbvms=old,
        now=NOW,
        alarms=(alarm("api-5xx", "ALARM", BREACH),),
    )
    # Resumed, it is judged again: nothing of the new template was launched, so it is back at once.
    assert resumed.rollout is not None and resumed.rollout.state == "RolledBack" and resumed.rollout.rejected
    assert [note.reason for note in resumed.notes] == ["RolloutResumed", "RolloutFailed", "RolledBack"]
    assert "alarm api-5xx is in ALARM" in resumed.notes[1].message


def test_verdicts_stored_before_these_settings_keep_their_key_and_the_followed_ami_is_part_of_it() -> None:
    from lbcp.models.rollout import template_of
    from lbcp.reconcile.plan.rollout import verdict_key
    from lbcp.validation import parse_spec
    from tests.unit.test_spec import valid

    # Digests computed by the code before followLatestImage and alarmNames existed: a rejected template
    # stays rejected across the upgrade. Specs are stored with every default written out, so those
    # stored then say heartbeatIntervalSeconds 5 (the default then) and keep it, and their key.
    stored = {**valid(), "lifecycle": {"heartbeatIntervalSeconds": 5}}
    assert verdict_key(parse_spec(stored)) == "04ef547150263c30"
    assert verdict_key(parse_spec({**stored, "rollout": {"bakeSeconds": 60}})) == "767c82ec20b87bf4"
    gated = parse_spec({**stored, "rollout": {"alarmNames": ["api-5xx"]}})
    assert verdict_key(gated) != "04ef547150263c30"  # a new gate is a new verdict
    following = parse_spec({**valid(), "rollout": {"followLatestImage": True}})
    keys = {verdict_key(following, template_of(following, ami)) for ami in (OLD, NEW)}
    assert len(keys) == 2  # a later AMI is judged afresh
