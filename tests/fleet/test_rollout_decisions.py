"""The rollout decision, one transition at a time (pure: plain models, time passed in)."""

from __future__ import annotations

from datetime import timedelta

from lbcp.models.lbvm import Lbvm
from lbcp.models.rollout import RolloutControl, RolloutStatus
from lbcp.reconcile.jobs import Launch, RequestDrain
from lbcp.reconcile.plan.rollout import RolloutDecision, decide_rollout
from tests.fleet.test_planner import NOW, OLD_TEMPLATE, SUBNET_A, SUBNET_B, decide, kinds, lbvm, record, world

NEW = "c6i.xlarge from the latest Amazon Linux 2023 running haproxy"


def fleet_of_four() -> list[Lbvm]:
    return [lbvm(n, subnet=(SUBNET_A, SUBNET_B)[n % 2], launch_template=OLD_TEMPLATE) for n in range(1, 5)]


def test_a_new_template_starts_a_rollout_whose_canary_goes_first_and_alone() -> None:
    rec = record(desired=4, capacity={"min": 1, "max": 10}, instance={"type": "c6i.xlarge"}, rollout={"maxSurge": 2})
    old = fleet_of_four()
    first = decide(rec, old, world(old))
    [launch] = first.jobs  # maxSurge 2, but the canary is 1
    assert isinstance(launch, Launch) and launch.template is not None and launch.template.description == NEW
    rollout = first.status.rollout
    assert rollout is not None and (rollout.state, rollout.step, rollout.progress) == (
        "Progressing",
        "Canary",
        "0 of 4 replaced",
    )
    assert rollout.from_template.description == OLD_TEMPLATE and rollout.to_template.description == NEW
    assert [note.reason for note in first.notes] == ["RolloutStarted"]
    # The canary serves: one old LBVM gives way, and nothing more is launched until the bake is over.
    rec = rec.model_copy(update={"status": first.status})
    up = [*old, lbvm(9, launch_template=NEW, created_at=NOW)]
    second = decide(rec, up, world(up))
    assert kinds(second) == {"RequestDrain": 1}
    assert second.status.rollout is not None and second.status.rollout.step == "Bake"
    assert "baking for 300 s" in second.status.rollout.message


def test_a_canary_that_never_gets_healthy_rolls_back_with_the_numbers_and_is_not_retried() -> None:
    rec = record(desired=4, capacity={"min": 1, "max": 10}, instance={"type": "c6i.xlarge"})
    old = fleet_of_four()
    started = decide(rec, old, world(old))
    rec = rec.model_copy(update={"status": started.status})
    # Two canaries in turn reach their pending timeout without a healthy heartbeat.
    failed = [
        lbvm(n, "Draining", launch_template=NEW, created_at=NOW, drain_reason="pending-timeout", drain_requested_at=NOW)
        for n in (9, 10)
    ]
    later = decide(rec, old + failed, world(old + failed))
    rollout = later.status.rollout
    assert rollout is not None and rollout.state == "RolledBack" and rollout.rejected
    assert rollout.message.startswith(
        f"2 of 2 canary LBVM(s) on {NEW} failed the health gate: 2 never sent a healthy heartbeat within 600 s; "
        f"rolling back to {OLD_TEMPLATE}; the spec keeps asking for {NEW}: fix it or PATCH it back"
    )
    assert [note.reason for note in later.notes] == ["RolloutFailed", "RolledBack"]
    assert not [job for job in later.jobs if isinstance(job, Launch)]
    # Rejected: an LBVM lost later is replaced on the old template, and no new rollout starts.
    rec = rec.model_copy(update={"status": later.status})
    three = old[:3]
    after = decide(rec, three, world(three))
    [launch] = [job for job in after.jobs if isinstance(job, Launch)]
    assert launch.template is not None and launch.template.description == OLD_TEMPLATE
    assert after.status.rollout == later.status.rollout and after.status.phase == "Degraded"
    assert f"the spec asks for {NEW}, which rollout {rollout.id} rejected" in (after.status.message or "")
    [progressing] = [c for c in after.status.conditions if c.type == "RolloutProgressing"]
    assert (progressing.status, progressing.reason) == ("False", "RolloutRejected")
    assert progressing.message == (
        f"the spec asks for {NEW}, which rollout {rollout.id} rejected: running {OLD_TEMPLATE}; "
        "change the instance or proxy in the spec to try again"
    )


def test_a_stalled_rollout_fails_at_its_progress_deadline() -> None:
    rec = record(desired=2, capacity={"min": 1, "max": 4}, instance={"type": "c6i.xlarge"})
    old = [lbvm(1, launch_template=OLD_TEMPLATE), lbvm(2, subnet=SUBNET_B, launch_template=OLD_TEMPLATE)]
    started = decide(rec, old, world(old)).status.rollout
    assert started is not None
    # The canary is Routable but its agent refuses the config: it never passes the gate.
    refused = lbvm(9, launch_template=NEW, created_at=NOW, applied_config_version=0, agent_error="haproxy -c failed")
    lbvms = [*old, refused]
    deadline = rec.spec.rollout.progress_deadline_seconds
    before = decide_rollout(
        started, None, rec.spec, generation=1, desired=2, lbvms=lbvms, now=NOW + timedelta(seconds=deadline)
    )
    assert before.rollout is not None and before.rollout.step == "Canary"
    assert before.rollout.waiting_for is not None and "to pass the health gate" in before.rollout.waiting_for
    after = decide_rollout(
        started, None, rec.spec, generation=1, desired=2, lbvms=lbvms, now=NOW + timedelta(seconds=deadline + 1)
    )
    assert after.rollout is not None and after.rollout.step == "Rollback" and after.rollout.rejected
    assert f"0 of 1 canary LBVM(s) on {NEW} healthy after {deadline + 1} s" in after.rollout.message
    assert after.template.description == OLD_TEMPLATE


