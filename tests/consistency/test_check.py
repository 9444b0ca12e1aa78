"""The pure checker in a simulated world: it finds every planted fault and nothing else."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from lbcp.consistency.check import check
from lbcp.consistency.findings import ConsistencyReport, carry_forward, counts_of
from lbcp.consistency.inventory import IngressRule, Instance
from lbcp.consistency.sweep import SWEEP_ORDER, candidates
from tests.consistency.world import NOW, Key, World, owner

PLANTERS = (
    World.plant_orphan,
    World.plant_unclaimed_instance,
    World.plant_launching_marker,
    World.plant_leak,
    World.plant_rule_drift,
    World.plant_listener_drift,
    World.plant_stuck_execution,
)


def converged(seed: int, size: int = 4) -> World:
    world = World(random.Random(seed))
    for index in range(size):
        world.load_balancer(
            mode="dns" if index % 3 == 2 else "pool",
            scheme="internal" if index % 2 else "internet-facing",
            lbvms=1 + index % 3,
        )
    return world


def keys(world: World) -> set[tuple[str, str, str]]:
    return {(f.kind, f.resource_type, f.resource_id) for f in check(world.cloud(), world.table())}


def test_a_converged_world_has_no_findings() -> None:
    assert keys(converged(0, size=6)) == set()


@pytest.mark.parametrize("seed", range(40))
def test_it_finds_every_planted_fault_and_nothing_else(seed: int) -> None:
    world = converged(seed)
    planted: set[Key] = set()
    for _ in range(world.rng.randint(1, 12)):
        key = world.rng.choice(PLANTERS)(world)
        if key is not None:
            planted.add(key)
    assert keys(world) == planted


def test_resources_without_the_product_tag_are_never_findings() -> None:
    world = converged(1)
    ghost = "lb-00000000000000dead"
    world.instances.append(Instance(owner(ghost, product=False), "i-lookalike", "running", NOW - timedelta(days=1)))
    world.instances.append(Instance({}, "i-bare", "running", NOW - timedelta(days=1)))
    assert keys(world) == set()


def test_the_hand_added_ssh_rule_is_drift_named_in_the_message() -> None:
    world = converged(2)
    group = world.groups[0]
    world.groups[0] = group.__class__(
        group.tags, group.group_id, group.name, group.vpc_id, group.ingress | {IngressRule("tcp", 22, 22, "0.0.0.0/0")}
    )
    (finding,) = check(world.cloud(), world.table())
    assert (finding.kind, finding.resource_type, finding.load_balancer_id) == (
        "drift",
        "security-group-rule",
        world.records[0].id,
    )
    assert "tcp/22 0.0.0.0/0" in finding.message


def test_an_orphan_names_the_unknown_load_balancer_id_on_its_tag() -> None:
    world = converged(3)
    world.plant_orphan()
    (finding,) = check(world.cloud(), world.table())
    assert finding.load_balancer_id is not None
    assert finding.load_balancer_id not in {record.id for record in world.records}
    assert "has no record" in finding.message


def test_first_seen_and_sightings_carry_over_consecutive_runs_only() -> None:
    world = converged(4)
    world.plant_orphan()
    first = check(world.cloud(), world.table())
    later = [f.model_copy(update={"first_seen": NOW + timedelta(minutes=15)}) for f in first]
    carried = carry_forward(ConsistencyReport(generated_at=NOW, findings=first, counts=counts_of(first)), later)
    assert [(f.first_seen, f.sightings) for f in carried] == [(NOW, 2)]
    assert [(f.first_seen, f.sightings) for f in carry_forward(None, later)] == [(NOW + timedelta(minutes=15), 1)]


@pytest.mark.parametrize("seed", range(20))
def test_sweep_candidates_are_orphans_and_stuck_executions_in_dependency_order(seed: int) -> None:
    world = converged(seed)
    for _ in range(10):
        world.rng.choice(PLANTERS)(world)
    findings = check(world.cloud(), world.table())
    chosen = candidates(findings)
    assert {(c.resource_type, c.resource_id) for c in chosen} == {
        (f.resource_type, f.resource_id)
        for f in findings
        if (f.kind == "orphan" and f.resource_type in SWEEP_ORDER)
        or (f.kind == "stuck" and f.resource_type == "execution")
    }
    assert {c.action for c in chosen if c.resource_type == "execution"} <= {"stop"}
    order = [SWEEP_ORDER.index(c.resource_type) for c in chosen]
    assert order == sorted(order)
    claimed = {lbvm.instance_id for lbvm in world.lbvms if lbvm.state != "Terminated"}
    assert not {c.resource_id for c in chosen} & claimed
