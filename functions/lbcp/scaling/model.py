"""The values policies work on: metrics, the fleet as it stands, and decisions (pure data).

Metric names here are the spec's (``cpu``, ``memory``, ``activeConnections``),
as the metrics reader (``lbcp.adapters.metrics``) keys its series; the names the
heartbeat handler publishes to CloudWatch for graphs are in ``lbcp.models.metrics``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from lbcp.models.events import ScalingReason
from lbcp.models.scaling import ScalingState

Datapoint = tuple[datetime, float]
Vote = Literal[-1, 0, 1]
Direction = Literal["out", "in", "none"]


@dataclass(frozen=True)
class MetricsWindow:
    """Per-minute averages of the last few minutes, per (subnet, metric), oldest first.

    A series that is absent, empty or old is *missing*: policies never scale in on it.
    """

    series: Mapping[tuple[str, str], Sequence[Datapoint]] = field(default_factory=dict)

    def latest(self, subnet_id: str, metric: str) -> Datapoint | None:
        points = self.series.get((subnet_id, metric))
        return max(points, key=lambda point: point[0]) if points else None


@dataclass(frozen=True)
class Current:
    """The load balancer as the scaler finds it.

    ``routable`` has, per subnet, the time each Routable LBVM became routable,
    as the reconciler last reported them (None when it has reported nothing
    yet). Policies that size the fleet from load need it: a per-subnet average
    describes the LBVMs that served during its period, so it is multiplied by
    the LBVMs routable *then*, not by those routable now (metrics arrive a
    period or two late; counting LBVMs that joined since would count the same
    load twice and overshoot).
    """

    desired: int
    subnets: tuple[str, ...]
    state: ScalingState = field(default_factory=ScalingState)
    routable: Mapping[str, Sequence[datetime]] | None = None

    @property
    def serving(self) -> Mapping[str, int] | None:
        if self.routable is None:
            return None
        return {subnet: len(self.routable.get(subnet, ())) for subnet in self.subnets}

    @property
    def serving_total(self) -> int | None:
        serving = self.serving
        return None if serving is None else sum(serving.values())

    def serving_at(self, subnet: str, moment: datetime) -> float:
        """LBVMs serving in ``subnet`` through the period starting at ``moment``.

        Unknown counts are estimated as the desired capacity spread evenly.
        """
        if self.routable is None:
            return self.desired / max(1, len(self.subnets))
        return sum(1 for since in self.routable.get(subnet, ()) if since <= moment)


@dataclass(frozen=True)
class Reading:
    """One metric of one load balancer after freshness checks.

    ``value`` is the LBVM-weighted mean over the subnets that reported;
    ``by_subnet`` has each fresh subnet's newest value and ``at`` its period's
    start; ``missing`` names subnets whose series is absent or stale although
    LBVMs serve there.
    """

    metric: str
    value: float | None
    by_subnet: Mapping[str, float]
    missing: tuple[str, ...]
    at: Mapping[str, datetime] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.value is not None and not self.missing


@dataclass(frozen=True)
class Finding:
    """How one metric weighed in: its value, the threshold or target it met, its vote."""

    metric: str
    value: float | None
    threshold: float | None
    vote: Vote
    comparison: str  # ">", "<", "in band", "missing", "x target", ...
    subnet: str | None = None  # per-zone: the subnet that decided for this metric
    detail: str = ""


@dataclass(frozen=True)
class Proposal:
    """What a policy wants before the shared guards (bounds, warm floor, safeguards)."""

    desired: int
    rule: str
    findings: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = ()
    state: ScalingState | None = None  # the policy's updated memory, if it keeps any
    hold: str | None = None  # set when the policy itself held (cooldown, stabilization)


@dataclass(frozen=True)
class Decision:
    """The outcome of one evaluation, with everything an event needs to explain it."""

    policy: str
    previous: int
    desired: int
    rule: str
    findings: tuple[Finding, ...]
    notes: tuple[str, ...]
    state: ScalingState
    reason: ScalingReason | Literal["Unchanged"]  # Unchanged: no event
    message: str
    hold: str | None = None

    @property
    def direction(self) -> Direction:
        if self.desired > self.previous:
            return "out"
        if self.desired < self.previous:
            return "in"
        return "none"
