"""Target tracking: size the fleet in proportion to load, fast out, slow in.

The Kubernetes HPA's algorithm, applied per metric with a per-LBVM target:
``need = ceil(serving * value / target)``, where ``serving`` is the number of
LBVMs whose load the per-subnet averages describe (LBVMs still launching add
no load to the average, so they must not multiply it either; this is what
keeps a scale-out from being counted twice while it launches). No change
while ``value / target`` is within the tolerance; the metric needing most
wins. Scale-out is immediate, at most doubling (or +4) per decision. Scale-in
goes to the highest need seen over the stabilization window, not within the
cooldown of the last change, and not before a full window has passed since a
scale-out settled (cooldown + window after it).

Per-zone evaluation sizes each subnet for its own load and keeps the zones
equal: ``zones * max(need per subnet)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

from lbcp.models.scaling import Recommendation
from lbcp.scaling.explain import cooldown_note, duration, last_action_at, number
from lbcp.scaling.model import Current, Finding, Proposal, Reading, Vote
from lbcp.scaling.policies.guards import scale_in_wait_after_scale_out
from lbcp.scaling.readings import serving_for
from lbcp.scaling.settings import MetricSettings, PolicySettings

NAME = "target-tracking"
# Floating-point slack so that exactly-on-target loads do not round up to one more LBVM.
_EPSILON = 1e-9


def _ceil(value: float) -> int:
    return math.ceil(value - _EPSILON)


def _vote(need: int, desired: int) -> Vote:
    return 1 if need > desired else (-1 if need < desired else 0)


def metric_need(
    reading: Reading, metric: MetricSettings, current: Current, settings: PolicySettings
) -> tuple[Finding, int | None]:
    """How many LBVMs this metric needs to be at its target (None: it cannot say)."""
    if metric.target is None or metric.weight == 0:
        return Finding(metric.name, reading.value, None, 0, "abstains"), None
    target = metric.target
    zones = len(current.subnets) or 1
    serving = serving_for(reading, current)
    if settings.zone_evaluation == "per-zone":
        sized = [
            (value * metric.weight / target, _ceil(value * metric.weight * serving[subnet] / target), subnet)
            for subnet, value in reading.by_subnet.items()
            if serving[subnet] > 0
        ]
        if not sized:
            return Finding(metric.name, None, target, 0, "missing"), None
        ratio, need_here, where = max(sized, key=lambda item: (item[1], item[0]))
        need = zones * need_here
        value = reading.by_subnet[where]
        subnet: str | None = where
    else:
        behind = sum(serving.values())
        if reading.value is None or behind == 0:
            return Finding(metric.name, reading.value, target, 0, "missing"), None
        # The load the fleet carried, in metric units: each subnet's average times its LBVMs then.
        load = sum(reading.by_subnet[s] * serving[s] for s in reading.by_subnet)
        value = load / behind
        ratio = value * metric.weight / target
        need = _ceil(load * metric.weight / target)
        subnet = None
    if abs(ratio - 1) <= settings.tolerance + _EPSILON:
        detail = f"x{ratio:.2f} of target, within ±{settings.tolerance:.0%}"
        return Finding(metric.name, value, target, 0, f"vs target {number(metric.name, target)}", subnet, detail), (
            current.desired
        )
    weighted = f", weight {metric.weight:g}" if metric.weight != 1 else ""
    detail = f"x{ratio:.2f}{weighted}: needs {need}"
    comparison = f"vs target {number(metric.name, target)}"
    return Finding(metric.name, value, target, _vote(need, current.desired), comparison, subnet, detail), need


class TargetTrackingPolicy:
    name = NAME

    def propose(
        self, readings: Mapping[str, Reading], current: Current, settings: PolicySettings, now: datetime
    ) -> Proposal:
        state = current.state
        scored = [metric_need(readings[m.name], m, current, settings) for m in settings.metrics]
        findings = tuple(finding for finding, _ in scored)
        needs = [need for _, need in scored if need is not None]
        notes: list[str] = []
        if needs:
            need = max(needs)
            rule = f"the highest need wins: {need}"
        else:
            need = current.desired
            rule = "no metric to size the fleet from: no change"
        limit = max(2 * current.desired, current.desired + 4)
        if need > limit:
            notes.append(f"scale-out limited to {limit} per decision (needs {need})")
            need = limit
        window = settings.scale_in_stabilization
        recent = [r for r in state.recommendations if now - r.time < window] if window.total_seconds() > 0 else []
        recommendations = [*recent, Recommendation(time=now, desired=need)] if window.total_seconds() > 0 else []
        remembered = state.model_copy(update={"recommendations": recommendations})
        if need > current.desired:
            return Proposal(need, f"{rule}: scale out now", findings, tuple(notes), remembered)
        stabilized = max((r.desired for r in recommendations), default=need)
        if stabilized >= current.desired:
            if need < current.desired:
                notes.append(f"needs {need}, but needed {stabilized} within the last {duration(window)}")
                return Proposal(
                    current.desired, f"{rule}, stabilizing", findings, tuple(notes), remembered, "stabilizing"
                )
            return Proposal(current.desired, rule, findings, tuple(notes), remembered)
        last = last_action_at(state.last_scale_out_at, state.last_scale_in_at)
        notes.append(cooldown_note(last, settings.cooldown, now))
        if last is not None and now - last < settings.cooldown:
            return Proposal(
                current.desired, f"{rule}, but cooling down", findings, tuple(notes), remembered, "cooldown"
            )
        settled = scale_in_wait_after_scale_out(state.last_scale_out_at, settings, now)
        if settled is not None:
            notes.append(settled)
            return Proposal(current.desired, f"{rule}, stabilizing", findings, tuple(notes), remembered, "stabilizing")
        stabilized_rule = f"{rule}; highest need over the last {duration(window)} is {stabilized}: scale in"
        return Proposal(stabilized, stabilized_rule, findings, tuple(notes), remembered)
