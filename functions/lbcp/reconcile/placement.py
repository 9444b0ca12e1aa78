"""Where to launch and what to drain, keeping Availability Zones balanced (pure)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from lbcp.models.lbvm import Lbvm


def subnets_for_launches(subnet_ids: Sequence[str], live: Sequence[Lbvm], count: int) -> list[str]:
    """Pick a subnet for each of ``count`` launches: always the one with the fewest live LBVMs.

    Ties go to the subnet listed first in the spec, so placement is
    deterministic and an operator can predict it.
    """
    per_subnet = Counter({subnet_id: 0 for subnet_id in subnet_ids})
    for lbvm in live:
        if lbvm.subnet_id in per_subnet:
            per_subnet[lbvm.subnet_id] += 1
    chosen: list[str] = []
    for _ in range(count):
        subnet_id = min(subnet_ids, key=lambda s: (per_subnet[s], subnet_ids.index(s)))
        per_subnet[subnet_id] += 1
        chosen.append(subnet_id)
    return chosen


def drain_victims(live: Sequence[Lbvm], count: int, rng: random.Random) -> list[Lbvm]:
    """Choose ``count`` LBVMs to drain, one at a time from the most populated subnet.

    Within that subnet, LBVMs that are not serving yet (Launching, Pending) go
    first, since draining them costs no connections; among serving ones the
    choice is random, so no LBVM is systematically favoured.
    """
    remaining = list(live)
    victims: list[Lbvm] = []
    for _ in range(min(count, len(remaining))):
        per_subnet = Counter(lbvm.subnet_id for lbvm in remaining)
        fullest = max(per_subnet.values())
        # Ties between equally full subnets are broken at random too.
        subnet_id = rng.choice(sorted(s for s, n in per_subnet.items() if n == fullest))
        candidates = [lbvm for lbvm in remaining if lbvm.subnet_id == subnet_id]
        not_serving = [lbvm for lbvm in candidates if lbvm.state != "Routable"]
        pool = not_serving or candidates
        victim = rng.choice(sorted(pool, key=lambda lbvm: lbvm.lbvm_id))
        victims.append(victim)
        remaining.remove(victim)
    return victims
