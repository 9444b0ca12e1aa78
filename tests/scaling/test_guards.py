"""The guards every policy goes through: missing data, safeguards, warm floor, bounds."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lbcp.models.scaling import ScalingState, WarmFloor
from lbcp.scaling.evaluate import apply_guards, decide
from lbcp.scaling.model import Proposal, Reading
from lbcp.scaling.policies import POLICIES
from lbcp.scaling.policies.vote import VotePolicy
from tests.scaling.helpers import ALL_LOW, IN_BAND, NOW, SEED_EXAMPLE, current, settings, window

VOTE = VotePolicy()


def _complete(metric: str = "cpu") -> dict[str, Reading]:
    return {metric: Reading(metric, 10.0, {"subnet-a": 10.0}, ())}


def test_no_scale_in_while_fewer_lbvms_are_routable_than_desired() -> None:
    decision = decide(VOTE, window(ALL_LOW), current(4, serving={"subnet-a": 2, "subnet-b": 1}), settings(), NOW)
    assert (decision.desired, decision.hold, decision.reason) == (4, "pool-short", "ScalingHeld")
    assert "no scale-in while only 3 of 4 LBVMs are Routable" in decision.message


def test_min_per_zone_is_a_floor_for_scale_in_only() -> None:
    decision = decide(VOTE, window(ALL_LOW), current(4), settings(minPerZone=2), NOW)
    assert (decision.desired, decision.hold) == (4, "min-per-zone")
    below = decide(VOTE, window(IN_BAND), current(3), settings(minPerZone=2), NOW)
    assert below.desired == 3  # below the floor already: nothing forces a scale-out
    proposal = Proposal(desired=2, rule="test")
    guarded = apply_guards(
        "test", proposal, readings=_complete(), current=current(6), settings=settings(minPerZone=2), now=NOW
    )
    assert guarded.desired == 4  # 2 per zone x 2 zones


def test_a_warm_floor_raises_desired_capacity_until_it_expires() -> None:
    warm = WarmFloor(floor=6, expires_at=NOW + timedelta(minutes=30), reason="launch event", requested_by="alice")
    decision = decide(VOTE, window(IN_BAND), current(3, ScalingState(warm=warm)), settings(), NOW)
    assert (decision.desired, decision.reason) == (6, "ScaledOut")
    assert decision.rule == "warm floor 6 (launch event)"
    assert decision.state.warm == warm
    held = decide(VOTE, window(ALL_LOW), current(6, decision.state), settings(), NOW + timedelta(minutes=20))
    assert held.desired == 6  # the votes say -1, the floor says no


def test_an_expired_warm_floor_is_dropped_and_recorded() -> None:
    warm = WarmFloor(floor=6, expires_at=NOW - timedelta(seconds=1))
    decision = decide(VOTE, window(IN_BAND), current(6, ScalingState(warm=warm)), settings(), NOW)
    assert (decision.desired, decision.reason) == (6, "WarmExpired")
    assert decision.state.warm is None
    assert "warm floor of 6 expired" in decision.message


def test_a_warm_floor_never_exceeds_the_maximum() -> None:
    warm = WarmFloor(floor=12, expires_at=NOW + timedelta(minutes=30))
    decision = decide(VOTE, window(IN_BAND), current(3, ScalingState(warm=warm)), settings(maximum=8), NOW)
    assert decision.desired == 8


def test_bounds_win_over_a_stored_value_outside_them() -> None:
    # The user narrowed capacity: the policy's current value is already clamped, and so is its result.
    assert decide(VOTE, window(SEED_EXAMPLE), current(10), settings(maximum=10), NOW).desired == 10
    proposal = Proposal(desired=0, rule="test")
    assert (
        apply_guards(
            "test", proposal, readings=_complete(), current=current(1), settings=settings(minimum=1), now=NOW
        ).desired
        == 1
    )


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_nothing_reported_at_all_never_scales_in(name: str) -> None:
    decision = decide(POLICIES[name], window({}), current(5), settings(), NOW)
    assert decision.desired == 5


def test_state_remembers_the_last_decision_only_when_it_changed_something() -> None:
    changed = decide(VOTE, window(SEED_EXAMPLE), current(3), settings(), NOW)
    assert changed.state.last_decision == changed.message
    kept = decide(VOTE, window(IN_BAND), current(3), settings(), NOW)
    assert kept.state.last_decision is None
    assert kept.reason == "Unchanged"
