"""From raw per-subnet series to one reading per metric: freshness and aggregation (pure)."""

from __future__ import annotations

from datetime import datetime

from lbcp.scaling.model import Current, MetricsWindow, Reading
from lbcp.scaling.settings import PolicySettings


def expected_subnets(current: Current) -> tuple[str, ...]:
    """Subnets whose LBVMs must be reporting: those with a serving LBVM, or all when unknown."""
    if current.serving is None:
        return current.subnets
    return tuple(s for s in current.subnets if current.serving.get(s, 0) > 0)


def read_metrics(
    window: MetricsWindow, current: Current, settings: PolicySettings, now: datetime
) -> dict[str, Reading]:
    expected = set(expected_subnets(current))
    readings: dict[str, Reading] = {}
    for metric in settings.metrics:
        by_subnet: dict[str, float] = {}
        at: dict[str, datetime] = {}
        missing: list[str] = []
        for subnet in current.subnets:
            point = window.latest(subnet, metric.name)
            # A datapoint from the future (clock skew) is as fresh as one from now.
            if point is not None and now - point[0] <= settings.stale_after:
                at[subnet], by_subnet[subnet] = point
            elif subnet in expected:
                missing.append(subnet)
        readings[metric.name] = Reading(
            metric=metric.name,
            value=_weighted_mean(by_subnet, at, current),
            by_subnet=by_subnet,
            missing=tuple(missing),
            at=at,
        )
    return readings


def serving_for(reading: Reading, current: Current) -> dict[str, float]:
    """LBVMs behind each subnet's value: those serving during the value's period."""
    return {subnet: current.serving_at(subnet, reading.at[subnet]) for subnet in reading.by_subnet}


def _weighted_mean(by_subnet: dict[str, float], at: dict[str, datetime], current: Current) -> float | None:
    """The mean per LBVM over the subnets: each subnet's average weighs as many LBVMs as served there."""
    if not by_subnet:
        return None
    weights = {s: current.serving_at(s, at[s]) for s in by_subnet}
    if sum(weights.values()) == 0:
        # Serving counts unknown (or lagging behind the metrics): the reconciler
        # spreads LBVMs evenly, so an unweighted mean is the best estimate.
        weights = dict.fromkeys(by_subnet, 1)
    total = sum(weights.values())
    return sum(value * weights[s] for s, value in by_subnet.items()) / total
