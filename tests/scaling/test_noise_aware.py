"""The noise-aware policy: out on a burst or a trend, in only when the noise's high end fits in fewer LBVMs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from lbcp.models.scaling import DemandSample, ScalingState
from lbcp.scaling.evaluate import decide
from lbcp.scaling.model import Decision
from lbcp.scaling.policies import resolve
from lbcp.scaling.policies.noise_aware import NoiseAwarePolicy, remember
from tests.scaling.helpers import NOW, current, settings, window

POLICY = NoiseAwarePolicy()
PERIOD = NOW - timedelta(minutes=2)  # the period the helpers' readings are for
# Only CPU drives (peak 50%, so 4 LBVMs at 50% are a demand of exactly 4): one number per case.
CPU_ONLY: dict[str, Any] = {
    "metrics": {
        "cpu": {"scaleOutAbove": 80.0, "scaleInBelow": 40.0, "peak": 50.0},
        "memory": None,
        "activeConnections": None,
    }
}
SERVING_4 = {"subnet-a": 2, "subnet-b": 2}


def remembered(*demands: float, last_scale_out_minutes_ago: int | None = None) -> ScalingState:
    """Demand for the periods before the reading's, oldest first."""
    samples = [
        DemandSample(time=PERIOD - timedelta(minutes=len(demands) - i), lbvms=value) for i, value in enumerate(demands)
    ]
    out = None if last_scale_out_minutes_ago is None else NOW - timedelta(minutes=last_scale_out_minutes_ago)
    return ScalingState(demand=samples, last_scale_out_at=out)


