"""What the executor records when it carries out a plan (the real executor, over the simulated world)."""

from __future__ import annotations

import random

from tests.fleet.scenarios import PLANNER
from tests.fleet.world import (
    Behaviour,
    FailCall,
    FleetShape,
    RequestDeletion,
    Seed,
    SeedLbvm,
    StickExecution,
    World,
    ticks,
)

SHAPE = FleetShape(subnets=(0,), min=1, max=1, drain_ticks=1)


def run(world: World, count: int) -> None:
    rng = random.Random(0)
    for _ in range(count):
        world.reconcile(rng, PLANNER)
        world.advance()


def test_a_drain_that_overruns_its_timeout_is_forced_and_the_record_says_so() -> None:
    world = World(SHAPE, 1, Behaviour(), Seed(lbvms=(SeedLbvm("Draining", 0, age_ticks=0),), entry_built=True))
    [draining] = world.records()
    world.inject(StickExecution(0))  # its drain never progresses
    run(world, 8)
    forced = world.lbvms[draining.lbvm_id]
    assert forced.state == "Terminated"
    assert forced.end_reason is not None
    assert forced.end_reason.startswith("forced: still draining ")
    # The spec's default deregistration grace (30 s) plus its drain timeout (60 s).
    assert forced.end_reason.endswith("after the drain request, past its grace and drain timeout of 90 s")
    [event] = [event for event in world.events if event.reason == "ForcedTermination"]
    assert event.type == "Warning" and draining.lbvm_id in event.message


def test_a_marker_never_launched_is_removed_on_deletion_with_its_own_end_reason() -> None:
    # No security group yet when it was decided: its lifecycle execution never started.
    world = World(SHAPE, 1, Behaviour(), Seed(lbvms=(SeedLbvm("Launching", 0, age_ticks=0, execution=False),)))
    [marker] = world.records()
    world.inject(RequestDeletion())
    world.reconcile(random.Random(0), PLANNER)
    removed = world.lbvms[marker.lbvm_id]
    assert removed.state == "Terminated"
    assert removed.end_reason == (
        "removed before launch: the load balancer is being deleted and its lifecycle execution had not started"
    )
    assert "overran" not in (removed.end_reason or "")
    assert world.now - removed.state_since < ticks(1)


def test_a_failed_job_is_recorded_with_a_failure_reason_of_its_own() -> None:
    world = World(SHAPE, 1, Behaviour(), Seed(entry_built=True))
    world.inject(FailCall("lifecycle.start", "throttle"))
    world.reconcile(random.Random(0), PLANNER)
    [failed] = [event for event in world.events if event.type == "Warning"]
    assert failed.reason == "LaunchFailed"
    assert failed.message.startswith("failed: launching an LBVM in ")
    assert "ThrottlingException" in failed.message
    assert "Launching" not in {event.reason for event in world.events}
