"""How many LBVMs a load balancer should have right now (pure)."""

from __future__ import annotations

from lbcp.models.spec import Capacity


def effective_desired_capacity(capacity: Capacity, stored_desired: int) -> int:
    """The scaler's stored decision, held inside the spec's bounds.

    The bounds win: after a user narrows ``capacity``, the fleet follows the
    new bounds at once, without waiting for the scaler's next decision.
    """
    return max(capacity.min, min(capacity.max, stored_desired))
