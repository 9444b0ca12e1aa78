"""Builders for policy tests: settings, metric windows and the fleet as it stands."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from lbcp.models.scaling import ScalingState
from lbcp.models.spec import Capacity, Scaling
from lbcp.scaling.model import Current, Datapoint, MetricsWindow
from lbcp.scaling.settings import PolicySettings, settings_from_scaling

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SUBNETS = ("subnet-a", "subnet-b")
LONG_AGO = NOW - timedelta(days=1)


def settings(minimum: int = 1, maximum: int = 10, **scaling: Any) -> PolicySettings:
    capacity = Capacity.model_validate({"min": minimum, "max": maximum})
    return settings_from_scaling(Scaling.model_validate(scaling), capacity)


def window(
    values: Mapping[str, Any],
    at: datetime = NOW - timedelta(minutes=2),
    subnets: tuple[str, ...] = SUBNETS,
) -> MetricsWindow:
    """One fresh datapoint per metric and subnet: a number for all subnets, or a {subnet: value} map."""
    series: dict[tuple[str, str], list[Datapoint]] = {}
    for metric, value in values.items():
        per_subnet = value if isinstance(value, Mapping) else dict.fromkeys(subnets, value)
        for subnet, v in per_subnet.items():
            series[(subnet, metric)] = [(at - timedelta(minutes=1), v), (at, v)]
    return MetricsWindow(series)


def current(
    desired: int = 3,
    state: ScalingState | None = None,
    serving: Mapping[str, int] | None = None,
    subnets: tuple[str, ...] = SUBNETS,
    since: datetime = LONG_AGO,
) -> Current:
    """The fleet; ``serving`` LBVMs per subnet have been Routable since ``since`` (None: unknown)."""
    routable = None if serving is None else {s: [since] * serving.get(s, 0) for s in subnets}
    return Current(desired=desired, subnets=subnets, state=state or ScalingState(), routable=routable)


# The seed's example: cpu 85% > 80% votes +1, memory 35% < 40% votes -1, connections in band.
SEED_EXAMPLE = {"cpu": 85.0, "memory": 35.0, "activeConnections": 1000.0}
ALL_LOW = {"cpu": 20.0, "memory": 30.0, "activeConnections": 100.0}
IN_BAND = {"cpu": 60.0, "memory": 60.0, "activeConnections": 1000.0}
