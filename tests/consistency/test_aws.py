"""The checker and the sweeper against emulated AWS (moto, in-process): listing, report, sweep, audit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lbcp.consistency.run import ConsistencyChecker
from lbcp.consistency.store import ConsistencyStore
from lbcp.consistency.sweep import Sweeper, candidates
from lbcp.consistency.wiring import build_checker, build_sweeper
from lbcp.dal.repository import LoadBalancerRepository
from lbcp.dal.schema import create_table
from lbcp.entry.adapter import EntryAdapter
from lbcp.models.events import Event
from lbcp.models.metrics import METRIC_CONSISTENCY_FINDINGS, NAMESPACE
from lbcp.models.resource import LoadBalancerRecord
from lbcp.service import initial_status
from lbcp.settings import Settings
from lbcp.validation import parse_spec
from lbcp_local.seed import example_spec, seed_account
from tests.conftest import REGION, TABLE, Cloud
from tests.consistency.plant import Planted, add_ssh_rule, plant_orphans, still_there

GHOST = "lb-0000000000000dead"


@dataclass
class Setup:
    cloud: Cloud
    ec2: Any
    elbv2: Any
    live: LoadBalancerRecord
    group_id: str
    planted: Planted
    checker: ConsistencyChecker
    sweeper: Sweeper
    store: ConsistencyStore


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    """A fresh emulated account per test: planted resources must not leak into the next test's report."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_DEFAULT_REGION", REGION),
        ("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled"), ("POWERTOOLS_LOG_LEVEL", "WARNING"),
    ):  # fmt: skip
        monkeypatch.setenv(name, value)
    with mock_aws():
        ec2, acm = boto3.client("ec2", region_name=REGION), boto3.client("acm", region_name=REGION)
        account = seed_account(ec2, acm, REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_table(dynamodb, TABLE)
        yield Cloud(dynamodb, ec2, acm, account, TABLE)


@pytest.fixture
def setup(cloud: Cloud) -> Iterator[Setup]:
    session = boto3.session.Session(region_name=REGION)
    ec2, elbv2 = session.client("ec2"), session.client("elbv2")
    now = datetime.now(UTC) - timedelta(hours=1)
    spec = parse_spec(example_spec(cloud.account, name="gc-live"))
    live = LoadBalancerRecord(
        id="lb-00000000000000001", generation=1, spec=spec, status=initial_status(spec),
        created_at=now, updated_at=now, desired_capacity=2,
    )  # fmt: skip
    repository = LoadBalancerRepository(cloud.dynamodb, cloud.table)
    repository.create(live, Event(time=now, type="Normal", reason="Created", message="test"))
    entry = EntryAdapter(ec2=ec2, elbv2=elbv2, route53=session.client("route53"), hosted_zone_id=None, dns_domain=None)
    view = entry.ensure_entry(spec, live.id)
    assert view.security_group_id is not None
    planted = plant_orphans(
        ec2, elbv2, vpc_id=cloud.account.vpc_id, subnet_id=cloud.account.subnet_ids[0],
        image_id=cloud.account.image_id, ghost=GHOST,
    )  # fmt: skip
    settings = Settings(table_name=cloud.table, event_retention_days=30, idempotency_ttl_seconds=60)
    yield Setup(
        cloud, ec2, elbv2, live, view.security_group_id, planted,
        build_checker(settings, session.client), build_sweeper(settings, session.client),
        ConsistencyStore(cloud.dynamodb, cloud.table),
    )  # fmt: skip


def found(setup: Setup) -> set[tuple[str, str, str]]:
    report = setup.checker.run()
    return {(f.kind, f.resource_type, f.resource_id) for f in report.findings}


def test_the_checker_reports_exactly_the_planted_orphans_and_drift(setup: Setup) -> None:
    add_ssh_rule(setup.ec2, setup.group_id)
    expected = {("orphan", kind, resource) for kind, resource in setup.planted.orphans.items()}
    expected.add(("drift", "security-group-rule", f"{setup.group_id}:tcp/22:0.0.0.0/0"))
    assert found(setup) == expected
    report = setup.store.last_report()
    assert report is not None and report.counts == {"orphan": 5, "drift": 1, "leak": 0, "stuck": 0}
    # A fixed number of listings, whatever the number of load balancers (the bench shows the growth).
    assert 0 < report.aws_calls <= 15
    # The live load balancer hears about its drift, once.
    events = LoadBalancerRepository(setup.cloud.dynamodb, setup.cloud.table).list_events(setup.live.id, 10, None)
    assert [e.reason for e in events.items if e.reason == "ConsistencyFinding"] == ["ConsistencyFinding"]
    assert "tcp/22 0.0.0.0/0" in events.items[0].message
    again = setup.checker.run()
    assert {f.sightings for f in again.findings} == {2}
    events = LoadBalancerRepository(setup.cloud.dynamodb, setup.cloud.table).list_events(setup.live.id, 10, None)
    assert [e.reason for e in events.items].count("ConsistencyFinding") == 1


def test_the_metrics_carry_one_series_per_kind(setup: Setup) -> None:
    setup.checker.run()
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    listed = cloudwatch.list_metrics(Namespace=NAMESPACE, MetricName=METRIC_CONSISTENCY_FINDINGS)["Metrics"]
    assert {d["Value"] for m in listed for d in m["Dimensions"]} == {"orphan", "drift", "leak", "stuck"}


def test_sweeping_deletes_the_orphans_one_by_one_and_leaves_the_rest(setup: Setup) -> None:
    report = setup.checker.run()
    plan = candidates(report.findings)
    assert [c.resource_type for c in plan] == [
        "instance", "target-group", "network-interface", "elastic-ip", "security-group",
    ]  # fmt: skip
    for candidate in plan:
        result = setup.sweeper.sweep(candidate.resource_type, candidate.resource_id, actor="test")
        assert result.outcome == "deleted", result
    for kind, resource in setup.planted.orphans.items():
        assert not still_there(setup.ec2, setup.elbv2, kind, resource), kind
    for kind, resource in setup.planted.lookalikes.items():
        assert still_there(setup.ec2, setup.elbv2, kind, resource), kind
    assert still_there(setup.ec2, setup.elbv2, "security-group", setup.group_id)
    audit = setup.store.audit_log()
    assert [(e.action, e.resource_type) for e in reversed(audit)] == [("deleted", c.resource_type) for c in plan]
    assert found(setup) == set()


def test_the_sweeper_refuses_what_is_not_ours_or_is_claimed(setup: Setup) -> None:
    lookalike = setup.sweeper.sweep("security-group", setup.planted.lookalikes["security-group"], actor="test")
    assert (lookalike.outcome, lookalike.reason) == (
        "refused",
        f"security group {setup.planted.lookalikes['security-group']} does not carry our owner tags",
    )
    claimed = setup.sweeper.sweep("security-group", setup.group_id, actor="test")
    assert claimed.outcome == "refused" and "exists and claims" in claimed.reason
    untagged = setup.sweeper.sweep("instance", setup.planted.lookalikes["instance"], actor="test")
    assert untagged.outcome == "refused"
    assert still_there(setup.ec2, setup.elbv2, "security-group", setup.group_id)
    assert still_there(setup.ec2, setup.elbv2, "instance", setup.planted.lookalikes["instance"])
    gone = setup.sweeper.sweep("elastic-ip", "eipalloc-00000000", actor="test")
    assert gone.outcome == "gone"
    assert [e.action for e in setup.store.audit_log()] == ["gone", "refused", "refused", "refused"]


def test_a_record_written_after_the_listing_keeps_its_resources_out_of_the_report(setup: Setup) -> None:
    """Karpenter's ordering: what the table says after the cloud was listed wins."""
    checker = setup.checker
    listed = checker._cloud.list(datetime.now(UTC))
    # The ghost's record appears between the listing and the table read: its resources are claimed.
    now = datetime.now(UTC) - timedelta(hours=1)
    spec = parse_spec(example_spec(setup.cloud.account, name="gc-ghost"))
    LoadBalancerRepository(setup.cloud.dynamodb, setup.cloud.table).create(
        LoadBalancerRecord(
            id=GHOST, generation=1, spec=spec, status=initial_status(spec), created_at=now, updated_at=now,
            desired_capacity=1,
        ),
        Event(time=now, type="Normal", reason="Created", message="test"),
    )  # fmt: skip

    class Replay:
        def list(self, now: datetime) -> Any:
            return listed

    checker._cloud = Replay()
    kinds = {(f.kind, f.resource_type) for f in checker.run().findings}
    assert not {("orphan", kind) for kind in ("elastic-ip", "security-group", "target-group")} & kinds


def test_a_stuck_execution_is_stopped_by_the_sweep_after_the_live_recheck(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.core.config import default_user_config

    from lbcp.dal.lbvms import LbvmRepository
    from lbcp.models.lbvm import Lbvm

    # Executions only exist here, they do not run (an in-process local runtime may have switched execution on).
    monkeypatch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": False})

    session = boto3.session.Session(region_name=REGION)
    sfn = session.client("stepfunctions")
    role = "arn:aws:iam::123456789012:role/sfn"
    definition = '{"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 86400, "End": true}}}'
    ours = sfn.create_state_machine(name="lbcp-lifecycle", definition=definition, roleArn=role)["stateMachineArn"]
    foreign = sfn.create_state_machine(name="someone-else", definition=definition, roleArn=role)["stateMachineArn"]

    def start(machine: str, lbvm_id: str, lb_id: str) -> str:
        body = f'{{"lbvmId": "{lbvm_id}", "loadBalancerId": "{lb_id}"}}'
        return str(sfn.start_execution(stateMachineArn=machine, name=lbvm_id, input=body)["executionArn"])

    orphaned = start(ours, "lbvm-00000000dead", GHOST)  # its LBVM has no record
    live_lbvm = start(ours, "lbvm-00000000a11e", "lb-00000000000000001")
    not_ours = start(foreign, "lbvm-00000000f0e1", GHOST)
    now = datetime.now(UTC)
    LbvmRepository(cloud.dynamodb, cloud.table).create(
        Lbvm(
            lbvm_id="lbvm-00000000a11e", load_balancer_id="lb-00000000000000001", subnet_id="subnet-1",
            state="Routable", state_since=now, version=1, launched_generation=1, launch_reason="test",
            created_at=now,
        )
    )  # fmt: skip
    later = now + timedelta(hours=2)  # past stuck_after (1 h)
    settings = Settings(
        table_name=cloud.table, event_retention_days=30, idempotency_ttl_seconds=60, lifecycle_state_machine_arn=ours
    )
    report = build_checker(settings, session.client, clock=lambda: later).run()
    stuck = [c for c in candidates(report.findings) if c.action == "stop"]
    assert [(c.resource_type, c.resource_id) for c in stuck] == [("execution", orphaned)]
    assert candidates(report.findings)[0].resource_id == orphaned  # stopped before anything is removed

    sweeper = build_sweeper(settings, session.client, clock=lambda: later)
    early = build_sweeper(settings, session.client, clock=lambda: now + timedelta(minutes=30))
    assert early.sweep("execution", orphaned, actor="test").outcome == "refused"  # not stuck yet
    refused = sweeper.sweep("execution", live_lbvm, actor="test")
    assert (refused.outcome, refused.reason) == (
        "refused",
        "LBVM lbvm-00000000a11e of load balancer lb-00000000000000001 is Routable: its execution is not stuck",
    )
    assert sweeper.sweep("execution", not_ours, actor="test").outcome == "refused"
    stopped = sweeper.sweep("execution", orphaned, actor="test")
    assert (stopped.outcome, stopped.reason) == ("deleted", "stopped: nothing claims it")
    statuses = {arn: sfn.describe_execution(executionArn=arn)["status"] for arn in (orphaned, live_lbvm, not_ours)}
    assert statuses == {orphaned: "ABORTED", live_lbvm: "RUNNING", not_ours: "RUNNING"}
    assert sweeper.sweep("execution", orphaned, actor="test").outcome == "gone"  # idempotent
