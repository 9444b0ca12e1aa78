"""Noise-aware scaling: out on the trend or a burst, in only when the noise's high end fits in fewer LBVMs.

Real web traffic is noisy from one minute to the next (a busy site's requests
per minute wander ±15% around their level), and a policy that compares the
last few readings with a threshold answers every wander: it scales in on a
quiet minute and back out on the next busy one (a *flap*), and pays for the
launches and drains in between. This policy separates level from noise.

**Demand.** Each metric with a ``peak`` (the most one LBVM may carry: CPU 90%,
memory 80%, 1500 connections by default) says how many LBVMs its load needs
at that peak: ``demand = load x weight / peak``, where ``load`` is each
subnet's average times the LBVMs that served during its period (as for target
tracking: LBVMs still launching add no load to the average, so they must not
multiply it). The metric needing most wins. Demand is in LBVMs, not percent,
so it stays true across fleet changes, and each period's is remembered in the
scaling state for the noise window (``noiseWindowSeconds``, 30 minutes).

**Scale-out** (capacity = desired LBVMs, launching ones included):

1. *Burst*: the latest period's demand is more than ``burstPercent`` (30%)
   above capacity: scale out now, without waiting for smoothing, to
   ``ceil(latest x (1 + scaleOutHeadroom))``.
2. *Trend*: the mean demand of the last ``smoothingMinutes`` (4) periods,
   carried ``smoothingMinutes`` ahead along its slope when demand is rising
   (least squares over the last 24 periods), is more than
   ``scaleOutTolerance`` (5%) above capacity: scale out to
   ``ceil(projected x (1 + scaleOutHeadroom))``. One noisy minute moves a
   four-minute mean by a quarter of its excursion and a 24-period slope
   hardly at all, so a lone busy minute does not scale out (it costs at most
   the 10% between peak and saturation); a steady ramp is met before it
   arrives (the smoothed mean is a couple of periods old, the metrics one
   or two, and a new LBVM serves minutes after the decision).

Each decision at most doubles the fleet (or adds 4), as target tracking.

**Scale-in** looks at the distribution, not the last readings: only when
``high = mean + noiseSigmas x sigma`` (2.25 standard deviations) of demand
over the noise window fits in fewer LBVMs (``ceil(high) < capacity``), with
at least half of the window's periods on record, and not until a full
stabilization after the last scale-out (``cooldownSeconds`` +
``scaleInStabilizationSeconds``, more than 15 minutes by default, so never a
flap after a scale-out). It goes by steps: at most half of the surplus
(at least one LBVM) per decision, so that evidence arriving meanwhile can stop
it. A scale-in sized to the high end of the noise leaves room for the noise:
a normal wander of 2.25 sigma stays under the peaks, so it does not call for
the next scale-out.

The peaks are hard ceilings: demand is sized under every metric's peak, so a
scale-in never plans to run any metric above its own. A policy decision is a
pure function of the readings, the scaling state and ``now``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from lbcp.models.scaling import DemandSample
from lbcp.scaling.explain import duration, number
from lbcp.scaling.model import Current, Finding, Proposal, Reading, Vote
from lbcp.scaling.policies.guards import scale_in_wait_after_scale_out
from lbcp.scaling.readings import serving_for
from lbcp.scaling.settings import MetricSettings, PolicySettings

NAME = "noise-aware"
# Floating-point slack so that demand exactly at a whole number of LBVMs does not round up to one more.
_EPSILON = 1e-9
# Scale-in needs this share of the noise window's periods on record (a new or recovering series waits).
MIN_WINDOW_SHARE = 0.5
PERIOD = timedelta(minutes=1)
# The trend is fitted over this many smoothing spans (24 periods by default): long enough that
# the noise of single minutes hardly tilts it, short enough to see a morning's ramp.
TREND_SPANS = 6


def _ceil(value: float) -> int:
    return math.ceil(value - _EPSILON)


def _vote(demand: float, desired: int) -> Vote:
    if demand > desired + _EPSILON:
        return 1
    return -1 if _ceil(demand) < desired else 0


def metric_demand(
    reading: Reading, metric: MetricSettings, current: Current, per_zone: bool
) -> tuple[Finding, float | None]:
    """LBVMs this metric's load needs at its peak (None: it cannot say)."""
    if metric.peak is None or metric.weight == 0:
        return Finding(metric.name, reading.value, None, 0, "abstains"), None
    peak = metric.peak
    serving = serving_for(reading, current)
    comparison = f"vs peak {number(metric.name, peak)}"
    if per_zone:
        # Each subnet sized for its own load; the zones are kept equal, so the hottest decides.
        sized = [
            (value * metric.weight * serving[subnet] / peak, subnet)
            for subnet, value in reading.by_subnet.items()
            if serving[subnet] > 0
        ]
        if not sized:
            return Finding(metric.name, None, peak, 0, "missing"), None
        here, where = max(sized)
        demand = (len(current.subnets) or 1) * here
        value = reading.by_subnet[where]
        subnet: str | None = where
    else:
        behind = sum(serving.values())
        if reading.value is None or behind == 0:
            return Finding(metric.name, reading.value, peak, 0, "missing"), None
        load = sum(reading.by_subnet[s] * serving[s] for s in reading.by_subnet)
        value = load / behind
        demand = load * metric.weight / peak
        subnet = None
    weighted = f", weight {metric.weight:g}" if metric.weight != 1 else ""
    detail = f"x{value * metric.weight / peak:.2f} of peak{weighted}: demand {demand:.2f} LBVMs"
    return Finding(metric.name, value, peak, _vote(demand, current.desired), comparison, subnet, detail), demand