def evaluate(cpu: float, state: ScalingState, desired: int = 4, **scaling: Any) -> Decision:
    serving = {"subnet-a": desired // 2, "subnet-b": desired - desired // 2}
    return decide(
        POLICY,
        window({"cpu": cpu}),
        current(desired, state=state, serving=serving),
        settings(maximum=20, **{**CPU_ONLY, **scaling}),
        NOW,
    )


def test_default_is_noise_aware() -> None:
    assert resolve("default").name == "noise-aware"


def test_a_burst_scales_out_at_once_sized_to_the_latest_demand() -> None:
    # 4 LBVMs at 75% of a 50% peak: demand 6, 50% above 4 (> 30%): 6 x 1.05 -> 7, no smoothing wait.
    decision = evaluate(75.0, remembered(*[4.0] * 10))
    assert (decision.desired, decision.reason) == (7, "ScaledOut")
    assert "cpu 75% vs peak 50% (x1.50 of peak: demand 6.00 LBVMs) voted +1" in decision.message
    assert "burst: latest 6.00 is 50% above 4 (more than 30%): scale out to 7 now" in decision.message


def test_a_trend_above_the_tolerance_scales_out() -> None:
    # Four periods at 4.4 (10% above 4, not a burst): 4.4 x 1.05 = 4.62 -> 5.
    decision = evaluate(55.0, remembered(*[4.4] * 3))
    assert decision.desired == 5
    assert "trend: 4.40 is 10% above 4 (more than 5%): scale out to 5 (+5% headroom)" in decision.message


def test_one_noisy_minute_does_not_scale_out() -> None:
    # A quiet half hour at 3.6, then one minute at 4.8 (20% above 4): the 4-minute mean is 3.9.
    decision = evaluate(60.0, remembered(*[3.6] * 29))
    assert (decision.desired, decision.reason) == (4, "Unchanged")
    assert "demand 4.80 LBVMs, 3.90 over 4m" in decision.message


def test_scale_in_waits_out_noise() -> None:
    # Demand swings between 2 and 4 LBVMs a minute (mean 3, sigma 1): the latest minute alone
    # would fit in 2, but mean + 2.25 sigma = 5.25 needs 6, so 6 LBVMs stay.
    swings = [2.0, 4.0] * 15
    decision = evaluate(2 * 50 / 6, remembered(*swings[1:]), desired=6)
    assert decision.desired == 6
    assert "mean + 2.25 sigma = 5.25 needs 6: keep 6" in decision.message


def test_quiet_demand_scales_in_by_steps() -> None:
    # 30 minutes at 2.0 on 8 LBVMs: the high end is 2.0, so 2 would do; at most half of
    # the 6 spare go per decision: 8 -> 5.
    decision = evaluate(2 * 50 / 8, remembered(*[2.0] * 29), desired=8)
    assert (decision.desired, decision.reason) == (5, "ScaledIn")
    assert "mean + 2.25 sigma = 2.00 fits in 2: scale in to 5 (at most half of the 6 spare)" in decision.message


def test_no_scale_in_on_a_short_record() -> None:
    decision = evaluate(12.5, remembered(*[1.0] * 5))
    assert (decision.desired, decision.hold) == (4, "stabilizing")
    assert "only 6 of 30 periods on record (scale-in needs 15)" in decision.message


def test_no_scale_in_within_a_full_stabilization_of_a_scale_out() -> None:
    state = remembered(*[1.0] * 29, last_scale_out_minutes_ago=15)
    decision = evaluate(12.5, state)
    assert (decision.desired, decision.hold) == (4, "stabilizing")
    assert "no scale-in until 0s from now" in decision.message
    later = remembered(*[1.0] * 29, last_scale_out_minutes_ago=16)
    assert evaluate(12.5, later).desired < 4


def test_every_peak_is_a_hard_ceiling() -> None:
    # CPU alone would fit in 2 (4 LBVMs at 40% of a 90% peak: demand 1.78), but 1400
    # connections each against a peak of 1500 are a demand of 3.73: no LBVM can go.
    spec: dict[str, Any] = {
        "metrics": {
            "cpu": {"scaleOutAbove": 80.0, "scaleInBelow": 40.0, "peak": 90.0},
            "memory": None,
            "activeConnections": {"scaleOutAbove": 2000.0, "scaleInBelow": 500.0, "peak": 1500.0},
        }
    }
    state = remembered(*[3.73] * 29)
    decision = decide(
        POLICY,
        window({"cpu": 40.0, "activeConnections": 1400.0}),
        current(4, state=state, serving=SERVING_4),
        settings(maximum=20, **spec),
        NOW,
    )
    assert decision.desired == 4
    assert "activeConnections 1400 vs peak 1500 (x0.93 of peak: demand 3.73 LBVMs)" in decision.message
    # Exactly at a peak is not over it: 4 LBVMs at 1500 each need 4, not 5.
    at_peak = decide(
        POLICY,
        window({"cpu": 40.0, "activeConnections": 1500.0}),
        current(4, state=remembered(*[4.0] * 29), serving=SERVING_4),
        settings(maximum=20, **spec),
        NOW,
    )
    assert at_peak.desired == 4


def test_the_state_keeps_the_noise_window_of_demand() -> None:
    decision = evaluate(50.0, remembered(*[4.0] * 40))
    demand = decision.state.demand
    assert len(demand) == 30
    assert demand[-1] == DemandSample(time=PERIOD, lbvms=4.0)
    assert demand[0].time == PERIOD - timedelta(minutes=29)


def test_a_second_evaluation_of_a_period_replaces_its_sample() -> None:
    history: Sequence[DemandSample] = [DemandSample(time=PERIOD, lbvms=3.0)]
    assert remember(history, DemandSample(time=PERIOD, lbvms=5.0), timedelta(minutes=30)) == [
        DemandSample(time=PERIOD, lbvms=5.0)
    ]


def test_without_a_peak_it_keeps_capacity() -> None:
    no_peak: dict[str, Any] = {
        "metrics": {"cpu": {"scaleOutAbove": 80.0, "scaleInBelow": 40.0}, "memory": None, "activeConnections": None}
    }
    decision = decide(
        POLICY,
        window({"cpu": 99.0, "activeConnections": 100.0}),
        current(4, serving=SERVING_4),
        settings(maximum=20, **no_peak),
        NOW,
    )
    assert decision.desired == 4
    assert "no metric with a peak" in decision.message
