"""The automatic GC against emulated AWS (moto, in-process), run by the checker on an injected clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lbcp.consistency.autogc import AutoGc
from lbcp.consistency.findings import ConsistencyReport, Finding
from lbcp.consistency.gc_policy import QUARANTINE_TAG, GcPolicy
from lbcp.consistency.store import ConsistencyStore
from lbcp.consistency.wiring import build_checker, build_sweeper
from lbcp.dal.repository import LoadBalancerRepository
from lbcp.dal.schema import create_table
from lbcp.entry.names import target_group_name
from lbcp.models.events import Event
from lbcp.models.resource import LoadBalancerRecord
from lbcp.service import initial_status
from lbcp.settings import Settings
from lbcp.validation import parse_spec
from lbcp_local.seed import example_spec, seed_account
from tests.conftest import REGION, TABLE
from tests.consistency.plant import Planted, plant_orphans, still_there

GHOST = "lb-0000000000000dead"
GHOST_TG = target_group_name(GHOST, 80)
# A Monday, 10:00 UTC: inside the window below.
MONDAY = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
POLICY = GcPolicy(
    auto=True,
    sightings=3,
    min_age_minutes=60,
    quarantine_hours=24,
    max_deletions_per_run=1,
    max_quarantines_per_run=2,
    windows=["Mon-Fri 09:00-17:00 UTC"],
)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Gc:
    ec2: Any
    elbv2: Any
    planted: Planted
    clock: Clock
    store: ConsistencyStore
    load_balancers: LoadBalancerRepository
    session: Any
    settings: Settings

    def run_at(self, when: datetime, policy: GcPolicy = POLICY) -> ConsistencyReport:
        self.clock.now = when
        settings = Settings(**{**self.settings.__dict__, "gc_policy": policy.to_env()})
        return build_checker(settings, self.session.client, clock=self.clock).run()

    def auto_gc(self, policy: GcPolicy = POLICY) -> AutoGc:
        return AutoGc(
            policy=policy,
            sweeper=build_sweeper(self.settings, self.session.client, clock=self.clock),
            store=self.store,
            load_balancers=self.load_balancers,
            clock=self.clock,
        )

    def tags(self, resource_type: str, resource_id: str) -> dict[str, str]:
        if resource_type == "target-group":
            listed = self.elbv2.describe_tags(ResourceArns=[resource_id])["TagDescriptions"][0]["Tags"]
        else:
            listed = self.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [resource_id]}])["Tags"]
        return {t["Key"]: t["Value"] for t in listed}

    def instance_state(self, instance_id: str) -> str:
        reservations = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        return str(reservations[0]["Instances"][0]["State"]["Name"])

    def quarantined(self) -> set[str]:
        return {r for t, r in self.planted.orphans.items() if QUARANTINE_TAG in self.tags(t, r)}

    def audit(self) -> list[tuple[str, str]]:
        return [(e.action, e.resource_type) for e in reversed(self.store.audit_log())]


@pytest.fixture
def gc(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gc]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_DEFAULT_REGION", REGION),
        ("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled"), ("POWERTOOLS_LOG_LEVEL", "WARNING"),
    ):  # fmt: skip
        monkeypatch.setenv(name, value)
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        ec2, elbv2, dynamodb = session.client("ec2"), session.client("elbv2"), session.client("dynamodb")
        account = seed_account(ec2, session.client("acm"), REGION)
        create_table(dynamodb, TABLE)
        planted = plant_orphans(
            ec2, elbv2, vpc_id=account.vpc_id, subnet_id=account.subnet_ids[0], image_id=account.image_id,
            ghost=GHOST,
        )  # fmt: skip
        yield Gc(
            ec2, elbv2, planted, Clock(MONDAY), ConsistencyStore(dynamodb, TABLE),
            LoadBalancerRepository(dynamodb, TABLE), session,
            Settings(table_name=TABLE, event_retention_days=30, idempotency_ttl_seconds=60),
        )  # fmt: skip


def minutes(n: int) -> timedelta:
    return timedelta(minutes=n)


def test_an_orphan_seen_fewer_than_n_times_or_younger_than_the_floor_is_not_touched(gc: Gc) -> None:
    gc.run_at(MONDAY)
    gc.run_at(MONDAY + minutes(15))
    report = gc.run_at(MONDAY + minutes(30))  # three sightings, but only 30 minutes old
    assert {f.sightings for f in report.findings} == {3}
    assert gc.quarantined() == set() and gc.audit() == []
    assert gc.instance_state(gc.planted.orphans["instance"]) == "running"


def test_after_n_sightings_and_the_age_floor_orphans_are_quarantined_within_the_cap(gc: Gc) -> None:
    gc.run_at(MONDAY)
    gc.run_at(MONDAY + minutes(30))
    gc.run_at(MONDAY + minutes(60))
    orphans = gc.planted.orphans
    assert gc.quarantined() == {orphans["instance"], orphans["target-group"]}  # two per run
    assert gc.instance_state(orphans["instance"]) == "stopped"
    assert gc.tags("instance", orphans["instance"])[QUARANTINE_TAG] == "2026-12-07T11:00:00Z"
    # One run's entries share its time: their order in the log is not defined.
    assert sorted(gc.audit()) == [("quarantined", "instance"), ("quarantined", "target-group")]
    events = gc.load_balancers.list_events(GHOST, 10, None).items
    assert sorted(e.reason for e in events) == ["OrphanQuarantined", "OrphanQuarantined"]
    gc.run_at(MONDAY + minutes(75))
    assert gc.quarantined() == {orphans[t] for t in ("instance", "target-group", "network-interface", "elastic-ip")}
    for kind, resource in gc.planted.lookalikes.items():  # without our product tag: never touched
        assert QUARANTINE_TAG not in gc.tags(kind, resource), kind
    assert gc.instance_state(gc.planted.lookalikes["instance"]) == "running"


def test_outside_the_windows_nothing_happens(gc: Gc) -> None:
    morning = POLICY.model_copy(update={"windows": ["Mon-Fri 09:00-10:45 UTC"]})
    gc.run_at(MONDAY, morning)
    gc.run_at(MONDAY + minutes(30), morning)
    gc.run_at(MONDAY + minutes(60), morning)
    gc.run_at(MONDAY + timedelta(days=5), morning)  # a Saturday
    assert gc.quarantined() == set() and gc.audit() == []
    assert gc.instance_state(gc.planted.orphans["instance"]) == "running"


def test_after_the_quarantine_period_it_is_deleted_one_per_run(gc: Gc) -> None:
    for offset in (0, 30, 60):
        gc.run_at(MONDAY + minutes(offset))
    orphans = gc.planted.orphans
    gc.run_at(MONDAY + minutes(60) + timedelta(hours=23, minutes=59))
    assert still_there(gc.ec2, gc.elbv2, "instance", orphans["instance"])
    tuesday = MONDAY + minutes(60) + timedelta(hours=24)
    gc.run_at(tuesday)
    assert not still_there(gc.ec2, gc.elbv2, "instance", orphans["instance"])
    assert still_there(gc.ec2, gc.elbv2, "target-group", orphans["target-group"])  # the cap: one per run
    gc.run_at(tuesday + minutes(15))
    assert not still_there(gc.ec2, gc.elbv2, "target-group", orphans["target-group"])
    deleted = [entry for entry in gc.audit() if entry[0] == "deleted"]
    assert deleted == [("deleted", "instance"), ("deleted", "target-group")]
    assert "OrphanSwept" in {e.reason for e in gc.load_balancers.list_events(GHOST, 50, None).items}
    for kind, resource in gc.planted.lookalikes.items():
        assert still_there(gc.ec2, gc.elbv2, kind, resource), kind


def test_removing_the_tag_releases_it_and_it_is_not_deleted(gc: Gc) -> None:
    for offset in (0, 30, 60):
        gc.run_at(MONDAY + minutes(offset))
    instance = gc.planted.orphans["instance"]
    gc.ec2.delete_tags(Resources=[instance], Tags=[{"Key": QUARANTINE_TAG}])
    gc.run_at(MONDAY + minutes(60) + timedelta(hours=24))
    assert still_there(gc.ec2, gc.elbv2, "instance", instance)
    assert ("released", "instance") in gc.audit()
    assert instance not in {q.resource_id for q in gc.store.quarantined()}


def test_a_claimed_or_untagged_resource_is_never_touched(gc: Gc) -> None:
    """The report is stale or forged; the live re-check just before each action refuses."""
    for offset in (0, 30, 60):
        gc.run_at(MONDAY + minutes(offset))
    stale = gc.store.last_report()
    assert stale is not None
    # The load balancer the owner tags name gets its record back (a restore, say).
    now = MONDAY
    spec = parse_spec(example_spec(seed_account_of(gc), name="gc-back"))
    record = LoadBalancerRecord(
        id=GHOST, generation=1, spec=spec, status=initial_status(spec), created_at=now, updated_at=now,
        desired_capacity=2,
    )  # fmt: skip
    gc.load_balancers.create(record, Event(time=now, type="Normal", reason="Created", message="test"))
    lookalike = gc.planted.lookalikes["instance"]
    forged = stale.model_copy(
        update={
            "findings": [
                *stale.findings,
                Finding(
                    resource_type="instance", resource_id=lookalike, load_balancer_id=GHOST, kind="orphan",
                    first_seen=MONDAY - timedelta(days=3), message="forged", sightings=50,
                ),
            ]
        }
    )  # fmt: skip
    gc.clock.now = MONDAY + minutes(60) + timedelta(hours=24)
    decision = gc.auto_gc(POLICY.model_copy(update={"max_deletions_per_run": 5})).run(forged)
    orphans = gc.planted.orphans
    assert {a.resource_id for a in decision.delete} == {orphans["instance"], orphans["target-group"]}
    assert lookalike in {a.resource_id for a in decision.quarantine}
    # The record claims its target group: refused, still there, still quarantined.
    assert still_there(gc.ec2, gc.elbv2, "target-group", orphans["target-group"])
    assert QUARANTINE_TAG in gc.tags("target-group", orphans["target-group"])
    # Not ours (no product tag): neither stopped nor tagged.
    assert gc.instance_state(lookalike) == "running" and QUARANTINE_TAG not in gc.tags("instance", lookalike)
    refusals = {e.resource_id: e.reason for e in gc.store.audit_log() if e.action == "refused"}
    assert refusals == {
        orphans["target-group"]: f"the record of load balancer {GHOST} exists and claims target group {GHOST_TG}",
        lookalike: f"instance {lookalike} does not carry our owner tags",
    }
    # An instance of a live record that no live LBVM record claims is an orphan by the sweeper's own rule.
    assert not still_there(gc.ec2, gc.elbv2, "instance", orphans["instance"])


def seed_account_of(gc: Gc) -> Any:
    return seed_account(gc.ec2, gc.session.client("acm"), REGION)


def test_a_tagged_orphan_missing_from_the_record_is_adopted_and_its_quarantine_counts_from_its_tag(gc: Gc) -> None:
    """A run that tagged an orphan and failed before saving (or a person's tag) leaves a quarantine nobody tracks."""
    eni = gc.planted.orphans["network-interface"]
    tagged_at = "2026-12-06T09:00:00Z"  # a day before the first run
    gc.ec2.create_tags(Resources=[eni], Tags=[{"Key": QUARANTINE_TAG, "Value": tagged_at}])
    first = gc.run_at(MONDAY)
    [finding] = [f for f in first.findings if f.resource_id == eni]
    assert finding.quarantined_at == datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    gc.run_at(MONDAY + minutes(30))
    assert eni not in {q.resource_id for q in gc.store.quarantined()}  # the tag does not skip the gates
    assert still_there(gc.ec2, gc.elbv2, "network-interface", eni)
    # Third sighting, an hour old: ripe. Its tag is over 24 hours old, so the adoption deletes it at once.
    gc.run_at(MONDAY + minutes(60))
    assert not still_there(gc.ec2, gc.elbv2, "network-interface", eni)
    assert ("deleted", "network-interface") in gc.audit()
    assert ("quarantined", "network-interface") not in gc.audit()  # never re-tagged: its own tag counted
    messages = [e.message for e in gc.load_balancers.list_events(GHOST, 50, None).items]
    assert any(eni in m and f"{QUARANTINE_TAG}={tagged_at}" in m for m in messages)


def test_a_recently_tagged_orphan_is_adopted_and_waits_out_the_rest_of_its_quarantine(gc: Gc) -> None:
    eni = gc.planted.orphans["network-interface"]
    gc.ec2.create_tags(Resources=[eni], Tags=[{"Key": QUARANTINE_TAG, "Value": "2026-12-07T10:30:00Z"}])
    for offset in (0, 30, 60):
        gc.run_at(MONDAY + minutes(offset))
    assert eni in {q.resource_id for q in gc.store.quarantined()}
    assert gc.tags("network-interface", eni)[QUARANTINE_TAG] == "2026-12-07T10:30:00Z"  # not re-tagged
    gc.run_at(datetime(2026, 12, 8, 10, 29, tzinfo=UTC))
    assert still_there(gc.ec2, gc.elbv2, "network-interface", eni)
    gc.run_at(datetime(2026, 12, 8, 10, 30, tzinfo=UTC))
    assert not still_there(gc.ec2, gc.elbv2, "network-interface", eni)
