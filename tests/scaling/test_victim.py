"""The scale-in victim: random, but never at the price of zone balance."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from lbcp.scaling.victim import LbvmRef, choose_scale_in_victim, choose_scale_in_victims

STATES = ("Launching", "Pending", "Routable", "Unroutable", "Draining", "Terminated")


def fleet(*zones: str, state: str = "Routable") -> list[LbvmRef]:
    return [LbvmRef(f"lbvm-{i:03d}", zone, state) for i, zone in enumerate(zones)]  # type: ignore[arg-type]


def test_the_victim_comes_from_the_fullest_zone() -> None:
    lbvms = fleet("a", "a", "a", "b", "b")
    for seed in range(50):
        victim = choose_scale_in_victim(lbvms, random.Random(seed))
        assert victim is not None and victim.zone == "a"


def test_every_lbvm_of_the_fullest_zones_can_be_chosen() -> None:
    lbvms = fleet("a", "a", "b", "b")
    chosen = {choose_scale_in_victim(lbvms, random.Random(seed)) for seed in range(200)}
    assert chosen == set(lbvms)


def test_an_lbvm_not_serving_goes_first() -> None:
    lbvms = [*fleet("a", "a", "b"), LbvmRef("lbvm-new", "a", "Launching"), LbvmRef("lbvm-bad", "b", "Unroutable")]
    victim = choose_scale_in_victim(lbvms, random.Random(0))
    assert victim == LbvmRef("lbvm-new", "a", "Launching")


def test_leaving_lbvms_are_neither_chosen_nor_counted() -> None:
    lbvms = [*fleet("a", "b"), LbvmRef("lbvm-x", "a", "Draining"), LbvmRef("lbvm-y", "a", "Terminated")]
    chosen = {choose_scale_in_victim(lbvms, random.Random(seed)) for seed in range(50)}
    assert chosen == set(lbvms[:2])
    assert choose_scale_in_victim(lbvms[2:], random.Random(0)) is None


def test_the_same_rng_state_picks_the_same_lbvm_in_any_order() -> None:
    lbvms = fleet("a", "b", "a", "b")
    first = choose_scale_in_victim(lbvms, random.Random(7))
    again = choose_scale_in_victim(list(reversed(lbvms)), random.Random(7))
    assert first == again


@given(
    zones=st.lists(st.sampled_from("abc"), min_size=1, max_size=30),
    states=st.lists(st.sampled_from(STATES), min_size=30, max_size=30),
    remove=st.integers(min_value=0, max_value=30),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_removing_victims_never_unbalances_the_zones_more(
    zones: list[str], states: list[str], remove: int, seed: int
) -> None:
    lbvms = [LbvmRef(f"lbvm-{i:03d}", zone, states[i]) for i, zone in enumerate(zones)]  # type: ignore[arg-type]
    live = [vm for vm in lbvms if vm.state not in ("Draining", "Terminated")]
    victims = choose_scale_in_victims(lbvms, remove, random.Random(seed))
    assert len(victims) == min(remove, len(live))
    assert len(set(victims)) == len(victims)
    remaining = [vm for vm in live if vm not in victims]

    def spread(vms: list[LbvmRef]) -> int:
        sizes = Counter(vm.zone for vm in vms)
        present = set(zone for zone in zones if zone in {vm.zone for vm in live})
        counts = [sizes.get(zone, 0) for zone in present]
        return max(counts) - min(counts) if counts else 0

    assert spread(remaining) <= max(spread(live), 1)
