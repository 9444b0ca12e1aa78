"""Staged config changes, one transition at a time (pure: plain models, time passed in)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lbcp.models.config_rollout import ConfigRolloutStatus, ServedConfig, preload_config_version, served_config_version
from lbcp.models.lbvm import Lbvm
from lbcp.models.rollout import RolloutAction, RolloutControl, template_of
from lbcp.models.spec import LoadBalancerSpec
from lbcp.reconcile.plan.config_rollout import (
    ConfigDecision,
    apply_config_control,
    config_digest,
    decide_config_rollout,
)
from lbcp.validation import parse_spec
from tests.fleet.test_planner import NOW, OLD_TEMPLATE, SUBNET_A, SUBNET_B, decide, lbvm, record, world
from tests.unit.test_spec import valid

BAKE = 300
DEADLINE = 900


def spec(port: int = 8080, **changes: Any) -> LoadBalancerSpec:
    """A spec whose app backend listens on ``port``: another port is another config."""
    document = valid()
    document["backends"][0]["targets"][0]["port"] = port
    rollout = {"canary": 1, "bakeSeconds": BAKE, "progressDeadlineSeconds": DEADLINE}
    return parse_spec({**document, "capacity": {"min": 1, "max": 10}, "rollout": rollout, **changes})


V1 = spec()
SERVED_V1 = ServedConfig(version=1, digest=config_digest(V1))
V2 = spec(port=8081)  # generation 2: a config-only change


def fleet(count: int = 4, version: int = 1, **changes: Any) -> list[Lbvm]:
    return [
        lbvm(
            n,
            subnet=(SUBNET_A, SUBNET_B)[n % 2],
            **{
                "launch_template": OLD_TEMPLATE,
                "agent_state": "ready",
                "applied_config_version": version,
                "backend_health": "api=2/2,app=1/1",
                **changes,
            },
        )
        for n in range(1, count + 1)
    ]


def run(
    previous: ConfigRolloutStatus | None,
    lbvms: list[Lbvm],
    at: timedelta = timedelta(0),
    *,
    served: ServedConfig | None = SERVED_V1,
    current: LoadBalancerSpec = V2,
    generation: int = 2,
    template_rolling: bool = False,
    control: RolloutControl | None = None,
) -> ConfigDecision:
    return decide_config_rollout(
        previous,
        served,
        current,
        generation=generation,
        desired=len(lbvms),
        lbvms=lbvms,
        now=NOW + at,
        template_rolling=template_rolling,
        load_balancer_id="lb-0123456789abcdef0",
        control=control,
    )


def control(rollout: ConfigRolloutStatus | None, action: RolloutAction, at: timedelta) -> RolloutControl:
    assert rollout is not None
    return RolloutControl(rollout_id=rollout.id, action=action, requested_at=NOW + at, requested_by="alice")


def told(decision: ConfigDecision, lbvms: list[Lbvm], generation: int = 2) -> dict[str, int]:
    return {
        vm.lbvm_id: served_config_version(decision.served, decision.rollout, generation, vm.lbvm_id) for vm in lbvms
    }


def applying(lbvms: list[Lbvm], ids: set[str], version: int, **changes: Any) -> list[Lbvm]:
    """The fleet after the LBVMs ``ids`` applied ``version`` (and whatever else changed on them)."""
    return [
        vm.model_copy(update={"applied_config_version": version, **changes}) if vm.lbvm_id in ids else vm
        for vm in lbvms
    ]


def started(lbvms: list[Lbvm]) -> tuple[ConfigDecision, str]:
    decision = run(None, lbvms)
    assert decision.rollout is not None
    [canary] = decision.rollout.canary_lbvms
    return decision, canary


def test_a_config_only_change_goes_to_one_canary_first_and_the_rest_after_the_bake() -> None:
    lbvms = fleet()
    first, canary = started(lbvms)
    rollout = first.rollout
    assert rollout is not None
    assert (rollout.state, rollout.step, rollout.from_version, rollout.to_version) == ("Progressing", "Canary", 1, 2)
    assert told(first, lbvms) == {vm.lbvm_id: 2 if vm.lbvm_id == canary else 1 for vm in lbvms}
    assert [note.reason for note in first.notes] == ["RolloutStarted"]
    assert f"staging config version 2 (from version 1): 1 canary LBVM(s) first ({canary})" in first.notes[0].message
    # The canary applies it and passes the gate: the bake starts, and still nobody else is told version 2.
    on_canary = applying(lbvms, {canary}, 2)
    baking = run(rollout, on_canary, timedelta(seconds=10))
    assert baking.rollout is not None and baking.rollout.step == "Bake"
    assert sum(v == 2 for v in told(baking, lbvms).values()) == 1
    during = run(baking.rollout, on_canary, timedelta(seconds=10 + BAKE - 1))
    assert during.rollout is not None and during.rollout.step == "Bake"
    assert during.rollout.waiting_for is not None and "the bake to end at" in during.rollout.waiting_for
    # The bake ends: everyone is told version 2.
    rolling = run(during.rollout, on_canary, timedelta(seconds=10 + BAKE))
    assert rolling.rollout is not None and rolling.rollout.step == "Roll"
    assert set(told(rolling, lbvms).values()) == {2}
    assert rolling.rollout.progress == "1 of 4 on config version 2"
    everyone = applying(lbvms, {vm.lbvm_id for vm in lbvms}, 2)
    done = run(rolling.rollout, everyone, timedelta(seconds=20 + BAKE))
    assert done.rollout is not None and done.rollout.state == "Succeeded"
    assert done.served == ServedConfig(version=2, digest=config_digest(V2))
    assert set(told(done, lbvms).values()) == {2}
    assert "4 of 4 LBVMs on config version 2, all healthy" in done.rollout.message


def test_a_change_the_agents_do_not_render_moves_every_lbvm_on_at_once() -> None:
    decision = run(None, fleet(), current=spec(capacity={"min": 2, "max": 10}))
    assert decision.rollout is None and not decision.notes
    assert decision.served == ServedConfig(version=2, digest=config_digest(V1))


def test_a_template_rollout_supersedes_a_config_rollout_and_keeps_the_last_good_version_served() -> None:
    lbvms = fleet()
    first, _ = started(lbvms)
    superseded = run(first.rollout, lbvms, timedelta(seconds=5), generation=3, template_rolling=True)
    # The old LBVMs go back to version 1 (their canary's version 2 never passed); new instances get 3.
    assert superseded.rollout is None and superseded.served == SERVED_V1
    [ended] = superseded.ended
    assert ended.state == "Failed" and "superseded" in ended.message
    assert "the LBVMs they replace go back to config version 1" in ended.message


def test_a_rollout_onto_another_proxy_tells_only_its_new_lbvms_the_new_config() -> None:
    """An HAProxy LBVM is never told a config version written for NGINX (it could not render it)."""
    from tests.fleet.test_planner import decide, record

    def template_rollout_plan(vms: list[Lbvm], served: ServedConfig) -> Any:
        rec = record(desired=2, proxy="nginx")
        status = rec.status.model_copy(update={"config": served})
        rec = rec.model_copy(update={"generation": 2, "status": status})
        return rec, decide(rec, vms, world(vms))

    old = [
        lbvm(n, subnet=(SUBNET_A, SUBNET_B)[n % 2], launch_template=OLD_TEMPLATE, agent_state="ready") for n in (1, 2)
    ]
    served = ServedConfig(version=1, digest=config_digest(parse_spec(valid())))
    rec, result = template_rollout_plan(old, served)
    rollout = result.status.rollout
    assert rollout is not None and rollout.active and rollout.to_template.proxy == "nginx"
    assert result.status.config == served  # not moved on to generation 2 while the rollout runs
    new_template = rollout.to_template.description
    newcomer = lbvm(3, "Pending", launch_template=new_template, applied_config_version=None)
    status = result.status

    def told_to(vm: Lbvm) -> int:
        return served_config_version(
            status.config,
            status.config_rollout,
            rec.generation,
            vm.lbvm_id,
            template_rollout=status.rollout,
            launch_template=vm.launch_template,
        )

    assert [told_to(vm) for vm in old] == [1, 1]
    assert told_to(newcomer) == 2


def test_a_canary_whose_proxy_refuses_the_config_rolls_everyone_back_and_the_version_is_rejected() -> None:
    lbvms = fleet()
    first, canary = started(lbvms)
    # The agent validated version 2 and refused it: still on version 1, ready, with an error.
    refused = applying(lbvms, {canary}, 1, agent_error="haproxy -c: backend 'app' has no server")
    failed = run(first.rollout, refused, timedelta(seconds=10))
    rollout = failed.rollout
    assert rollout is not None and rollout.rejected
    # It is already back on version 1, so the rollback ends at once.
    assert rollout.state == "RolledBack" and set(told(failed, lbvms).values()) == {1}
    assert [note.reason for note in failed.notes] == ["RolloutFailed", "RolledBack"]
    assert (
        f"1 of 1 LBVM(s) on config version 2: {canary} reported an error (still running version 1): haproxy -c"
        in rollout.message
    )
    assert "the spec keeps asking for version 2's config" in rollout.message
    # Rejected: a PATCH that changes nothing the agents render keeps everyone on version 1...
    held = run(
        rollout, lbvms, timedelta(seconds=60), current=spec(port=8081, capacity={"min": 2, "max": 10}), generation=3
    )
    assert held.held_back and held.served.version == 1 and not held.notes
    assert set(told(held, lbvms, generation=3).values()) == {1}
    # ...and one that changes the config starts a new rollout from version 1.
    fixed = run(rollout, lbvms, timedelta(seconds=90), current=spec(port=8082), generation=4)
    assert fixed.rollout is not None and fixed.rollout.id != rollout.id
    assert (fixed.rollout.from_version, fixed.rollout.to_version, fixed.rollout.step) == (1, 4, "Canary")


def test_a_config_that_breaks_a_health_check_fails_the_canary_during_the_bake_with_the_numbers() -> None:
    lbvms = fleet()
    first, canary = started(lbvms)
    on_canary = applying(lbvms, {canary}, 2)
    baking = run(first.rollout, on_canary, timedelta(seconds=10))
    assert baking.rollout is not None and baking.rollout.step == "Bake"
    # The proxy took version 2, but its health check of app now fails, where the LBVMs on version 1 pass it.
    broken = applying(lbvms, {canary}, 2, backend_health="api=2/2,app=0/1")
    failed = run(baking.rollout, broken, timedelta(seconds=60))
    rollout = failed.rollout
    assert rollout is not None and (rollout.step, rollout.rejected) == ("Rollback", True)
    assert (
        f"{canary} sees backend(s) unavailable that LBVMs on version 1 see available: app 0/1 healthy "
        "(1/1 healthy on lbvm-" in rollout.message
    )
    assert set(told(failed, lbvms).values()) == {1}
    assert rollout.waiting_for == "1 LBVM(s) to apply config version 1 again"
    back = run(rollout, lbvms, timedelta(seconds=70))
    assert back.rollout is not None and back.rollout.state == "RolledBack"
    assert "rolled back to config version 1: 4 LBVM(s) routable on it" in back.rollout.message


def test_a_backend_down_everywhere_is_not_the_configs_fault() -> None:
    lbvms = fleet(backend_health="api=2/2,app=0/1")
    first, canary = started(lbvms)
    baking = run(first.rollout, applying(lbvms, {canary}, 2), timedelta(seconds=10))
    assert baking.rollout is not None and baking.rollout.step == "Bake" and not baking.rollout.failed


def test_a_canary_that_goes_unroutable_on_the_new_version_fails_the_rollout() -> None:
    lbvms = fleet()
    first, canary = started(lbvms)
    silent = applying(lbvms, {canary}, 2, state="Unroutable")
    failed = run(first.rollout, silent, timedelta(seconds=30))
    assert failed.rollout is not None and failed.rollout.rejected
    assert f"{canary} went Unroutable after applying it" in failed.rollout.message


def test_a_canary_that_never_applies_the_version_fails_at_the_progress_deadline() -> None:
    lbvms = fleet()
    first, _ = started(lbvms)
    waiting = run(first.rollout, lbvms, timedelta(seconds=DEADLINE))
    assert waiting.rollout is not None and waiting.rollout.step == "Canary"
    assert waiting.rollout.waiting_for is not None and "to apply config version 2" in waiting.rollout.waiting_for
    late = run(first.rollout, lbvms, timedelta(seconds=DEADLINE + 1))
    assert late.rollout is not None and late.rollout.rejected and late.rollout.state == "RolledBack"
    assert f"0 of 1 canary LBVM(s) on config version 2 passed the health gate after {DEADLINE + 1} s" in (
        late.rollout.message
    )


def test_patching_the_config_back_during_a_rollout_ends_it_without_rejecting_anything() -> None:
    lbvms = fleet()
    first, canary = started(lbvms)
    back = run(first.rollout, applying(lbvms, {canary}, 2), timedelta(seconds=5), current=spec(), generation=3)
    assert back.rollout is not None and back.rollout.state == "RolledBack" and not back.rollout.rejected
    assert set(told(back, lbvms, generation=3).values()) == {3}


def test_the_planner_shows_the_divergence_and_the_heartbeat_version_in_the_status() -> None:
    rec = record(desired=2, capacity={"min": 1, "max": 4})
    lbvms = fleet(2, launch_template=template_of(rec.spec).description)
    first = decide(rec, lbvms, world(lbvms))
    assert first.status.config == ServedConfig(version=1, digest=config_digest(rec.spec))
    assert first.status.config_rollout is None and first.status.phase == "Active"
    document = valid()
    document["backends"][0]["targets"][0]["port"] = 8081
    changed = parse_spec({**document, "capacity": {"min": 1, "max": 4}})
    rec = rec.model_copy(update={"generation": 2, "spec": changed, "status": first.status})
    second = decide(rec, lbvms, world(lbvms))
    rollout = second.status.config_rollout
    assert rollout is not None and rollout.step == "Canary"
    assert [note.reason for note in second.notes] == ["RolloutStarted"]
    assert second.status.phase == "Updating" and "1 on an older config" in (second.status.message or "")
    [applying_now] = [c for c in second.status.conditions if c.type == "ConfigApplied"]
    assert (applying_now.status, applying_now.reason) == ("False", "ConfigRollingOut")
    assert applying_now.message.startswith(
        f"1 of 2 routable LBVMs not yet on the config they are told (config rollout {rollout.id}: "
    )
    [canary] = rollout.canary_lbvms
    refused = applying(lbvms, {canary}, 1, agent_error="nginx -t failed")
    rec = rec.model_copy(update={"status": second.status})
    third = decide(rec, refused, world(refused))
    assert third.status.config_rollout is not None and third.status.config_rollout.state == "RolledBack"
    rec = rec.model_copy(update={"status": third.status})
    healed = applying(lbvms, {canary}, 1)
    fourth = decide(rec, healed, world(healed))
    # Everyone runs what it is told (version 1): Active, and the status says the spec asks for more.
    assert fourth.status.phase == "Active"
    assert (
        f"the spec asks for config version 2, whose config config rollout {rollout.id} rejected (as version 2): "
        "running config version 1" in (fourth.status.message or "")
    )
    [applied] = [c for c in fourth.status.conditions if c.type == "ConfigApplied"]
    assert (applied.status, applied.reason) == ("True", "ConfigHeldBack")
    assert applied.message == (
        f"2 of 2 routable LBVMs run config version 1; the spec asks for version 2, whose config rollout "
        f"{rollout.id} rejected it: change the spec to try again"
    )
    [ready] = [c for c in fourth.status.conditions if c.type == "Ready"]
    assert ready.status == "True"


OPERATOR: dict[str, RolloutAction] = {"pause": "pause", "resume": "resume", "abort": "abort"}


@settings(max_examples=80, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=6),
    script=st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=200),
            st.sampled_from(["apply", "error", "unroutable", "wait", "pause", "resume", "abort"]),
        ),
        min_size=1,
        max_size=25,
    ),
)
def test_property_no_more_than_the_canary_before_the_bake_and_a_failure_ends_with_everyone_on_the_old_version(
    size: int, script: list[tuple[int, str]]
) -> None:
    """Whatever the agents and the operator do: at most ``canary`` LBVMs are told version 2 before the bake ends;
    while paused nobody more is told it and nothing is judged; an abort rejects it; and a failed or aborted
    rollout always ends RolledBack (once the LBVMs apply what they are told) with everyone told version 1."""
    lbvms = fleet(size)
    decision = run(None, lbvms)
    elapsed = timedelta(0)
    bake_ended = False
    operator: RolloutControl | None = None
    for seconds, action in script:
        elapsed += timedelta(seconds=seconds)
        rollout = decision.rollout
        assert rollout is not None
        targets = {vm.lbvm_id for vm in lbvms if told(decision, lbvms)[vm.lbvm_id] == 2}
        if action == "apply":
            lbvms = [
                vm.model_copy(update={"applied_config_version": told(decision, lbvms)[vm.lbvm_id]}) for vm in lbvms
            ]
        elif action == "error" and targets:
            lbvms = applying(lbvms, {min(targets)}, 2, agent_error="refused")
        elif action == "unroutable" and targets:
            lbvms = applying(lbvms, {min(targets)}, 2, state="Unroutable")
        elif action in OPERATOR:
            operator = control(rollout, OPERATOR[action], elapsed)
        decision = run(rollout, lbvms, elapsed, served=decision.served, control=operator)
        told_two = {vm_id for vm_id, version in told(decision, lbvms).items() if version == 2}
        if decision.rollout is not None and decision.rollout.step == "Roll":
            bake_ended = True
        if not bake_ended:
            assert len(told_two) <= 1
        if decision.rollout is not None and decision.rollout.state == "Paused":
            # Held: nobody is told version 2 who does not run it already, and nothing is judged or moves on.
            assert told_two <= targets & {vm.lbvm_id for vm in lbvms if vm.applied_config_version == 2}
            assert decision.rollout.step == decision.rollout.paused_step == rollout.step
            assert [note.reason for note in decision.notes] in ([], ["RolloutPaused"])
        if action == "abort" and rollout.active and rollout.step != "Rollback":
            assert decision.rollout is not None and decision.rollout.rejected
        if decision.rollout is not None and decision.rollout.rejected:
            assert not told_two
            break
        if decision.rollout is None or not decision.rollout.active:
            break
    if decision.rollout is not None and decision.rollout.rejected:
        # The agents apply what they are told and recover: the rollback ends, everyone on version 1.
        healed = [
            vm.model_copy(update={"applied_config_version": 1, "agent_error": None, "state": "Routable"})
            for vm in lbvms
        ]
        final = run(decision.rollout, healed, elapsed + timedelta(seconds=1), served=decision.served, control=operator)
        assert final.rollout is not None and final.rollout.state == "RolledBack"
        assert set(told(final, healed).values()) == {1}


@settings(max_examples=80, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=6),
    script=st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=400),
            st.sampled_from(["pause", "resume", "abort", "wait"]),
            st.booleans(),
        ),
        min_size=1,
        max_size=20,
    ),
)
def test_property_an_operator_pauses_resumes_and_aborts_a_healthy_config_rollout(
    size: int, script: list[tuple[int, str, bool]]
) -> None:
    """The agents apply what they are told at random moments (within the deadline); the operator pauses, resumes
    and aborts at random. Paused, the rollout holds (nobody is told version 2 who does not run it, no step moves
    on); aborted, version 2 is rejected and nobody is told it; in the end, an aborted rollout is RolledBack with
    everyone on version 1, and one resumed goes on to Succeeded with everyone on version 2."""
    lbvms = fleet(size)
    decision = run(None, lbvms)
    elapsed = timedelta(0)
    operator: RolloutControl | None = None
    applied_before = True
    for seconds, action, apply_now in script:
        rollout = decision.rollout
        assert rollout is not None
        if not rollout.active:
            break
        elapsed += timedelta(seconds=seconds)
        # Never two rounds in a row without applying: the agents stay within the progress deadline (800 s < 900 s).
        applied_before = apply_now or not applied_before
        if applied_before:
            lbvms = [
                vm.model_copy(update={"applied_config_version": v})
                for vm, v in zip(lbvms, told(decision, lbvms).values(), strict=True)
            ]
        if action in OPERATOR:
            operator = control(rollout, OPERATOR[action], elapsed)
        decision = run(rollout, lbvms, elapsed, served=decision.served, control=operator)
        after = decision.rollout
        assert after is not None
        told_two = {vm_id for vm_id, version in told(decision, lbvms).items() if version == 2}
        if after.state == "Paused":
            assert told_two <= {vm.lbvm_id for vm in lbvms if vm.applied_config_version == 2}
            assert after.step == after.paused_step == rollout.step
        if action == "abort" and rollout.active and rollout.step != "Rollback":
            assert after.rejected and after.step in ("Rollback", None)
        if after.rejected:
            assert not told_two
    # The operator's last word stands unless it was a pause (then resumed); the agents apply what they are told.
    rollout = decision.rollout
    assert rollout is not None
    if operator is None or operator.action == "pause":
        operator = control(rollout, "resume", elapsed)
    for _ in range(8):
        lbvms = [
            vm.model_copy(update={"applied_config_version": v})
            for vm, v in zip(lbvms, told(decision, lbvms).values(), strict=True)
        ]
        elapsed += timedelta(seconds=BAKE + 1)
        decision = run(decision.rollout, lbvms, elapsed, served=decision.served, control=operator)
    final = decision.rollout
    assert final is not None
    if final.rejected:
        assert final.state == "RolledBack" and set(told(decision, lbvms).values()) == {1}
    else:
        assert final.state == "Succeeded" and set(told(decision, lbvms).values()) == {2}


def test_an_error_on_the_new_version_during_the_roll_rolls_everyone_back() -> None:
    lbvms = fleet()
    first, canary = started(lbvms)
    on_canary = applying(lbvms, {canary}, 2)
    baking = run(first.rollout, on_canary, timedelta(seconds=10))
    rolling = run(baking.rollout, on_canary, timedelta(seconds=10 + BAKE))
    assert rolling.rollout is not None and rolling.rollout.step == "Roll"
    [other, *_] = sorted({vm.lbvm_id for vm in lbvms} - {canary})
    refused = applying(on_canary, {other}, 1, agent_error="nginx: [emerg] unknown directive")
    failed = run(rolling.rollout, refused, timedelta(seconds=20 + BAKE))
    assert failed.rollout is not None and failed.rollout.rejected and failed.rollout.step == "Rollback"
    assert f"{other} reported an error (still running version 1): nginx: [emerg]" in failed.rollout.message
    assert set(told(failed, lbvms).values()) == {1}


def test_a_second_config_change_during_a_rollout_starts_over_from_the_version_known_good() -> None:
    lbvms = fleet()
    first, canary = started(lbvms)
    again = run(
        first.rollout, applying(lbvms, {canary}, 2), timedelta(seconds=5), current=spec(port=8090), generation=3
    )
    [ended] = again.ended
    assert ended.state == "Failed" and "superseded at" in ended.message
    assert again.rollout is not None and (again.rollout.from_version, again.rollout.to_version) == (1, 3)
    assert sum(v == 3 for v in told(again, lbvms, generation=3).values()) == 1
    assert all(v in (1, 3) for v in told(again, lbvms, generation=3).values())


def test_a_canary_taken_out_as_unhealthy_on_the_new_version_fails_the_rollout() -> None:
    lbvms = fleet()
    first, canary = started(lbvms)
    gone = applying(lbvms, {canary}, 2, state="Draining", drain_reason="unhealthy", drain_requested_at=NOW)
    failed = run(first.rollout, gone, timedelta(seconds=40))
    assert failed.rollout is not None and failed.rollout.rejected
    assert f"{canary} was taken out (unhealthy) after applying it" in failed.rollout.message


def test_a_config_whose_canary_answers_clearly_more_5xx_than_the_rest_rolls_back_during_the_bake() -> None:
    """A routing rule sending part of the traffic nowhere: health checks pass, clients get 503s."""
    lbvms = fleet(boot_id="boot", http_requests=1000, http_server_errors=1)
    first, canary = started(lbvms)
    on_canary = applying(lbvms, {canary}, 2)
    baking = run(first.rollout, on_canary, timedelta(seconds=10))
    assert baking.rollout is not None and baking.rollout.step == "Bake"
    assert set(baking.rollout.answers_at_bake) == {vm.lbvm_id for vm in lbvms}

    def later(canary_errors: int) -> ConfigDecision:
        # Each LBVM answered 500 more requests since the bake began; the rest 1 of them with a 5xx.
        counted = [
            vm.model_copy(
                update={
                    "http_requests": 1500,
                    "http_server_errors": 1 + (canary_errors if vm.lbvm_id == canary else 1),
                }
            )
            for vm in on_canary
        ]
        return run(baking.rollout, counted, timedelta(seconds=70))

    within = later(2).rollout  # 0.4% against 0.2%: within the margin
    assert within is not None and within.step == "Bake"
    failed = later(60).rollout
    assert failed is not None and failed.step == "Rollback" and failed.rejected
    assert (
        "the canary answered worse than the rest during the bake: 60 of 500 answers 5xx (12.0%) on 1 LBVM(s) "
        "against 3 of 1500 answers 5xx (0.2%) on 3 LBVM(s) (config version 2)"
    ) in failed.message


def test_no_config_rollout_starts_while_a_rejected_template_of_another_proxy_holds_the_fleet_back() -> None:
    nginx_v2 = spec(port=8081, proxy="nginx")
    held = decide_config_rollout(
        None,
        SERVED_V1,
        nginx_v2,
        generation=2,
        desired=4,
        lbvms=fleet(),
        now=NOW,
        fleet_proxy="haproxy",
        load_balancer_id="lb-0123456789abcdef0",
    )
    assert held.rollout is None and held.served == SERVED_V1 and not held.notes
    # The same fleet with the proxy it is asked for stages the change as usual.
    staged = decide_config_rollout(
        None, SERVED_V1, nginx_v2, generation=2, desired=4, lbvms=fleet(), now=NOW, fleet_proxy="nginx"
    )
    assert staged.rollout is not None and staged.rollout.step == "Canary"


def test_lbvms_left_behind_by_a_template_rollout_keep_their_config_and_are_never_config_canaries() -> None:
    """A rollout onto NGINX has just succeeded; one HAProxy LBVM still serves while it drains."""
    from lbcp.models.rollout import LaunchTemplate, RolloutStatus

    haproxy = LaunchTemplate(instance_type="c5.large", proxy="haproxy")
    nginx = LaunchTemplate(instance_type="c5.large", proxy="nginx")
    assert haproxy.description == OLD_TEMPLATE
    new_ones = fleet(2, version=2, launch_template=nginx.description)
    leaving = lbvm(9, launch_template=OLD_TEMPLATE, agent_state="ready", applied_config_version=1)
    nginx_v2 = spec(port=8081, proxy="nginx")
    decision = decide_config_rollout(
        None,
        SERVED_V1,
        nginx_v2,
        generation=2,
        desired=2,
        lbvms=[*new_ones, leaving],
        now=NOW,
        template=nginx.description,
    )
    # Without the template, the HAProxy LBVM (passing on version 1) would be the canary of version 2.
    assert decision.rollout is None
    assert decision.served.version == 2
    succeeded = RolloutStatus(
        id="ro-1",
        state="Succeeded",
        started_at=NOW,
        step_started_at=NOW,
        last_progress_at=NOW,
        from_template=haproxy,
        to_template=nginx,
        generation=2,
        progress="2 of 2 replaced",
        replaced=2,
        desired=2,
        canary=1,
        message="done",
        verdict_key="k",
    )

    def told_to(vm: Lbvm) -> int:
        return served_config_version(
            decision.served,
            decision.rollout,
            2,
            vm.lbvm_id,
            template_rollout=succeeded,
            launch_template=vm.launch_template,
            applied=vm.applied_config_version,
        )

    assert [told_to(vm) for vm in new_ones] == [2, 2]
    assert told_to(leaving) == 1


def test_a_paused_config_rollout_holds_the_fleet_as_it_is_until_resumed_with_fresh_clocks() -> None:
    lbvms = fleet()
    first, canary = started(lbvms)
    on_canary = applying(lbvms, {canary}, 2)
    baking = run(first.rollout, on_canary, timedelta(seconds=10))
    pause = control(baking.rollout, "pause", timedelta(seconds=20))
    paused = run(baking.rollout, on_canary, timedelta(seconds=20), control=pause)
    rollout = paused.rollout
    assert rollout is not None
    assert (rollout.state, rollout.step, rollout.paused_step, rollout.paused_lbvms) == (
        "Paused",
        "Bake",
        "Bake",
        [canary],
    )
    assert [note.reason for note in paused.notes] == ["RolloutPaused"]
    assert "paused by alice at step Bake" in rollout.message and rollout.waiting_for == "a resume (paused by alice)"
    assert told(paused, lbvms) == {vm.lbvm_id: 2 if vm.lbvm_id == canary else 1 for vm in lbvms}
    # Long past the bake and the progress deadline, and with the canary failing its gate: it holds, judging nothing.
    late = timedelta(seconds=20 + BAKE + DEADLINE + 60)
    broken = applying(lbvms, {canary}, 2, state="Unroutable")
    held = run(rollout, broken, late, control=pause)
    assert held.rollout is not None and (held.rollout.state, held.rollout.step) == ("Paused", "Bake")
    assert not held.notes and not held.rollout.rejected and held.served == SERVED_V1
    assert held.rollout.progress == "0 of 1 on config version 2"
    assert told(held, lbvms) == told(paused, lbvms)
    # Pausing again changes nothing.
    assert apply_config_control(rollout, pause, NOW + late, on_canary) == rollout
    # Resumed: the bake starts over from the resume, not from when it first began.
    resume = control(rollout, "resume", late)
    resumed = run(rollout, on_canary, late, control=resume)
    assert resumed.rollout is not None
    assert (resumed.rollout.state, resumed.rollout.step, resumed.rollout.paused_lbvms) == ("Progressing", "Bake", None)
    assert resumed.rollout.step_started_at == NOW + late and [n.reason for n in resumed.notes] == ["RolloutResumed"]
    still = run(resumed.rollout, on_canary, late + timedelta(seconds=BAKE - 1), control=resume)
    assert still.rollout is not None and still.rollout.step == "Bake"
    rolling = run(still.rollout, on_canary, late + timedelta(seconds=BAKE), control=resume)
    assert rolling.rollout is not None and rolling.rollout.step == "Roll"
    assert set(told(rolling, lbvms).values()) == {2}


def test_a_pause_during_the_roll_tells_nobody_more_the_new_version() -> None:
    lbvms = fleet()
    first, canary = started(lbvms)
    on_canary = applying(lbvms, {canary}, 2)
    baking = run(first.rollout, on_canary, timedelta(seconds=10))
    rolling = run(baking.rollout, on_canary, timedelta(seconds=10 + BAKE))
    assert rolling.rollout is not None and rolling.rollout.step == "Roll"
    [second, *rest] = sorted({vm.lbvm_id for vm in lbvms} - {canary})
    # Everyone is told version 2; the canary and one more run it when the pause is carried out.
    two_on_it = applying(on_canary, {second}, 2)
    at = timedelta(seconds=20 + BAKE)
    paused = run(rolling.rollout, two_on_it, at, control=control(rolling.rollout, "pause", at))
    assert paused.rollout is not None and paused.rollout.paused_lbvms == sorted([canary, second])
    assert told(paused, lbvms) == {vm.lbvm_id: 1 if vm.lbvm_id in rest else 2 for vm in lbvms}
    assert paused.rollout.progress == "2 of 2 on config version 2"


def test_abort_rolls_every_lbvm_back_now_and_rejects_the_version_like_a_failed_gate() -> None:
    lbvms = fleet()
    first, canary = started(lbvms)
    on_canary = applying(lbvms, {canary}, 2)
    baking = run(first.rollout, on_canary, timedelta(seconds=10))
    # A request naming another rollout does nothing.
    other = RolloutControl(rollout_id="cr-000000000000", action="abort", requested_at=NOW)
    assert (
        run(baking.rollout, on_canary, timedelta(seconds=15), control=other).rollout
        == run(baking.rollout, on_canary, timedelta(seconds=15)).rollout
    )
    abort = control(baking.rollout, "abort", timedelta(seconds=20))
    aborted = run(baking.rollout, on_canary, timedelta(seconds=20), control=abort)
    rollout = aborted.rollout
    assert rollout is not None and (rollout.state, rollout.step, rollout.rejected) == ("Progressing", "Rollback", True)
    assert [note.reason for note in aborted.notes] == ["RolloutFailed"]
    assert "aborted by alice at step Bake" in rollout.message
    assert "the spec keeps asking for version 2's config" in rollout.message
    assert set(told(aborted, lbvms).values()) == {1}
    # Repeated, it changes nothing; once the canary runs version 1 again, RolledBack.
    assert apply_config_control(rollout, abort, NOW + timedelta(seconds=25), on_canary) == rollout
    back = run(rollout, lbvms, timedelta(seconds=30), control=abort)
    assert back.rollout is not None and (back.rollout.state, back.rollout.rejected) == ("RolledBack", True)
    assert [note.reason for note in back.notes] == ["RolledBack"]
    # Rejected as after a failed gate: held on version 1 until the spec's config changes.
    held = run(back.rollout, lbvms, timedelta(seconds=60), control=abort)
    assert held.held_back and set(told(held, lbvms).values()) == {1}
    fixed = run(back.rollout, lbvms, timedelta(seconds=90), current=spec(port=8082), generation=3, control=abort)
    assert fixed.rollout is not None and fixed.rollout.id != rollout.id and fixed.rollout.step == "Canary"


def test_abort_of_a_paused_config_rollout_rolls_back() -> None:
    lbvms = fleet()
    first, canary = started(lbvms)
    on_canary = applying(lbvms, {canary}, 2)
    paused = run(first.rollout, on_canary, timedelta(seconds=5), control=control(first.rollout, "pause", timedelta(0)))
    assert paused.rollout is not None and paused.rollout.state == "Paused"
    abort = control(paused.rollout, "abort", timedelta(seconds=30))
    aborted = run(paused.rollout, on_canary, timedelta(seconds=30), control=abort)
    assert aborted.rollout is not None and (aborted.rollout.step, aborted.rollout.rejected) == ("Rollback", True)
    assert aborted.rollout.paused_lbvms is None and set(told(aborted, lbvms).values()) == {1}


def test_the_plan_hands_a_superseded_config_rollout_to_the_history() -> None:
    rec = record(desired=2, capacity={"min": 1, "max": 4})
    lbvms = fleet(2, launch_template=template_of(rec.spec).description)
    first = decide(rec, lbvms, world(lbvms))
    document = valid()
    document["backends"][0]["targets"][0]["port"] = 8081
    rec = rec.model_copy(
        update={
            "generation": 2,
            "spec": parse_spec({**document, "capacity": {"min": 1, "max": 4}}),
            "status": first.status,
        }
    )
    second = decide(rec, lbvms, world(lbvms))
    staged = second.status.config_rollout
    assert staged is not None and staged.active and second.ended_rollouts == ()
    # New instances asked for: a template rollout starts and the config rollout ends, out of status.configRollout.
    bigger = parse_spec({**document, "capacity": {"min": 1, "max": 4}, "instance": {"type": "c6i.xlarge"}})
    rec = rec.model_copy(update={"generation": 3, "spec": bigger, "status": second.status})
    third = decide(rec, lbvms, world(lbvms))
    assert third.status.rollout is not None and third.status.rollout.active
    assert third.status.config_rollout is None
    [ended] = third.ended_rollouts
    assert isinstance(ended, ConfigRolloutStatus)
    assert (ended.id, ended.kind, ended.state) == (staged.id, "config", "Failed")


# --- preloading: every LBVM validates the new version before any switches -------------------------------


def preloading_fleet(count: int = 4) -> list[Lbvm]:
    return fleet(count, preloads=True)


def preloaded(lbvms: list[Lbvm], version: int, errors: dict[str, str] | None = None) -> list[Lbvm]:
    errors = errors or {}
    return [vm.model_copy(update={"preload_version": version, "preload_error": errors.get(vm.lbvm_id)}) for vm in lbvms]


def preload_told(decision: ConfigDecision, lbvms: list[Lbvm]) -> dict[str, int | None]:
    told_now = told(decision, lbvms)
    return {vm.lbvm_id: preload_config_version(decision.rollout, told_now[vm.lbvm_id]) for vm in lbvms}


def test_a_config_change_is_preloaded_everywhere_before_the_canary_switches() -> None:
    lbvms = preloading_fleet()
    first = run(None, lbvms)
    assert first.rollout is not None and first.rollout.step == "Preload"
    assert set(told(first, lbvms).values()) == {1}  # nobody switches yet
    assert set(preload_told(first, lbvms).values()) == {2}  # everyone gets it ready
    assert (
        first.rollout.waiting_for is not None and "4 LBVM(s) to preload config version 2" in first.rollout.waiting_for
    )
    # Three have it ready: still nobody switches.
    partly = [*preloaded(lbvms[:3], 2), lbvms[3]]
    waiting = run(first.rollout, partly, timedelta(seconds=5))
    assert waiting.rollout is not None and waiting.rollout.step == "Preload"
    assert waiting.rollout.progress == "3 of 4 preloaded config version 2"
    assert set(told(waiting, lbvms).values()) == {1}
    # All four: the canary is told to switch, in the same decision.
    ready = run(waiting.rollout, preloaded(lbvms, 2), timedelta(seconds=10))
    assert ready.rollout is not None and ready.rollout.step == "Canary"
    [canary] = ready.rollout.canary_lbvms
    assert told(ready, lbvms) == {vm.lbvm_id: 2 if vm.lbvm_id == canary else 1 for vm in lbvms}
    assert "4 LBVM(s) have config version 2 rendered and validated" in ready.notes[-1].message


def test_a_version_one_lbvm_cannot_preload_is_rejected_before_any_lbvm_runs_it() -> None:
    lbvms = preloading_fleet()
    first = run(None, lbvms)
    assert first.rollout is not None
    broken = lbvms[2].lbvm_id
    error = "config version 2 cannot be preloaded: not applied (certificates): AccessDenied on ExportCertificate"
    refused = run(first.rollout, preloaded(lbvms, 2, {broken: error}), timedelta(seconds=5))
    assert refused.rollout is not None and refused.rollout.rejected
    assert refused.rollout.state in ("Progressing", "RolledBack") and refused.rollout.failed == [broken]
    assert set(told(refused, lbvms).values()) == {1}
    assert f"1 of 4 LBVM(s) could not preload config version 2, so none switched to it ({broken}: {error})" in (
        refused.rollout.message
    )


def test_agents_that_cannot_preload_are_not_waited_for_and_a_fleet_of_them_skips_the_step() -> None:
    mixed = [*preloading_fleet(4)[:2], *fleet(4)[2:]]  # two agents from before preloading
    first = run(None, mixed)
    assert first.rollout is not None and first.rollout.step == "Preload"
    ready = run(first.rollout, [*preloaded(mixed[:2], 2), *mixed[2:]], timedelta(seconds=5))
    assert ready.rollout is not None and ready.rollout.step == "Canary"
    old_agents = run(None, fleet())
    assert old_agents.rollout is not None and old_agents.rollout.step == "Canary"


def test_a_preload_that_never_completes_fails_at_the_progress_deadline() -> None:
    lbvms = preloading_fleet()
    first = run(None, lbvms)
    assert first.rollout is not None
    partly = [*preloaded(lbvms[:3], 2), lbvms[3]]
    progressed = run(first.rollout, partly, timedelta(seconds=5))  # progress moves the deadline on
    assert progressed.rollout is not None and progressed.rollout.step == "Preload"
    within = run(progressed.rollout, partly, timedelta(seconds=5 + DEADLINE))
    assert within.rollout is not None and within.rollout.step == "Preload"
    stuck = run(within.rollout, partly, timedelta(seconds=5 + DEADLINE + 1))
    assert stuck.rollout is not None and stuck.rollout.rejected
    assert f"3 of 4 LBVM(s) preloaded config version 2 after {DEADLINE + 1} s" in stuck.rollout.message
    assert f"not ready: {lbvms[3].lbvm_id}" in stuck.rollout.message
    assert set(told(stuck, lbvms).values()) == {1}
