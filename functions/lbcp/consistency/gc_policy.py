"""Opt-in automatic garbage collection: the policy (``cdk.json`` context ``lbcp:gc``) and the pure decision.

Mark and sweep. An orphan seen in ``sightings`` consecutive runs and older
than ``minAgeMinutes`` (from its ``firstSeen``) is **quarantined**: tagged
``lbcp:quarantined-at=<iso time>`` (an instance is stopped as well). A
quarantined resource still tagged and still an orphan ``quarantineHours``
later is **deleted** (through the sweeper, which re-checks it live). One whose
tag was removed, or that something claims again, is **released**. Nothing
happens outside the ``windows``; at most ``maxQuarantinesPerRun`` quarantines
and ``maxDeletionsPerRun`` deletions per run.

``decide`` is pure: the report's findings, what we quarantined with its live
tag, the policy and ``now`` in, the actions out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Final, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from lbcp.consistency.findings import Finding
from lbcp.consistency.inventory import ResourceType
from lbcp.models.status import StatusModel

QUARANTINE_TAG: Final = "lbcp:quarantined-at"
# DNS records and executions carry no tags: they cannot be quarantined, so they are never collected
# automatically. In dependency order (instances first: their interfaces are freed when they go; NLBs
# before their target groups; security groups after the interfaces that use them).
QUARANTINABLE: Final[tuple[ResourceType, ...]] = (
    "instance",
    "nlb",
    "target-group",
    "network-interface",
    "elastic-ip",
    "security-group",
)
DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WINDOW = re.compile(
    r"^(?P<first>[A-Z][a-z]{2})(?:-(?P<last>[A-Z][a-z]{2}))? (?P<start>\d\d:\d\d)-(?P<end>\d\d:\d\d) UTC$"
)


def quarantine_time(value: str | None, now: datetime) -> datetime | None:
    """The time a ``lbcp:quarantined-at`` tag says; a hand-edited one that is no time counts from ``now``."""
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return now
    return at if at.utcoffset() is not None else at.replace(tzinfo=UTC)


class Window(StatusModel):
    """``Mon-Fri 09:00-17:00 UTC`` (or one day, ``Sat 02:00-04:00 UTC``); ``24:00`` ends at midnight."""

    days: frozenset[int]
    start: time
    end: time | None  # None: midnight at the end of the day

    @staticmethod
    def parse(text: str) -> Window:
        match = _WINDOW.match(text)
        if match is None:
            raise ValueError(f"window {text!r} is not like 'Mon-Fri 09:00-17:00 UTC'")
        first, last = match["first"], match["last"] or match["first"]
        if first not in DAYS or last not in DAYS:
            raise ValueError(f"window {text!r}: days are {', '.join(DAYS)}")
        a, b = DAYS.index(first), DAYS.index(last)
        days = frozenset(range(a, b + 1)) if a <= b else frozenset([*range(a, 7), *range(0, b + 1)])
        try:
            start = time.fromisoformat(match["start"])
            end = None if match["end"] == "24:00" else time.fromisoformat(match["end"])
        except ValueError:
            raise ValueError(f"window {text!r}: times are HH:MM from 00:00 to 24:00") from None
        if end is not None and end <= start:
            raise ValueError(f"window {text!r}: the end must be after the start (split a window across midnight)")
        return Window(days=days, start=start, end=end)

    def contains(self, now: datetime) -> bool:
        if now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        utc = now.astimezone(UTC)
        weekday, moment = utc.weekday(), utc.time()
        return weekday in self.days and self.start <= moment and (self.end is None or moment < self.end)


class GcPolicy(StatusModel):
    """The ``lbcp:gc`` context of ``cdk.json``; off (manual sweeps only) unless ``auto`` is true."""

    auto: bool = False
    sightings: int = Field(default=3, ge=1, le=1000, description="Consecutive checker runs that saw the orphan.")
    min_age_minutes: int = Field(default=60, ge=0, description="Minutes since its firstSeen before a quarantine.")
    quarantine_hours: float = Field(default=24, gt=0, description="Hours quarantined before the deletion.")
    max_deletions_per_run: int = Field(default=5, ge=0, le=100)
    max_quarantines_per_run: int = Field(default=5, ge=0, le=100)
    windows: list[str] = Field(
        default_factory=list, description="When it may act, e.g. 'Mon-Fri 09:00-17:00 UTC'; required with auto."
    )

    @field_validator("windows")
    @classmethod
    def _parse_windows(cls, value: list[str]) -> list[str]:
        for text in value:
            Window.parse(text)
        return value

    @model_validator(mode="after")
    def _windows_with_auto(self) -> GcPolicy:
        if self.auto and not self.windows:
            raise ValueError("auto GC needs at least one window (e.g. 'Mon-Sun 00:00-24:00 UTC' for any time)")
        return self

    @property
    def min_age(self) -> timedelta:
        return timedelta(minutes=self.min_age_minutes)

    @property
    def quarantine(self) -> timedelta:
        return timedelta(hours=self.quarantine_hours)

    def open_at(self, now: datetime) -> bool:
        return any(Window.parse(text).contains(now) for text in self.windows)

    def to_env(self) -> str:
        return json.dumps(self.model_dump(mode="json", by_alias=True), separators=(",", ":"))

    @staticmethod
    def from_env(value: str | None) -> GcPolicy:
        return GcPolicy.model_validate_json(value) if value else GcPolicy()


class InvalidGcPolicy(ValueError):
    pass


def parse_policy(raw: object, *, source: str = "lbcp:gc") -> GcPolicy:
    """The policy from a context value (a dict, a JSON string or None), or ``InvalidGcPolicy`` saying what is wrong."""
    if raw is None:
        return GcPolicy()
    try:
        if isinstance(raw, str):
            return GcPolicy.model_validate_json(raw)
        return GcPolicy.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors())
        raise InvalidGcPolicy(f"invalid {source}: {problems}") from None


class Quarantined(StatusModel):
    """A resource the automatic GC quarantined (remembered between runs), with its live quarantine tag."""

    resource_type: ResourceType
    resource_id: str
    load_balancer_id: str | None = None
    quarantined_at: datetime = Field(description="When we tagged it.")
    tag: datetime | None = Field(default=None, description="The live tag's time; null: the tag is gone.")
    exists: bool = True

    @property
    def key(self) -> tuple[str, str]:
        return (self.resource_type, self.resource_id)


GcVerb = Literal["quarantine", "delete", "release"]


class GcAction(StatusModel):
    verb: GcVerb
    resource_type: ResourceType
    resource_id: str
    load_balancer_id: str | None = None
    reason: str


class GcDecision(StatusModel):
    quarantine: list[GcAction] = Field(default_factory=list)
    delete: list[GcAction] = Field(default_factory=list)
    release: list[GcAction] = Field(default_factory=list)
    forget: list[tuple[str, str]] = Field(default_factory=list, description="Quarantined resources that are gone.")
    adopt: list[Quarantined] = Field(
        default_factory=list,
        description="Orphans found carrying the quarantine tag that were not remembered (a run that tagged them "
        "and failed before saving, or a person's tag): remembered from now on, counted from their tag.",
    )

    @property
    def actions(self) -> list[GcAction]:
        """In the order to carry them out: releases, deletions (in sweep order), quarantines."""
        return [*self.release, *self.delete, *self.quarantine]


def _order(resource_type: ResourceType) -> int:
    return QUARANTINABLE.index(resource_type) if resource_type in QUARANTINABLE else len(QUARANTINABLE)


def decide(
    findings: Sequence[Finding], quarantined: Sequence[Quarantined], policy: GcPolicy, now: datetime
) -> GcDecision:
    """What the automatic GC does this run (pure)."""
    if not policy.auto or not policy.open_at(now):
        return GcDecision()
    orphans = {(f.resource_type, f.resource_id): f for f in findings if f.kind == "orphan"}
    remembered = {q.key for q in quarantined}
    # A tagged orphan we do not remember passes the same gates as a quarantine before it is adopted: a tag
    # alone never shortens the sightings and the age a deletion needs.
    adopt = [
        Quarantined(
            resource_type=f.resource_type,
            resource_id=f.resource_id,
            load_balancer_id=f.load_balancer_id,
            quarantined_at=f.quarantined_at,
            tag=f.quarantined_at,
        )
        for key, f in sorted(orphans.items())
        if f.quarantined_at is not None and key not in remembered and _ripe(f, policy, now)
    ]
    quarantined = [*quarantined, *adopt]
    remembered |= {q.key for q in adopt}
    forget: list[tuple[str, str]] = []
    release: list[GcAction] = []
    due: list[GcAction] = []
    for q in sorted(quarantined, key=lambda q: (_order(q.resource_type), q.resource_id)):
        if not q.exists:
            forget.append(q.key)
        elif q.tag is None:
            release.append(_action("release", q, f"its {QUARANTINE_TAG} tag was removed"))
        elif q.key not in orphans:
            release.append(_action("release", q, "it is no longer an orphan: something claims it"))
        elif now - q.tag >= policy.quarantine:
            due.append(_action("delete", q, f"quarantined since {q.tag.isoformat()} and still unclaimed"))
    ready = [
        f for key, f in orphans.items() if key not in remembered and f.quarantined_at is None and _ripe(f, policy, now)
    ]
    ready.sort(key=lambda f: (f.first_seen, _order(f.resource_type), f.resource_id))
    return GcDecision(
        quarantine=[
            GcAction(
                verb="quarantine",
                resource_type=f.resource_type,
                resource_id=f.resource_id,
                load_balancer_id=f.load_balancer_id,
                reason=f"an orphan in {f.sightings} consecutive runs since {f.first_seen.isoformat()}: {f.message}",
            )
            for f in ready[: policy.max_quarantines_per_run]
        ],
        delete=due[: policy.max_deletions_per_run],
        release=release,
        forget=forget,
        adopt=adopt,
    )


def _ripe(finding: Finding, policy: GcPolicy, now: datetime) -> bool:
    return (
        finding.resource_type in QUARANTINABLE
        and finding.sightings >= policy.sightings
        and now - finding.first_seen >= policy.min_age
    )


def _action(verb: GcVerb, q: Quarantined, reason: str) -> GcAction:
    return GcAction(
        verb=verb, resource_type=q.resource_type, resource_id=q.resource_id, load_balancer_id=q.load_balancer_id,
        reason=reason,
    )  # fmt: skip
