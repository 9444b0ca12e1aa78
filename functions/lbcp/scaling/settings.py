"""A policy's settings, taken from the spec once per evaluation (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from lbcp.models.spec import Capacity, LoadBalancerSpec, MetricThresholds, Scaling, ZoneEvaluation

# A series whose newest per-minute average is older than this is stale. Agents
# sample every minute and the sample reaches the LBVM's record with the next
# heartbeat; the scaler averages whole minutes only (the newest is 1-2 minutes
# old when it reads), so three periods tolerates one missed sample but no more.
DEFAULT_STALE_AFTER = timedelta(minutes=3)


@dataclass(frozen=True)
class MetricSettings:
    name: str
    scale_out_above: float
    scale_in_below: float
    target: float | None
    weight: float
    peak: float | None = None


@dataclass(frozen=True)
class Step:
    above_by_percent: float
    add: int


@dataclass(frozen=True)
class PolicySettings:
    minimum: int
    maximum: int
    metrics: tuple[MetricSettings, ...]
    cooldown: timedelta = timedelta(minutes=10)
    scale_in_stabilization: timedelta = timedelta(minutes=5)
    tolerance: float = 0.1
    steps: tuple[Step, ...] = (Step(0.0, 1), Step(10.0, 2), Step(20.0, 3))
    zone_evaluation: ZoneEvaluation = "aggregate"
    min_per_zone: int = 0
    stale_after: timedelta = DEFAULT_STALE_AFTER
    # The noise-aware policy's (lbcp.scaling.policies.noise_aware explains each).
    noise_window: timedelta = timedelta(minutes=30)
    noise_sigmas: float = 2.25
    smoothing_minutes: int = 4
    burst_percent: float = 30.0
    scale_out_tolerance: float = 0.05
    scale_out_headroom: float = 0.05

    def metric(self, name: str) -> MetricSettings:
        return next(m for m in self.metrics if m.name == name)


def _metric(name: str, thresholds: MetricThresholds | None) -> list[MetricSettings]:
    if thresholds is None:
        return []
    return [
        MetricSettings(
            name=name,
            scale_out_above=thresholds.scale_out_above,
            scale_in_below=thresholds.scale_in_below,
            target=thresholds.target,
            weight=thresholds.weight,
            peak=thresholds.peak,
        )
    ]


def settings_from_scaling(scaling: Scaling, capacity: Capacity) -> PolicySettings:
    metrics = scaling.metrics
    return PolicySettings(
        minimum=capacity.min,
        maximum=capacity.max,
        metrics=(
            *_metric("cpu", metrics.cpu),
            *_metric("memory", metrics.memory),
            *_metric("activeConnections", metrics.active_connections),
        ),
        cooldown=timedelta(seconds=scaling.cooldown_seconds),
        scale_in_stabilization=timedelta(seconds=scaling.scale_in_stabilization_seconds),
        tolerance=scaling.tolerance,
        steps=tuple(Step(step.above_by_percent, step.add) for step in scaling.steps),
        zone_evaluation=scaling.zone_evaluation,
        min_per_zone=scaling.min_per_zone,
        noise_window=timedelta(seconds=scaling.noise_window_seconds),
        noise_sigmas=scaling.noise_sigmas,
        smoothing_minutes=scaling.smoothing_minutes,
        burst_percent=scaling.burst_percent,
        scale_out_tolerance=scaling.scale_out_tolerance,
        scale_out_headroom=scaling.scale_out_headroom,
    )


def settings_from_spec(spec: LoadBalancerSpec) -> PolicySettings:
    return settings_from_scaling(spec.scaling, spec.capacity)
