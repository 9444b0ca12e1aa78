"""Target tracking: proportional, fast out, slow in, a tolerance band."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from lbcp.models.scaling import Recommendation, ScalingState
from lbcp.scaling.evaluate import decide
from lbcp.scaling.policies.target_tracking import TargetTrackingPolicy
from tests.scaling.helpers import NOW, current, settings, window

TT = TargetTrackingPolicy()
# Only CPU drives (target 50%), so each case is about one number.
CPU_ONLY: dict[str, Any] = {
    "metrics": {
        "cpu": {"scaleOutAbove": 80.0, "scaleInBelow": 40.0, "target": 50.0},
        "memory": None,
        "activeConnections": None,
    }
}


def cpu(value: float | dict[str, float]) -> dict[str, float | dict[str, float]]:
    return {"cpu": value}


def test_desired_is_proportional_to_load() -> None:
    # 4 LBVMs at 75% = 3 LBVMs of load; at 50% per LBVM that needs 6.
    decision = decide(
        TT, window(cpu(75.0)), current(4, serving={"subnet-a": 2, "subnet-b": 2}), settings(**CPU_ONLY), NOW
    )
    assert (decision.desired, decision.reason) == (6, "ScaledOut")
    assert "cpu 75% vs target 50% (x1.50: needs 6) voted +1" in decision.message
    assert "the highest need wins: 6: scale out now" in decision.message


def test_within_tolerance_nothing_changes() -> None:
    for value in (45.5, 50.0, 55.0):
        decision = decide(
            TT, window(cpu(value)), current(4, serving={"subnet-a": 2, "subnet-b": 2}), settings(**CPU_ONLY), NOW
        )
        assert decision.desired == 4, value
        assert "within ±10%" in decision.message


def test_the_tolerance_comes_from_the_spec() -> None:
    decision = decide(
        TT,
        window(cpu(54.0)),
        current(4, serving={"subnet-a": 2, "subnet-b": 2}),
        settings(tolerance=0.05, **CPU_ONLY),
        NOW,
    )
    assert decision.desired == 5


def test_scale_out_ignores_the_cooldown() -> None:
    state = ScalingState(last_scale_out_at=NOW - timedelta(minutes=1))
    decision = decide(
        TT, window(cpu(90.0)), current(4, state, serving={"subnet-a": 2, "subnet-b": 2}), settings(**CPU_ONLY), NOW
    )
    assert decision.desired == 8


def test_scale_out_is_limited_to_doubling_or_four_more() -> None:
    decision = decide(
        TT,
        window(cpu(100.0)),
        current(2, serving={"subnet-a": 1, "subnet-b": 1}),
        settings(
            maximum=50,
            metrics={
                "cpu": {"scaleOutAbove": 80.0, "scaleInBelow": 1.0, "target": 10.0},
                "memory": None,
                "activeConnections": None,
            },
        ),
        NOW,
    )
    assert decision.desired == 6  # needs 20; 2 + 4
    assert "scale-out limited to 6 per decision (needs 20)" in decision.message


def test_launching_lbvms_are_not_counted_twice() -> None:
    # Desired 6, only 4 serve (2 launching): 75% on 4 is 6 LBVMs at 50%: already asked for.
    decision = decide(
        TT, window(cpu(75.0)), current(6, serving={"subnet-a": 2, "subnet-b": 2}), settings(**CPU_ONLY), NOW
    )
    assert decision.desired == 6


def test_metrics_are_multiplied_by_the_lbvms_that_served_then() -> None:
    # Two LBVMs joined a minute ago; the metric (2 minutes old) describes the 4 before them.
    metric_time = NOW - timedelta(minutes=2)
    fleet = current(6, serving={"subnet-a": 3, "subnet-b": 3}, since=metric_time - timedelta(hours=1))
    assert fleet.routable is not None
    routable = {s: [*times[:2], NOW - timedelta(minutes=1)] for s, times in fleet.routable.items()}
    fleet = type(fleet)(desired=6, subnets=fleet.subnets, routable=routable)
    decision = decide(TT, window(cpu(75.0), at=metric_time), fleet, settings(**CPU_ONLY), NOW)
    assert decision.desired == 6  # 75% x 4 / 50% = 6, not 75% x 6 / 50% = 9


def test_scale_in_waits_for_the_stabilization_window() -> None:
    state = ScalingState(recommendations=[Recommendation(time=NOW - timedelta(minutes=3), desired=8)])
    decision = decide(
        TT, window(cpu(25.0)), current(8, state, serving={"subnet-a": 4, "subnet-b": 4}), settings(**CPU_ONLY), NOW
    )
    assert decision.desired == 8
    assert decision.hold == "stabilizing"
    assert "needs 4, but needed 8 within the last 5m" in decision.message
    assert [r.desired for r in decision.state.recommendations] == [8, 4]


def test_scale_in_goes_to_the_highest_need_in_the_window() -> None:
    state = ScalingState(
        recommendations=[
            Recommendation(time=NOW - timedelta(minutes=6), desired=8),  # outside the 5m window: forgotten
            Recommendation(time=NOW - timedelta(minutes=4), desired=6),
            Recommendation(time=NOW - timedelta(minutes=2), desired=5),
        ]
    )
    decision = decide(
        TT, window(cpu(25.0)), current(8, state, serving={"subnet-a": 4, "subnet-b": 4}), settings(**CPU_ONLY), NOW
    )
    assert (decision.desired, decision.reason) == (6, "ScaledIn")
    assert "highest need over the last 5m is 6: scale in" in decision.message
    assert [r.desired for r in decision.state.recommendations] == [6, 5, 4]


def test_scale_in_waits_for_the_cooldown_after_a_scale_in() -> None:
    state = ScalingState(last_scale_in_at=NOW - timedelta(minutes=5))
    decision = decide(
        TT, window(cpu(25.0)), current(8, state, serving={"subnet-a": 4, "subnet-b": 4}), settings(**CPU_ONLY), NOW
    )
    assert (decision.desired, decision.hold) == (8, "cooldown")


@pytest.mark.parametrize(("minutes", "expected"), [(12, 8), (15, 8), (16, 4)])
def test_scale_in_comes_more_than_a_full_window_after_a_scale_out_settles(minutes: int, expected: int) -> None:
    state = ScalingState(last_scale_out_at=NOW - timedelta(minutes=minutes))
    decision = decide(
        TT, window(cpu(25.0)), current(8, state, serving={"subnet-a": 4, "subnet-b": 4}), settings(**CPU_ONLY), NOW
    )
    assert decision.desired == expected


def test_the_metric_needing_most_wins_and_weights_scale_load() -> None:
    spec: dict[str, Any] = {
        "metrics": {
            "cpu": {"scaleOutAbove": 80.0, "scaleInBelow": 40.0, "target": 50.0},
            "memory": {"scaleOutAbove": 80.0, "scaleInBelow": 40.0, "target": 50.0, "weight": 0.5},
            "activeConnections": None,
        }
    }
    values = {"cpu": 60.0, "memory": 100.0}
    decision = decide(TT, window(values), current(4, serving={"subnet-a": 2, "subnet-b": 2}), settings(**spec), NOW)
    assert decision.desired == 5  # cpu: 4 x 1.2 = 4.8 -> 5; memory counts half: 4 x 1.0 -> within tolerance
    assert "weight" not in {f.metric: f.detail for f in decision.findings}["cpu"]


def test_metrics_without_a_target_abstain() -> None:
    spec: dict[str, Any] = {
        "metrics": {
            "cpu": {"scaleOutAbove": 80.0, "scaleInBelow": 40.0, "target": 50.0},
            "memory": {"scaleOutAbove": 80.0, "scaleInBelow": 40.0},
            "activeConnections": None,
        }
    }
    decision = decide(TT, window({"cpu": 50.0, "memory": 99.0}), current(4), settings(**spec), NOW)
    assert decision.desired == 4


def test_no_metrics_at_all_changes_nothing() -> None:
    decision = decide(TT, window({}), current(4, serving={"subnet-a": 2, "subnet-b": 2}), settings(**CPU_ONLY), NOW)
    assert decision.desired == 4
    assert "no metric to size the fleet from" in decision.message


def test_unknown_serving_counts_use_desired_capacity() -> None:
    decision = decide(TT, window(cpu(75.0)), current(4), settings(**CPU_ONLY), NOW)
    assert decision.desired == 6


def test_per_zone_sizes_each_subnet_for_its_own_load_and_keeps_them_equal() -> None:
    values = cpu({"subnet-a": 90.0, "subnet-b": 30.0})
    fleet = current(4, serving={"subnet-a": 2, "subnet-b": 2})
    aggregate = decide(TT, window(values), fleet, settings(**CPU_ONLY), NOW)
    per_zone = decide(TT, window(values), fleet, settings(zoneEvaluation="per-zone", **CPU_ONLY), NOW)
    assert aggregate.desired == 5  # 4 x 60% / 50% = 4.8
    assert per_zone.desired == 8  # subnet-a: 2 x 90% / 50% = 3.6 -> 4, in each of 2 subnets
    assert "in subnet-a" in per_zone.message
