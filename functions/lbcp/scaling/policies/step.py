"""Step scaling: the further a metric is past its scale-out threshold, the more LBVMs one decision adds.

Scale-out: each metric's breach is how far its (weighted) value is past
``scaleOutAbove``, in percent of it; the largest step it reaches gives the
LBVMs to add, and the metric asking for most wins. While LBVMs from the last
scale-out are still launching (and its cooldown has not passed), no further
scale-out: their capacity is not in the metrics yet, and counting the same
breach twice overshoots. Scale-in is the vote's: every metric below its
scale-in threshold removes one, after the cooldown.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from lbcp.scaling.explain import cooldown_note, last_action_at
from lbcp.scaling.model import Current, Finding, Proposal, Reading
from lbcp.scaling.policies.vote import metric_vote
from lbcp.scaling.settings import MetricSettings, PolicySettings, Step

NAME = "step"


def step_for(breach_percent: float, steps: tuple[Step, ...]) -> int:
    """LBVMs to add for a breach (0 when below the first step)."""
    reached = [step.add for step in steps if breach_percent >= step.above_by_percent]
    return max(reached, default=0)


def _scale_out_finding(reading: Reading, metric: MetricSettings, settings: PolicySettings) -> tuple[Finding, int]:
    per_zone = settings.zone_evaluation == "per-zone"
    finding = metric_vote(reading, metric, per_zone)
    if finding.vote != 1 or finding.value is None:
        return finding, 0
    weighted = finding.value * metric.weight
    breach = (weighted - metric.scale_out_above) / metric.scale_out_above * 100
    if breach <= 0:  # the weight kept it under the threshold
        detail = f"weight {metric.weight:g}: counts as {weighted:.1f}"
        return Finding(metric.name, finding.value, None, 0, "in band", finding.subnet, detail), 0
    add = step_for(breach, settings.steps)
    detail = f"{breach:.0f}% past, step +{add}"
    return Finding(metric.name, finding.value, metric.scale_out_above, 1, ">", finding.subnet, detail), add


class StepPolicy:
    name = NAME

    def propose(
        self, readings: Mapping[str, Reading], current: Current, settings: PolicySettings, now: datetime
    ) -> Proposal:
        state = current.state
        scored = [_scale_out_finding(readings[m.name], m, settings) for m in settings.metrics]
        findings = tuple(finding for finding, _ in scored)
        add = max((n for _, n in scored), default=0)
        if add > 0:
            since_out = None if state.last_scale_out_at is None else now - state.last_scale_out_at
            warming = current.serving_total is None or current.serving_total < current.desired
            note = cooldown_note(state.last_scale_out_at, settings.cooldown, now)
            if since_out is not None and since_out < settings.cooldown and warming:
                return Proposal(
                    current.desired,
                    f"breach asks +{add}, but the last scale-out is still launching",
                    findings,
                    (note,),
                    hold="warming-up",
                )
            return Proposal(current.desired + add, f"largest step wins: +{add}", findings, (note,))
        votes = [f.vote for f in findings if f.comparison != "abstains"]
        if votes and all(vote == -1 for vote in votes):
            last = last_action_at(state.last_scale_out_at, state.last_scale_in_at)
            note = cooldown_note(last, settings.cooldown, now)
            if last is not None and now - last < settings.cooldown:
                return Proposal(current.desired, "all -1, but cooling down", findings, (note,), hold="cooldown")
            return Proposal(current.desired - 1, "all -1: remove one", findings, (note,))
        return Proposal(current.desired, "no breach and not all -1: no change", findings)
