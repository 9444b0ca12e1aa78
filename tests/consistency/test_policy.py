"""Item 5 of issue 11: the planner removes only what a live record disowns; the rest is the GC's."""

from __future__ import annotations

import random
from datetime import timedelta

from lbcp.consistency.check import CheckSettings
from lbcp.reconcile.jobs import TerminateInstance
from lbcp.reconcile.observed import EntryView, LoadBalancerView, ObservedInstance
from lbcp.reconcile.plan import PlannerSettings, plan
from tests.consistency.world import NOW, World


def test_the_checker_waits_longer_than_the_planner_for_in_flight_launches() -> None:
    assert CheckSettings().in_flight_grace > PlannerSettings().orphan_grace


def test_the_planner_removes_an_unclaimed_instance_of_its_own_record_only_after_the_grace() -> None:
    world = World(random.Random(0))
    record = world.load_balancer(lbvms=0)
    grace = PlannerSettings().orphan_grace

    def jobs(age: timedelta) -> list[object]:
        instance = ObservedInstance("i-0stray", record.id, "lbvm-none", "running", None, None, NOW - age)
        view = LoadBalancerView(instances=(instance,), entry=EntryView(ready=True, security_group_id="sg-1"))
        decided = plan(record, [], view, NOW, rng=random.Random(0))
        return [job for job in decided.jobs if isinstance(job, TerminateInstance)]

    assert jobs(grace - timedelta(seconds=1)) == []
    assert [job.instance_id for job in jobs(grace + timedelta(seconds=1))] == ["i-0stray"]  # type: ignore[attr-defined]