@dataclass(frozen=True)
class DemandStats:
    """What the remembered demand says: its latest value, its recent level and trend, its spread."""

    latest: float
    smoothed: float  # mean of the last smoothingMinutes periods
    slope: float  # LBVMs per period, least squares over the last TREND_SPANS x smoothingMinutes periods
    projected: float  # smoothed, carried smoothingMinutes ahead along a rising slope
    mean: float  # over the noise window
    sigma: float  # population standard deviation over the noise window
    high: float  # mean + noiseSigmas x sigma
    periods: int  # periods on record in the noise window

    @classmethod
    def of(cls, history: Sequence[DemandSample], settings: PolicySettings) -> DemandStats:
        values = [sample.lbvms for sample in history]
        newest = history[-1].time
        span = settings.smoothing_minutes
        recent = [s.lbvms for s in history if newest - s.time < span * PERIOD]
        smoothed = sum(recent) / len(recent)
        slope = _slope(
            [((s.time - newest) / PERIOD, s.lbvms) for s in history if newest - s.time < TREND_SPANS * span * PERIOD]
        )
        mean = sum(values) / len(values)
        sigma = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        return cls(
            latest=values[-1],
            smoothed=smoothed,
            slope=slope,
            # The smoothed mean is (span - 1) / 2 periods old, the metrics a period or two,
            # and a new LBVM serves minutes after the decision: about span periods in all.
            projected=smoothed + max(0.0, slope) * span,
            mean=mean,
            sigma=sigma,
            high=mean + settings.noise_sigmas * sigma,
            periods=len(values),
        )


def _slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points (0 for fewer than three)."""
    if len(points) < 3:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def remember(history: Sequence[DemandSample], sample: DemandSample, window: timedelta) -> list[DemandSample]:
    """The noise window's samples with ``sample`` as the newest (a second one for its period replaces the first)."""
    kept = [s for s in history if sample.time - window < s.time < sample.time]
    return [*kept, sample]


class NoiseAwarePolicy:
    name = NAME

    def propose(
        self, readings: Mapping[str, Reading], current: Current, settings: PolicySettings, now: datetime
    ) -> Proposal:
        state = current.state
        desired = current.desired
        per_zone = settings.zone_evaluation == "per-zone"
        scored = [metric_demand(readings[m.name], m, current, per_zone) for m in settings.metrics]
        findings = tuple(finding for finding, _ in scored)
        demands = [(demand, readings[m.name]) for (_, demand), m in zip(scored, settings.metrics, strict=True)]
        known = [(demand, reading) for demand, reading in demands if demand is not None]
        if not known:
            return Proposal(desired, "no metric with a peak to size the fleet from: no change", findings)
        demand = max(value for value, _ in known)
        period = max(moment for _, reading in known for moment in reading.at.values())
        history = remember(state.demand, DemandSample(time=period, lbvms=demand), settings.noise_window)
        remembered = state.model_copy(update={"demand": history})
        stats = DemandStats.of(history, settings)
        level = (
            f"demand {stats.latest:.2f} LBVMs, {stats.smoothed:.2f} over {settings.smoothing_minutes}m"
            f" ({stats.projected:.2f} projected at {stats.slope:+.2f}/m),"
            f" {stats.mean:.2f} ± {stats.sigma:.2f} over {duration(settings.noise_window)}"
        )
        notes: list[str] = []
        limit = max(2 * desired, desired + 4)

        burst_above = desired * (1 + settings.burst_percent / 100)
        trend_above = desired * (1 + settings.scale_out_tolerance)
        need = 0
        if stats.latest > burst_above + _EPSILON:
            need = _ceil(max(stats.latest, stats.smoothed) * (1 + settings.scale_out_headroom))
            rule = (
                f"{level}; burst: latest {stats.latest:.2f} is {stats.latest / desired - 1:.0%} above {desired}"
                f" (more than {settings.burst_percent:g}%): scale out to {min(need, limit)} now"
            )
        elif stats.projected > trend_above + _EPSILON:
            need = _ceil(stats.projected * (1 + settings.scale_out_headroom))
            rule = (
                f"{level}; trend: {stats.projected:.2f} is {stats.projected / desired - 1:.0%} above {desired}"
                f" (more than {settings.scale_out_tolerance:.0%}): scale out to {min(need, limit)}"
                f" (+{settings.scale_out_headroom:.0%} headroom)"
            )
        if need > desired:
            if need > limit:
                notes.append(f"scale-out limited to {limit} per decision (needs {need})")
                need = limit
            return Proposal(need, rule, findings, tuple(notes), remembered)

        fit = _ceil(stats.high)
        high = f"mean + {settings.noise_sigmas:g} sigma = {stats.high:.2f}"
        if fit >= desired:
            return Proposal(desired, f"{level}; {high} needs {fit}: keep {desired}", findings, (), remembered)
        window_periods = round(settings.noise_window / PERIOD)
        wanted = math.ceil(MIN_WINDOW_SHARE * window_periods)
        if stats.periods < wanted:
            notes.append(f"only {stats.periods} of {window_periods} periods on record (scale-in needs {wanted})")
            return Proposal(
                desired, f"{level}; {high} fits in {fit}, waiting", findings, tuple(notes), remembered, "stabilizing"
            )
        settled = scale_in_wait_after_scale_out(state.last_scale_out_at, settings, now)
        if settled is not None:
            notes.append(settled)
            return Proposal(
                desired,
                f"{level}; {high} fits in {fit}, stabilizing",
                findings,
                tuple(notes),
                remembered,
                "stabilizing",
            )
        step = max(1, math.ceil((desired - fit) / 2))
        target = max(fit, desired - step)
        rule = f"{level}; {high} fits in {fit}: scale in to {target} (at most half of the {desired - fit} spare)"
        return Proposal(target, rule, findings, tuple(notes), remembered)
