"""Step scaling: larger breaches add more LBVMs per decision."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from lbcp.models.scaling import ScalingState
from lbcp.scaling.evaluate import decide
from lbcp.scaling.policies.step import StepPolicy, step_for
from lbcp.scaling.settings import Step
from tests.scaling.helpers import ALL_LOW, NOW, current, settings, window

STEP = StepPolicy()
STEPS = (Step(0.0, 1), Step(10.0, 2), Step(20.0, 3))


@pytest.mark.parametrize(("breach", "add"), [(0.0, 1), (9.9, 1), (10.0, 2), (19.9, 2), (20.0, 3), (500.0, 3)])
def test_step_for(breach: float, add: int) -> None:
    assert step_for(breach, STEPS) == add


@pytest.mark.parametrize(("cpu", "expected"), [(80.0, 4), (84.0, 5), (88.0, 6), (96.0, 7)])
def test_the_breach_picks_the_step(cpu: float, expected: int) -> None:
    decision = decide(
        STEP, window({"cpu": cpu, "memory": 50.0, "activeConnections": 1000.0}), current(4), settings(), NOW
    )
    assert decision.desired == expected


def test_the_metric_asking_for_most_wins() -> None:
    values = {"cpu": 84.0, "memory": 50.0, "activeConnections": 2600.0}  # +1 and 30% past: +3
    decision = decide(STEP, window(values), current(4), settings(), NOW)
    assert decision.desired == 7
    assert "activeConnections 2600 > 2000 (30% past, step +3) voted +1" in decision.message
    assert "largest step wins: +3" in decision.message


def test_steps_come_from_the_spec() -> None:
    spec: dict[str, Any] = {"steps": [{"aboveByPercent": 0.0, "add": 2}, {"aboveByPercent": 5.0, "add": 4}]}
    decision = decide(STEP, window({"cpu": 85.0}), current(4), settings(maximum=20, **spec), NOW)
    assert decision.desired == 8


def test_no_second_scale_out_while_the_first_is_still_launching() -> None:
    state = ScalingState(last_scale_out_at=NOW - timedelta(minutes=2))
    launching = current(6, state, serving={"subnet-a": 2, "subnet-b": 2})
    held = decide(STEP, window({"cpu": 95.0}), launching, settings(), NOW)
    assert (held.desired, held.hold) == (6, "warming-up")
    served = current(6, state, serving={"subnet-a": 3, "subnet-b": 3})
    assert decide(STEP, window({"cpu": 95.0}), served, settings(), NOW).desired == 8  # 19% past: +2


def test_scale_in_is_the_votes_one_at_a_time_after_the_cooldown() -> None:
    assert decide(STEP, window(ALL_LOW), current(6), settings(), NOW).desired == 5
    state = ScalingState(last_scale_in_at=NOW - timedelta(minutes=3))
    held = decide(STEP, window(ALL_LOW), current(6, state), settings(), NOW)
    assert (held.desired, held.hold) == (6, "cooldown")


def test_a_weight_can_keep_a_metric_under_its_threshold() -> None:
    spec: dict[str, Any] = {"metrics": {"memory": {"scaleOutAbove": 80.0, "scaleInBelow": 40.0, "weight": 0.5}}}
    decision = decide(
        STEP, window({"cpu": 50.0, "memory": 95.0, "activeConnections": 1000.0}), current(4), settings(**spec), NOW
    )
    assert decision.desired == 4
    assert "weight 0.5: counts as 47.5" in decision.message
