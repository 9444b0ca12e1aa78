"""How many LBVMs a rollout may add or take out of service, from counts or percentages of desired (pure).

The semantics are a Kubernetes Deployment's: maxSurge rounds up and
maxUnavailable rounds down, so a percentage never makes a rollout more
disruptive than it says; if both come to 0 for a small fleet (25% of 2 each),
maxUnavailable is 1 rather than a rollout that can never move.
"""

from __future__ import annotations

import math

from lbcp.models.spec import CountOrPercentage, Rollout


def resolve(value: CountOrPercentage, desired: int, *, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    exact = int(value.removesuffix("%")) * desired / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def surge_count(rollout: Rollout, desired: int) -> int:
    """LBVMs a rollout may run above the desired capacity."""
    return resolve(rollout.max_surge, desired, round_up=True)


def unavailable_count(rollout: Rollout, desired: int) -> int:
    """Desired LBVMs a rollout may take out of service at once."""
    unavailable = resolve(rollout.max_unavailable, desired, round_up=False)
    if unavailable == 0 and surge_count(rollout, desired) == 0:
        return 1
    return unavailable
