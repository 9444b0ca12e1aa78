"""Where to launch, keeping Availability Zones balanced (pure).

What to drain is the scaler's ``choose_scale_in_victims`` (lbcp.scaling.victim).
"""

from __future__ import annotations

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
