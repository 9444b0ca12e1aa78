"""The simulator's accounting, on traces small enough to compute by hand."""

from __future__ import annotations

import pytest

from lbcp.scaling.sim import FleetModel, TraceError, count_flaps, parse_trace, simulate
from lbcp.scaling.sim.fleet import Action


def trace(*samples: tuple[float, float]) -> str:
    return "t,load\n" + "".join(f"{t},{load}\n" for t, load in samples)


def flat(load: float, minutes: int) -> str:
    return trace(*((60 * m, load) for m in range(minutes)))


def test_per_minute_mean_is_time_weighted_and_peak_is_the_highest_moment() -> None:
    loads = parse_trace(trace((0, 100), (30, 300), (60, 200))).per_minute()
    assert [(m.mean, m.peak) for m in loads] == [(200.0, 300.0), (200.0, 200.0)]


def test_the_load_holds_until_the_next_sample() -> None:
    parsed = parse_trace(trace((0, 100), (150, 400)))
    assert parsed.minutes == 3
    assert [(m.mean, m.peak) for m in parsed.per_minute()] == [(100.0, 100.0), (100.0, 100.0), (250.0, 400.0)]


def test_a_steady_fleet_costs_its_hours_and_nothing_else() -> None:
    # 1 LBVM at 50% CPU for 10 minutes: every metric in its band.
    result = simulate(parse_trace(flat(500, 10)), "vote", model=FleetModel(minimum=1, maximum=5, initial=1))
    assert result.to_json() == {
        "overloadMinutes": 0,
        "instanceHours": round(10 / 60, 3),
        "scalingActions": 0,
        "flaps": 0,
    }


def test_every_minute_above_routable_capacity_is_an_overload_minute() -> None:
    result = simulate(parse_trace(flat(1500, 5)), "vote", model=FleetModel(minimum=1, maximum=1, initial=1))
    assert (result.overload_minutes, result.instance_hours, result.scaling_actions) == (5, 5 / 60, 0)


def test_overload_is_judged_on_the_peak_within_the_minute() -> None:
    result = simulate(
        parse_trace(trace((0, 900), (30, 1100), (60, 900))), "vote", model=FleetModel(minimum=1, maximum=1, initial=1)
    )
    assert result.overload_minutes == 1


def test_a_launched_lbvm_serves_after_the_launch_latency_and_is_billed_from_launch() -> None:
    # 90% CPU on 1 LBVM: vote adds one at t=60 (metrics with no lag); it serves from t=180.
    model = FleetModel(minimum=1, maximum=5, initial=1, launch_latency_seconds=120, metric_lag=0)
    result = simulate(parse_trace(flat(900, 10)), "vote", model=model)
    assert [(a.time_seconds, a.previous, a.desired) for a in result.actions] == [(60, 1, 2)]
    assert [m.routable for m in result.timeline] == [1, 1, 1, 2, 2, 2, 2, 2, 2, 2]
    assert result.instance_hours == pytest.approx((600 + 540) / 3600)


def test_a_scale_in_victim_stops_serving_at_once_and_is_billed_until_drained() -> None:
    model = FleetModel(minimum=1, maximum=5, initial=2, metric_lag=0, drain_seconds=60)
    result = simulate(parse_trace(flat(100, 5)), "vote", model=model)  # every metric votes -1
    assert [(a.time_seconds, a.previous, a.desired) for a in result.actions] == [(60, 2, 1)]
    assert [m.routable for m in result.timeline] == [2, 1, 1, 1, 1]
    assert result.instance_hours == pytest.approx((300 + 120) / 3600)


def test_metrics_arrive_a_period_late_by_default() -> None:
    result = simulate(parse_trace(flat(900, 5)), "vote", model=FleetModel(minimum=1, maximum=5, initial=1))
    assert [a.time_seconds for a in result.actions] == [120]


def test_the_default_fleet_starts_sized_for_its_first_minute() -> None:
    result = simulate(parse_trace(flat(3000, 2)), "vote", model=FleetModel(minimum=2, maximum=40))
    assert result.timeline[0].routable == 5  # 3000 rps at 60% of 1000 per LBVM


def _action(minute: int, previous: int, desired: int) -> Action:
    return Action(minute * 60, previous, desired, "")


def test_flaps_are_reversals_within_fifteen_minutes() -> None:
    actions = [
        _action(0, 2, 3),
        _action(10, 3, 2),  # in, 10 min after an out: flap
        _action(20, 2, 3),  # out, 10 min after an in: flap
        _action(35, 3, 4),  # out after out: no flap
        _action(51, 4, 3),  # in, 16 min after the last out: no flap
        _action(66, 3, 4),  # out, exactly 15 min after an in: flap
    ]
    assert count_flaps(actions) == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,load\n0,1\n", "header must be 't,load'"),
        ("", "header must be 't,load'"),
        ("t,load\n", "no samples"),
        ("t,load\n0,1\nx,2\n", ":3: t and load must be numbers"),
        ("t,load\n0,1\n60,-2\n", ":3: t and load must be finite and not negative"),
        ("t,load\n0,1\n0,2\n", ":3: t must increase"),
        ("t,load\n0,1,2\n", ":2: expected 2 columns"),
        ("t,load\n0,nan\n", "finite"),
    ],
)
def test_bad_traces_are_refused_with_the_line(text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        parse_trace(text, "x.csv")
