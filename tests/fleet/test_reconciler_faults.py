"""The reconciler's own faults, one at a time, in every place they can happen.

The property tests draw these faults at random among the others; here each
one is placed deliberately: every AWS call the reconciler makes fails once
(throttled, or a 5xx after botocore's retries), the reconciler dies right
before each call of a tick (between any two steps of a job: its lease is left
to expire), and a second reconciler ticks right before each call. Three
situations: a load balancer just created (entry and launches), a fleet with
work of every kind (scale-in, a stuck drain to force, orphans, a registration
to repair), and a deletion. Each must converge (or complete) within its bound,
launch each slot once, and touch nothing that is not ours.
"""

from __future__ import annotations

import random

import pytest

from tests.fleet.scenarios import (
    Run,
    Scenario,
    check_converges,
    check_one_launch_per_slot,
    deletion_bound,
    faults_at,
)
from tests.fleet.world import (
    Behaviour,
    FailCall,
    Fault,
    FleetShape,
    KillReconciler,
    RequestDeletion,
    RivalReconciler,
    Seed,
    SeedLbvm,
    SeedOrphan,
)
from tests.fleet.world_ports import OPERATIONS

CALLS = range(25)  # an acting tick makes fewer calls than this
SHAPE = FleetShape(subnets=(0, 1), min=2, max=3, max_surge=1, drain_ticks=1)

# A load balancer just created: the entry, two launches, the status.
CREATED = Seed()
# A fleet with work of every kind in one tick: one LBVM too many, a drain stuck past
# its timeout (forced), an orphan instance and interface, a Routable LBVM out of the entry.
BUSY = Seed(
    lbvms=(
        SeedLbvm("Routable", 0),
        SeedLbvm("Routable", 1, registered=False),
        SeedLbvm("Routable", 0),
        SeedLbvm("Draining", 1, age_ticks=12),
    ),
    orphans=(SeedOrphan("instance", "expired"), SeedOrphan("interface", "none")),
    entry_built=True,
)
SITUATIONS = {"created": CREATED, "busy": BUSY}


def scenario(seed: Seed, schedule: list[tuple[int, Fault]]) -> Scenario:
    return Scenario(SHAPE, Behaviour(boot_ticks=1), 2, seed, schedule, rng_seed=0)


@pytest.mark.parametrize("kind", ["throttle", "server-error"])
@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("situation", sorted(SITUATIONS))
def test_each_failing_call_is_retried_and_the_fleet_converges(situation: str, operation: str, kind: str) -> None:
    faults: list[tuple[int, Fault]] = [(0, FailCall(operation, kind)), (1, FailCall(operation, kind))]  # type: ignore[arg-type]
    check_converges(scenario(SITUATIONS[situation], faults))
    check_one_launch_per_slot(scenario(SITUATIONS[situation], faults))


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("situation", sorted(SITUATIONS))
def test_a_reconciler_that_dies_at_any_call_is_healed_by_the_next(situation: str, call: int) -> None:
    faults: list[tuple[int, Fault]] = [(0, KillReconciler(call)), (3, KillReconciler(call))]
    check_converges(scenario(SITUATIONS[situation], faults))
    check_one_launch_per_slot(scenario(SITUATIONS[situation], faults))


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("situation", sorted(SITUATIONS))
def test_a_second_reconciler_at_any_call_changes_nothing(situation: str, call: int) -> None:
    faults: list[tuple[int, Fault]] = [(0, RivalReconciler(call)), (1, RivalReconciler(call))]
    check_converges(scenario(SITUATIONS[situation], faults))
    check_one_launch_per_slot(scenario(SITUATIONS[situation], faults), rivals=[call])


DELETING = Seed(lbvms=(SeedLbvm("Routable", 0), SeedLbvm("Routable", 1), SeedLbvm("Pending", 0)), entry_built=True)


@pytest.mark.parametrize(
    "fault",
    [
        *(FailCall(operation, "throttle") for operation in OPERATIONS),
        *(KillReconciler(call) for call in CALLS),
        *(RivalReconciler(call) for call in CALLS),
    ],
    ids=repr,
)
def test_teardown_completes_whatever_happens_to_the_reconciler(fault: Fault) -> None:
    # The deletion is requested at tick 0; the fault hits the reconciler in the ticks of the teardown.
    deleting = scenario(DELETING, [(0, RequestDeletion()), (1, fault), (2, fault), (4, fault)])
    run = Run(deleting.world(), random.Random(deleting.rng_seed))
    world = run.world
    try:
        run.step(faults_at(deleting, 0))
        bound = deletion_bound(world)
        for index in range(1, bound + 1):
            if world.removed:
                break
            tick = run.step(faults_at(deleting, index))
            assert not tick.left_at_removal, f"removed with {tick.left_at_removal} left"
        assert world.removed, f"not removed {bound} ticks after the deletion request: {world.leftovers()}"
        assert not world.leftovers() and not world.lbvms and not world.violations
    finally:
        run.show()