def test_pause_resume_and_abort_are_the_operators_and_idempotent() -> None:
    rec = record(desired=2, capacity={"min": 1, "max": 4}, instance={"type": "c6i.xlarge"})
    old = [lbvm(1, launch_template=OLD_TEMPLATE), lbvm(2, subnet=SUBNET_B, launch_template=OLD_TEMPLATE)]
    started = decide(rec, old, world(old)).status.rollout
    assert started is not None

    def control(action: str, at: timedelta) -> RolloutControl:
        return RolloutControl(rollout_id=started.id, action=action, requested_at=NOW + at, requested_by="ops")

    def run(rollout: RolloutStatus | None, action: str, at: timedelta) -> RolloutDecision:
        return decide_rollout(rollout, control(action, at), rec.spec, generation=1, desired=2, lbvms=old, now=NOW + at)

    paused = run(started, "pause", timedelta(seconds=10))
    assert paused.rollout is not None and paused.rollout.state == "Paused" and paused.cap == 0
    again = run(paused.rollout, "pause", timedelta(seconds=20))
    assert again.rollout == paused.rollout and not again.notes  # idempotent
    # Paused for longer than the progress deadline: nothing fails while paused.
    long_after = timedelta(seconds=rec.spec.rollout.progress_deadline_seconds * 3)
    still = run(paused.rollout, "pause", long_after)
    assert still.rollout is not None and still.rollout.state == "Paused"
    resumed = run(still.rollout, "resume", long_after)
    assert resumed.rollout is not None and (resumed.rollout.state, resumed.rollout.step) == ("Progressing", "Canary")
    aborted = run(resumed.rollout, "abort", long_after)
    assert aborted.rollout is not None and aborted.rollout.state == "RolledBack" and aborted.rollout.rejected
    assert "aborted by ops at step Canary" in aborted.rollout.message
    assert run(aborted.rollout, "abort", long_after).rollout == aborted.rollout


def test_patching_the_template_back_during_a_rollout_returns_the_fleet_without_rejecting_anything() -> None:
    rec = record(desired=2, capacity={"min": 1, "max": 4}, instance={"type": "c6i.xlarge"})
    old = [lbvm(1, launch_template=OLD_TEMPLATE), lbvm(2, subnet=SUBNET_B, launch_template=OLD_TEMPLATE)]
    started = decide(rec, old, world(old)).status
    back = record(desired=2, capacity={"min": 1, "max": 4}, instance={"type": "c5.large"})
    back = back.model_copy(update={"status": started, "generation": 2})
    canary = lbvm(9, "Pending", age=timedelta(seconds=30), launch_template=NEW, created_at=NOW)
    result = decide(back, [*old, canary], world([*old, canary]))
    drained = [job for job in result.jobs if isinstance(job, RequestDrain)]
    assert [job.lbvm_id for job in drained] == [canary.lbvm_id] and drained[0].drain_reason == "rollout"
    rollout = result.status.rollout
    assert rollout is not None and (rollout.state, rollout.step, rollout.rejected) == ("Progressing", "Rollback", False)
    gone = decide(back.model_copy(update={"status": result.status}), old, world(old)).status.rollout
    assert gone is not None and gone.state == "RolledBack" and not gone.rejected


def test_a_canary_answering_clearly_more_5xx_than_the_rest_during_the_bake_rolls_back() -> None:
    rec = record(desired=4, capacity={"min": 1, "max": 10}, instance={"type": "c6i.xlarge"})

    def counted(vm: Lbvm, requests: int, errors: int) -> Lbvm:
        return vm.model_copy(update={"boot_id": "boot", "http_requests": requests, "http_server_errors": errors})

    old = [counted(vm, 1000, 1) for vm in fleet_of_four()]
    started = decide(rec, old, world(old))
    rec = rec.model_copy(update={"status": started.status})
    canary = counted(lbvm(9, launch_template=NEW, created_at=NOW), 10, 0)
    up = [*old, canary]
    baking = decide(rec, up, world(up)).status
    assert baking.rollout is not None and baking.rollout.step == "Bake"
    assert baking.rollout.answers_at_bake[canary.lbvm_id].requests == 10  # the window starts here
    rec = rec.model_copy(update={"status": baking})
    one_old_left = old[1:]  # the canary took one old LBVM's place

    def during_bake(canary_answers: tuple[int, int]) -> RolloutStatus | None:
        now_old = [counted(vm, 1400, 2) for vm in one_old_left]  # 1200 answers, 3 of them 5xx (0.25%)
        now = [*now_old, counted(canary, *canary_answers)]
        return decide_rollout(
            baking.rollout, None, rec.spec, generation=1, desired=4, lbvms=now, now=NOW + timedelta(seconds=60)
        ).rollout

    # As good as the rest: it bakes on.
    fine = during_bake((410, 1))
    assert fine is not None and fine.step == "Bake"
    # 40 of its 400 answers were 5xx, against 3 of 1200: rolled back, saying both numbers.
    bad = during_bake((410, 40))
    assert bad is not None and bad.step == "Rollback" and bad.rejected
    assert (
        "the canary answered worse than the rest during the bake: 40 of 400 answers 5xx (10.0%) on 1 LBVM(s) "
        "against 3 of 1200 answers 5xx (0.2%) on 3 LBVM(s)"
    ) in bad.message
