"""The seed policy (vote), rule by rule."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from lbcp.models.scaling import ScalingState
from lbcp.scaling.evaluate import decide
from lbcp.scaling.policies import resolve
from lbcp.scaling.policies.vote import VotePolicy
from tests.scaling.helpers import ALL_LOW, NOW, SEED_EXAMPLE, current, settings, window

VOTE = VotePolicy()


def test_the_seed_example_cpu_above_votes_out_memory_below_votes_in_and_any_plus_one_wins() -> None:
    decision = decide(VOTE, window(SEED_EXAMPLE), current(3), settings(), NOW)
    votes = {f.metric: f.vote for f in decision.findings}
    assert votes == {"cpu": 1, "memory": -1, "activeConnections": 0}
    assert (decision.previous, decision.desired, decision.reason) == (3, 4, "ScaledOut")
    assert decision.rule == "any +1 wins"
    assert decision.message.startswith(
        "scaled out 3 -> 4: cpu 85% > 80% voted +1; memory 35% < 40% voted -1; "
        "activeConnections 1000 in band voted 0; any +1 wins [vote]"
    )
    assert "cooldown: none active" in decision.message
    assert decision.state.last_scale_out_at == NOW


@pytest.mark.parametrize(
    ("values", "expected", "rule"),
    [
        (
            {"cpu": 80.0, "memory": 60.0, "activeConnections": 1000.0},
            3,
            "no +1 and not all -1: no change",
        ),  # = is in band
        ({"cpu": 80.1, "memory": 60.0, "activeConnections": 1000.0}, 4, "any +1 wins"),
        ({"cpu": 20.0, "memory": 90.0, "activeConnections": 100.0}, 4, "any +1 wins"),
        ({"cpu": 20.0, "memory": 30.0, "activeConnections": 100.0}, 2, "all -1: remove one"),
        ({"cpu": 20.0, "memory": 40.0, "activeConnections": 100.0}, 3, "no +1 and not all -1: no change"),
        ({"cpu": 50.0, "memory": 50.0, "activeConnections": 1000.0}, 3, "no +1 and not all -1: no change"),
        ({"cpu": 90.0, "memory": 90.0, "activeConnections": 5000.0}, 4, "any +1 wins"),  # one LBVM, however hot
    ],
)
def test_vote_table(values: dict[str, float], expected: int, rule: str) -> None:
    decision = decide(VOTE, window(values), current(3), settings(), NOW)
    assert decision.desired == expected
    assert decision.rule == rule


def test_all_minus_one_removes_one_and_says_so() -> None:
    decision = decide(VOTE, window(ALL_LOW), current(3), settings(), NOW)
    assert (decision.desired, decision.reason) == (2, "ScaledIn")
    assert "all -1: remove one" in decision.message
    assert decision.state.last_scale_in_at == NOW


@pytest.mark.parametrize("since_last", [timedelta(minutes=1), timedelta(minutes=9, seconds=59)])
@pytest.mark.parametrize("direction", ["out", "in"])
def test_cooldown_holds_any_change_for_ten_minutes_after_any_change(since_last: timedelta, direction: str) -> None:
    last = NOW - since_last
    state = ScalingState(last_scale_out_at=last) if direction == "out" else ScalingState(last_scale_in_at=last)
    for values in (SEED_EXAMPLE, ALL_LOW):
        decision = decide(VOTE, window(values), current(3, state), settings(), NOW)
        assert decision.desired == 3
        assert decision.hold == "cooldown"
        assert "cooling down" in decision.rule
        assert "left of 10m" in decision.message


def test_cooldown_over_after_ten_minutes() -> None:
    state = ScalingState(last_scale_out_at=NOW - timedelta(minutes=10))
    decision = decide(VOTE, window(SEED_EXAMPLE), current(3, state), settings(), NOW)
    assert decision.desired == 4
    assert "cooldown: 10m over" in decision.message


def test_cooldown_comes_from_the_spec() -> None:
    state = ScalingState(last_scale_out_at=NOW - timedelta(minutes=2))
    decision = decide(VOTE, window(SEED_EXAMPLE), current(3, state), settings(cooldownSeconds=60), NOW)
    assert decision.desired == 4


def test_bounds_hold_at_max_and_min() -> None:
    at_max = decide(VOTE, window(SEED_EXAMPLE), current(5), settings(maximum=5), NOW)
    assert (at_max.desired, at_max.hold, at_max.reason) == (5, "max", "ScalingHeld")
    assert "held at capacity.max 5 (policy: 6)" in at_max.message
    at_min = decide(VOTE, window(ALL_LOW), current(2), settings(minimum=2), NOW)
    assert (at_min.desired, at_min.hold) == (2, "min")


def test_a_held_reason_is_news_once() -> None:
    first = decide(VOTE, window(SEED_EXAMPLE), current(5), settings(maximum=5), NOW)
    again = decide(VOTE, window(SEED_EXAMPLE), current(5, first.state), settings(maximum=5), NOW)
    assert (first.reason, again.reason) == ("ScalingHeld", "Unchanged")


@pytest.mark.parametrize("missing", ["cpu", "memory", "activeConnections"])
def test_a_missing_metric_cannot_vote_so_all_low_does_not_scale_in(missing: str) -> None:
    values = {k: v for k, v in ALL_LOW.items() if k != missing}
    decision = decide(VOTE, window(values), current(3), settings(), NOW)
    assert decision.desired == 3
    assert {f.metric: f.comparison for f in decision.findings}[missing] == "missing"


def test_missing_metrics_do_not_stop_a_scale_out_on_the_others() -> None:
    decision = decide(VOTE, window({"cpu": 95.0}), current(3), settings(), NOW)
    assert decision.desired == 4


def test_stale_metrics_count_as_missing() -> None:
    stale = window(ALL_LOW, at=NOW - timedelta(minutes=3, seconds=1))
    decision = decide(VOTE, stale, current(3), settings(), NOW)
    assert decision.desired == 3
    fresh_enough = window(ALL_LOW, at=NOW - timedelta(minutes=3))
    assert decide(VOTE, fresh_enough, current(3), settings(), NOW).desired == 2


def test_a_metric_missing_in_one_subnet_blocks_scale_in() -> None:
    values = {**ALL_LOW, "cpu": {"subnet-a": 20.0}}
    decision = decide(VOTE, window(values), current(4, serving={"subnet-a": 2, "subnet-b": 2}), settings(), NOW)
    assert decision.desired == 4
    assert decision.hold == "missing-metrics"
    assert "cpu in subnet-b" in decision.message


def test_a_subnet_without_serving_lbvms_is_not_expected_to_report() -> None:
    values = {k: {"subnet-a": v} for k, v in ALL_LOW.items()}
    decision = decide(VOTE, window(values), current(2, serving={"subnet-a": 2, "subnet-b": 0}), settings(), NOW)
    assert decision.desired == 1


def test_a_disabled_metric_is_not_read() -> None:
    decision = decide(
        VOTE, window({"cpu": 20.0, "activeConnections": 100.0}), current(3), settings(metrics={"memory": None}), NOW
    )
    assert decision.desired == 2
    assert [f.metric for f in decision.findings] == ["cpu", "activeConnections"]


def test_weight_zero_abstains() -> None:
    spec: dict[str, Any] = {"metrics": {"memory": {"scaleOutAbove": 80.0, "scaleInBelow": 40.0, "weight": 0.0}}}
    values = {"cpu": 20.0, "memory": 95.0, "activeConnections": 100.0}
    decision = decide(VOTE, window(values), current(3), settings(**spec), NOW)
    assert decision.desired == 2  # memory's 95% does not vote; the others all say -1
    assert "memory 95% abstains (weight 0)" in decision.message


def test_per_zone_a_hot_subnet_scales_out_although_the_average_is_in_band() -> None:
    values = {"cpu": {"subnet-a": 95.0, "subnet-b": 45.0}, "memory": 50.0, "activeConnections": 1000.0}
    aggregate = decide(VOTE, window(values), current(4), settings(), NOW)
    per_zone = decide(VOTE, window(values), current(4), settings(zoneEvaluation="per-zone"), NOW)
    assert (aggregate.desired, per_zone.desired) == (4, 5)
    assert "cpu 95% > 80% in subnet-a voted +1" in per_zone.message


def test_per_zone_scale_in_needs_every_subnet_cold() -> None:
    values = {**ALL_LOW, "cpu": {"subnet-a": 20.0, "subnet-b": 50.0}}
    decision = decide(VOTE, window(values), current(4), settings(zoneEvaluation="per-zone"), NOW)
    assert decision.desired == 4


def test_default_names_the_chosen_policy_and_unknown_names_fail() -> None:
    from lbcp.models.spec import DEFAULT_SCALING_POLICY
    from lbcp.scaling.policies import UnknownPolicy

    assert resolve("default").name == DEFAULT_SCALING_POLICY
    assert resolve("vote").name == "vote"
    with pytest.raises(UnknownPolicy, match="known: default, vote"):
        resolve("pid")
