"""The automatic GC's pure decision and its policy: table tests, time passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lbcp.consistency.findings import Finding, FindingKind
from lbcp.consistency.gc_policy import (
    GcPolicy,
    InvalidGcPolicy,
    Quarantined,
    Window,
    decide,
    parse_policy,
)
from lbcp.consistency.inventory import ResourceType

# A Wednesday, 10:00 UTC.
NOW = datetime(2026, 12, 9, 10, 0, tzinfo=UTC)
AUTO = GcPolicy(
    auto=True,
    sightings=3,
    min_age_minutes=60,
    quarantine_hours=24,
    max_deletions_per_run=2,
    max_quarantines_per_run=2,
    windows=["Mon-Fri 09:00-17:00 UTC"],
)


def orphan(
    resource_id: str,
    *,
    sightings: int = 3,
    age: timedelta = timedelta(hours=2),
    resource_type: ResourceType = "instance",
    kind: FindingKind = "orphan",
) -> Finding:
    return Finding(
        resource_type=resource_type,
        resource_id=resource_id,
        load_balancer_id="lb-gone",
        kind=kind,
        first_seen=NOW - age,
        message="no record",
        sightings=sightings,
    )


def held(
    resource_id: str,
    *,
    since: timedelta = timedelta(hours=25),
    tag: bool = True,
    exists: bool = True,
    resource_type: ResourceType = "instance",
) -> Quarantined:
    return Quarantined(
        resource_type=resource_type,
        resource_id=resource_id,
        load_balancer_id="lb-gone",
        quarantined_at=NOW - since,
        tag=NOW - since if tag else None,
        exists=exists,
    )


def ids(actions: list) -> list[str]:  # type: ignore[type-arg]
    return [a.resource_id for a in actions]


FOUR_AGES = [orphan(f"i-{n}", age=timedelta(hours=10 - n)) for n in range(4)]
THREE_DUE = ([orphan(f"i-{n}") for n in range(3)], [held(f"i-{n}") for n in range(3)])
DAY = timedelta(hours=23)


@pytest.mark.parametrize(
    ("case", "findings", "quarantined", "expected"),
    [
        ("seen fewer than N times", [orphan("i-1", sightings=2)], [], ([], [], [])),
        ("N sightings but younger than the age floor", [orphan("i-1", age=timedelta(minutes=59))], [], ([], [], [])),
        ("N sightings and past the age floor", [orphan("i-1")], [], (["i-1"], [], [])),
        ("only orphans", [orphan("i-1", kind="drift"), orphan("i-2", kind="leak")], [], ([], [], [])),
        ("DNS records carry no tag", [orphan("a.x/A/alias", resource_type="dns-record")], [], ([], [], [])),
        ("quarantines capped, oldest first", FOUR_AGES, [], (["i-0", "i-1"], [], [])),
        ("already quarantined, not yet due", [orphan("i-1")], [held("i-1", since=DAY)], ([], [], [])),
        ("quarantine period over", [orphan("i-1")], [held("i-1")], ([], ["i-1"], [])),
        ("deletions capped", *THREE_DUE, ([], ["i-0", "i-1"], [])),
        ("tag removed: released", [orphan("i-1")], [held("i-1", tag=False)], ([], [], ["i-1"])),
        ("claimed again: released", [], [held("i-1")], ([], [], ["i-1"])),
        ("gone: forgotten, nothing to do", [], [held("i-1", exists=False)], ([], [], [])),
    ],
)
def test_decide(
    case: str,
    findings: list[Finding],
    quarantined: list[Quarantined],
    expected: tuple[list[str], list[str], list[str]],
) -> None:
    decision = decide(findings, quarantined, AUTO, NOW)
    assert (ids(decision.quarantine), ids(decision.delete), ids(decision.release)) == expected


def test_gone_is_forgotten() -> None:
    assert decide([], [held("i-1", exists=False)], AUTO, NOW).forget == [("instance", "i-1")]


@pytest.mark.parametrize(
    ("policy", "now"),
    [
        (GcPolicy(), NOW),  # off by default
        (AUTO, datetime(2026, 12, 9, 8, 59, tzinfo=UTC)),  # before the window
        (AUTO, datetime(2026, 12, 9, 17, 0, tzinfo=UTC)),  # the end is excluded
        (AUTO, datetime(2026, 12, 12, 10, 0, tzinfo=UTC)),  # a Saturday
    ],
)
def test_nothing_happens_when_off_or_outside_the_windows(policy: GcPolicy, now: datetime) -> None:
    decision = decide([orphan("i-1", age=timedelta(days=3))], [held("i-2", tag=False)], policy, now)
    assert decision.actions == [] and decision.forget == []


@pytest.mark.parametrize(
    ("window", "now", "inside"),
    [
        ("Mon-Fri 09:00-17:00 UTC", datetime(2026, 12, 7, 9, 0, tzinfo=UTC), True),
        ("Mon-Fri 09:00-17:00 UTC", datetime(2026, 12, 13, 12, 0, tzinfo=UTC), False),
        ("Sat 02:00-04:00 UTC", datetime(2026, 12, 12, 3, 30, tzinfo=UTC), True),
        ("Fri-Mon 00:00-24:00 UTC", datetime(2026, 12, 13, 23, 59, tzinfo=UTC), True),
        ("Fri-Mon 00:00-24:00 UTC", datetime(2026, 12, 9, 12, 0, tzinfo=UTC), False),
        ("Mon-Sun 00:00-24:00 UTC", datetime(2026, 12, 9, 12, 0, tzinfo=UTC), True),
    ],
)
def test_windows(window: str, now: datetime, inside: bool) -> None:
    assert Window.parse(window).contains(now) is inside


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"auto": True}, "needs at least one window"),
        ({"auto": False, "windows": ["weekdays 9-5"]}, "is not like 'Mon-Fri 09:00-17:00 UTC'"),
        ({"windows": ["Mon-Fri 17:00-09:00 UTC"]}, "the end must be after the start"),
        ({"windows": ["Mon-Fri 09:00-25:00 UTC"]}, "times are HH:MM"),
        ({"sightings": 0}, "sightings"),
        ({"maxDeletionPerRun": 3}, "maxDeletionPerRun: Extra inputs are not permitted"),
        ('{"auto": "perhaps"}', "auto"),
    ],
)
def test_invalid_policies_say_what_is_wrong(raw: object, problem: str) -> None:
    with pytest.raises(InvalidGcPolicy, match="invalid lbcp:gc") as error:
        parse_policy(raw)
    assert problem in str(error.value)


def test_policy_round_trips_through_the_environment() -> None:
    parsed = parse_policy(
        {
            "auto": True,
            "sightings": 4,
            "minAgeMinutes": 30,
            "quarantineHours": 12,
            "maxDeletionsPerRun": 1,
            "windows": ["Mon-Fri 09:00-17:00 UTC"],
        }
    )
    assert GcPolicy.from_env(parsed.to_env()) == parsed
    assert parsed.max_quarantines_per_run == 5 and parsed.min_age == timedelta(minutes=30)
    assert GcPolicy.from_env(None) == GcPolicy() and GcPolicy().auto is False


@pytest.mark.parametrize(
    ("finding", "adopted", "deleted"),
    [
        # Tagged a day ago by a run that failed before saving: adopted, and due now.
        (orphan("i-t", sightings=3).model_copy(update={"quarantined_at": NOW - timedelta(hours=25)}), True, True),
        # Tagged an hour ago: adopted, waits out the rest of its quarantine (never re-tagged).
        (orphan("i-t", sightings=3).model_copy(update={"quarantined_at": NOW - timedelta(hours=1)}), True, False),
        # A tag does not skip the gates: too few sightings, nothing at all.
        (orphan("i-t", sightings=1).model_copy(update={"quarantined_at": NOW - timedelta(days=9)}), False, False),
        # Not an orphan (drift carries no quarantine): never adopted.
        (
            orphan("i-t", kind="drift").model_copy(update={"quarantined_at": NOW - timedelta(days=9)}),
            False,
            False,
        ),
    ],
)
def test_a_tagged_orphan_nobody_remembers_is_adopted_only_past_the_gates(
    finding: Finding, adopted: bool, deleted: bool
) -> None:
    decision = decide([finding], [], AUTO, NOW)
    assert [q.resource_id for q in decision.adopt] == (["i-t"] if adopted else [])
    assert [a.resource_id for a in decision.delete] == (["i-t"] if deleted else [])
    assert decision.quarantine == []  # a tagged resource is never tagged again (its time would move)
    if adopted:
        assert decision.adopt[0].tag == decision.adopt[0].quarantined_at == finding.quarantined_at
