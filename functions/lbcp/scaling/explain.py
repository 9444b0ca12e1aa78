"""Words for decisions: each metric's value, threshold and vote, the rule, the guards (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta

from lbcp.scaling.model import Finding

PERCENT_METRICS = frozenset({"cpu", "memory"})


def number(metric: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.0f}" if abs(value - round(value)) < 0.05 or abs(value) >= 100 else f"{value:.1f}"
    return text + ("%" if metric in PERCENT_METRICS else "")


def vote_text(vote: int) -> str:
    return f"{vote:+d}" if vote else "0"


def finding_text(finding: Finding) -> str:
    where = f" in {finding.subnet}" if finding.subnet else ""
    if finding.comparison == "missing":
        return f"{finding.metric} missing{finding.detail and ' ' + finding.detail}: no vote"
    if finding.comparison == "abstains":
        return f"{finding.metric} {number(finding.metric, finding.value)} abstains (weight 0)"
    if finding.comparison in (">", "<"):
        core = (
            f"{finding.metric} {number(finding.metric, finding.value)} {finding.comparison} "
            f"{number(finding.metric, finding.threshold)}{where}"
        )
    elif finding.comparison == "in band":
        core = f"{finding.metric} {number(finding.metric, finding.value)}{where} in band"
    else:
        core = f"{finding.metric} {number(finding.metric, finding.value)}{where} {finding.comparison}"
    detail = f" ({finding.detail})" if finding.detail else ""
    return f"{core}{detail} voted {vote_text(finding.vote)}"


def duration(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds // 60}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def cooldown_note(last_action: datetime | None, cooldown: timedelta, now: datetime) -> str:
    if last_action is None or cooldown <= timedelta(0):
        return "cooldown: none active"
    elapsed = now - last_action
    if elapsed >= cooldown:
        return f"cooldown: {duration(cooldown)} over (last action {duration(elapsed)} ago)"
    return f"cooldown: {duration(cooldown - elapsed)} left of {duration(cooldown)}"


def last_action_at(last_out: datetime | None, last_in: datetime | None) -> datetime | None:
    moments = [moment for moment in (last_out, last_in) if moment is not None]
    return max(moments) if moments else None
