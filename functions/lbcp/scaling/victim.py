"""Which LBVM a scale-in removes (pure; the reconciler calls it with its own records and RNG).

The seed policy removes a random instance. Random, so that no LBVM is
systematically the one kept longest (old configs, leaks), but never at the
price of Availability Zone balance: the victim comes from a zone with the most
LBVMs, and within those zones an LBVM that serves no traffic (still launching,
pending, or unroutable) goes before one that does.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from lbcp.models.status import LbvmState

# Already leaving: never chosen, and not counted in a zone's size.
LEAVING: Final[frozenset[LbvmState]] = frozenset({"Draining", "Terminated"})
# In the pool but carrying no traffic: the cheapest to remove.
NOT_SERVING: Final[frozenset[LbvmState]] = frozenset({"Launching", "Pending", "Unroutable"})


@dataclass(frozen=True)
class LbvmRef:
    """What the victim choice needs to know of an LBVM."""

    lbvm_id: str
    zone: str  # subnet id (one subnet per Availability Zone) or the zone's name
    state: LbvmState


def scale_in_candidates(lbvms: Sequence[LbvmRef]) -> list[LbvmRef]:
    """The LBVMs a scale-in by one picks from at random, sorted by id (empty if none can go).

    Those of the zones with the most LBVMs; among them, those that serve no traffic if there are any.
    """
    candidates = [lbvm for lbvm in lbvms if lbvm.state not in LEAVING]
    if not candidates:
        return []
    sizes = Counter(lbvm.zone for lbvm in candidates)
    largest = max(sizes.values())
    in_largest = [lbvm for lbvm in candidates if sizes[lbvm.zone] == largest]
    idle = [lbvm for lbvm in in_largest if lbvm.state in NOT_SERVING]
    # Sorted, so that the same RNG state picks the same LBVM whatever the input order.
    return sorted(idle or in_largest, key=lambda lbvm: lbvm.lbvm_id)


def choose_scale_in_victim(lbvms: Sequence[LbvmRef], rng: random.Random) -> LbvmRef | None:
    """The LBVM to drain for a scale-in by one, or None if none can go.

    Call once per LBVM to remove, each time without the previous victims.
    """
    pool = scale_in_candidates(lbvms)
    return rng.choice(pool) if pool else None


@dataclass(frozen=True)
class Victim:
    """A victim and the candidates it was drawn from (what a plan preview says instead of the draw)."""

    lbvm: LbvmRef
    drawn_from: tuple[LbvmRef, ...]


def draw_scale_in_victims(lbvms: Sequence[LbvmRef], count: int, rng: random.Random) -> list[Victim]:
    """``count`` victims, chosen one at a time so that the zones stay balanced throughout."""
    remaining = list(lbvms)
    chosen: list[Victim] = []
    for _ in range(count):
        pool = scale_in_candidates(remaining)
        if not pool:
            break
        victim = rng.choice(pool)
        chosen.append(Victim(victim, tuple(pool)))
        remaining.remove(victim)
    return chosen


def choose_scale_in_victims(lbvms: Sequence[LbvmRef], count: int, rng: random.Random) -> list[LbvmRef]:
    """``count`` victims, chosen one at a time so that the zones stay balanced throughout."""
    return [victim.lbvm for victim in draw_scale_in_victims(lbvms, count, rng)]
