"""The seed policy (DESIGN 2.5), exactly.

Each metric votes +1 above its scale-out threshold, -1 below its scale-in
threshold, 0 in the band. Any +1 adds one LBVM; all -1 removes one; anything
else changes nothing. After any change, nothing changes for the cooldown
(10 minutes by default). A missing metric does not vote, so it can never make
"all -1" true: missing data never scales in.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from lbcp.scaling.explain import cooldown_note, last_action_at
from lbcp.scaling.model import Current, Finding, Proposal, Reading, Vote
from lbcp.scaling.settings import MetricSettings, PolicySettings

NAME = "vote"


def metric_vote(reading: Reading, metric: MetricSettings, per_zone: bool) -> Finding:
    """One metric's vote, aggregated over subnets or (per-zone) by its hottest and coldest subnets."""
    if metric.weight == 0:
        return Finding(metric.name, reading.value, None, 0, "abstains")
    if not reading.by_subnet:
        return Finding(metric.name, None, None, 0, "missing")
    if per_zone:
        hot_subnet, hot = max(reading.by_subnet.items(), key=lambda item: item[1])
        if hot > metric.scale_out_above:
            return Finding(metric.name, hot, metric.scale_out_above, 1, ">", hot_subnet)
        # Scale in only if every subnet is cold, so it is judged by its warmest.
        if reading.complete and hot < metric.scale_in_below:
            return Finding(metric.name, hot, metric.scale_in_below, -1, "<", hot_subnet, "warmest subnet")
        return Finding(metric.name, hot, None, 0, "in band", hot_subnet)
    value = reading.value
    assert value is not None
    if value > metric.scale_out_above:
        return Finding(metric.name, value, metric.scale_out_above, 1, ">")
    if value < metric.scale_in_below:
        return Finding(metric.name, value, metric.scale_in_below, -1, "<")
    return Finding(metric.name, value, None, 0, "in band")


def combine(findings: tuple[Finding, ...]) -> tuple[Vote, str]:
    votes = [f.vote for f in findings if f.comparison != "abstains"]
    if any(vote == 1 for vote in votes):
        return 1, "any +1 wins"
    if votes and all(vote == -1 for vote in votes):
        return -1, "all -1: remove one"
    return 0, "no +1 and not all -1: no change"


class VotePolicy:
    name = NAME

    def propose(
        self, readings: Mapping[str, Reading], current: Current, settings: PolicySettings, now: datetime
    ) -> Proposal:
        per_zone = settings.zone_evaluation == "per-zone"
        findings = tuple(metric_vote(readings[m.name], m, per_zone) for m in settings.metrics)
        direction, rule = combine(findings)
        state = current.state
        last = last_action_at(state.last_scale_out_at, state.last_scale_in_at)
        note = cooldown_note(last, settings.cooldown, now)
        if direction != 0 and last is not None and now - last < settings.cooldown:
            return Proposal(current.desired, f"{rule}, but cooling down", findings, (note,), hold="cooldown")
        return Proposal(current.desired + direction, rule, findings, (note,))
