"""A load balancer that keeps failing is isolated, backed off and dead-lettered; the others never wait for it.

Against emulated AWS (moto, in-process): the real reconciler, planner,
executor, repositories and entry adapter. Load balancers start in steady
state (entry built, two Routable LBVMs registered) with their first status
still to write. A *poison* load balancer is made by a fault at the AWS call
level (a botocore ``before-call`` hook answers its status transaction with a
ValidationException, as DynamoDB does for an item grown too big): its act raises outside
the executor's per-job handling, the failure this isolates. Time is injected
(``clock``), nothing sleeps.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from lbcp.dal.lbvms import LbvmRepository
from lbcp.dal.repository import LoadBalancerRepository
from lbcp.entry.adapter import EntryAdapter
from lbcp.models.events import Event
from lbcp.models.lbvm import Lbvm
from lbcp.models.resource import LoadBalancerRecord
from lbcp.reconcile.run import Reconciler, TickReport
from lbcp.reconcile.wiring import build_reconciler
from lbcp.service import initial_status
from lbcp.settings import Settings
from lbcp.validation import parse_spec
from lbcp_local.seed import example_spec
from tests.conftest import REGION, Cloud

ACCOUNT_ID = "123456789012"
TICK = timedelta(minutes=1)


@dataclass
class Faults:
    """Load balancers whose status transaction DynamoDB refuses (as it refuses an item grown past 400 KB)."""

    poisoned: set[str] = field(default_factory=set)

    def hook(self, **kwargs: Any) -> tuple[Any, dict[str, Any]] | None:
        if kwargs["model"].name != "TransactWriteItems":
            return None
        # ``params`` is the serialized request: DynamoDB's JSON body.
        request = json.loads(kwargs["params"]["body"])
        keys = {
            part.get("Key", part.get("Item", {})).get("pk", {}).get("S")
            for item in request.get("TransactItems", [])
            for part in item.values()
        }
        if not {f"LB#{lb_id}" for lb_id in self.poisoned} & keys:
            return None
        # Not retried by botocore (a 500 would be, with real sleeps): refused outright, every time.
        error = {"Code": "ValidationException", "Message": "Item size has exceeded the maximum allowed size"}
        return SimpleNamespace(status_code=400, headers={}), {"Error": error, "ResponseMetadata": {}}


@dataclass
class World:
    cloud: Cloud
    reconciler: Reconciler
    load_balancers: LoadBalancerRepository
    entry: EntryAdapter
    faults: Faults
    clock: list[datetime]
    lbvms: LbvmRepository

    def tick(self, only: set[str] | None = None) -> TickReport:
        return self.reconciler.tick(only)

    def advance(self, delta: timedelta = TICK) -> None:
        self.clock[0] += delta

    def record(self, lb_id: str) -> LoadBalancerRecord:
        record = self.load_balancers.get(lb_id)
        assert record is not None
        return record

    def events(self, lb_id: str, reason: str | None = None) -> list[Event]:
        found = self.load_balancers.list_events(lb_id, 500, None).items
        return [e for e in found if reason is None or e.reason == reason]


def steady_load_balancer(cloud: Cloud, entry: EntryAdapter, name: str, now: datetime) -> str:
    """A load balancer whose fleet is in place (entry, two Routable LBVMs registered); its status is the initial one."""
    ami = str(cloud.ec2.register_image(Name=f"{name}-{uuid.uuid4().hex[:6]}", RootDeviceName="/dev/xvda")["ImageId"])
    document = {**example_spec(cloud.account, name=name), "capacity": {"min": 2, "max": 4}}
    document["instance"] = {"type": "c6i.large", "imageId": ami}
    spec = parse_spec(document)
    lb_id = f"lb-{uuid.uuid4().hex[:17]}"
    record = LoadBalancerRecord(
        id=lb_id,
        generation=1,
        spec=spec,
        status=initial_status(spec),
        created_at=now,
        updated_at=now,
        desired_capacity=2,
    )
    load_balancers = LoadBalancerRepository(cloud.dynamodb, cloud.table)
    load_balancers.create(record, Event(time=now, type="Normal", reason="Created", message="test"))
    view = entry.ensure_entry(spec, lb_id)
    lbvms = LbvmRepository(cloud.dynamodb, cloud.table)
    for slot in range(2):
        lbvm_id = f"lbvm-{uuid.uuid4().hex[:12]}"
        tags = [
            {"Key": "lbcp:product", "Value": "lbcp"},
            {"Key": "lbcp:load-balancer-id", "Value": lb_id},
            {"Key": "lbcp:lbvm-id", "Value": lbvm_id},
        ]
        subnet = cloud.account.subnet_ids[slot]
        instance = cloud.ec2.run_instances(
            ImageId=ami,
            InstanceType="c6i.large",
            MinCount=1,
            MaxCount=1,
            SubnetId=subnet,
            SecurityGroupIds=[view.security_group_id or ""],
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )["Instances"][0]
        lbvms.create(
            Lbvm(
                lbvm_id=lbvm_id,
                load_balancer_id=lb_id,
                subnet_id=subnet,
                availability_zone=cloud.account.availability_zones[slot],
                state="Routable",
                state_since=now - timedelta(minutes=10),
                version=1,
                launched_generation=1,
                launch_template=f"c6i.large from {ami} running haproxy",
                launch_reason="test",
                created_at=now - timedelta(minutes=11),
                instance_id=instance["InstanceId"],
                private_ip=instance["PrivateIpAddress"],
                last_heartbeat_at=now,
                applied_config_version=1,
                agent_state="ready",
            )
        )
        entry.register_lbvm(
            spec, lb_id, lbvm_id=lbvm_id, instance_id=instance["InstanceId"], private_ip=instance["PrivateIpAddress"]
        )
    return lb_id


Build = Callable[..., tuple[World, list[str]]]


@pytest.fixture
def world(cloud: Cloud) -> Iterator[Build]:
    session = boto3.session.Session(region_name=REGION)
    domain = f"{uuid.uuid4().hex[:8]}.lbcp.test"
    zone_id = session.client("route53").create_hosted_zone(Name=domain, CallerReference=domain)["HostedZone"]["Id"]
    zone_id = zone_id.split("/")[-1]
    entry = EntryAdapter(
        ec2=cloud.ec2,
        elbv2=session.client("elbv2"),
        route53=session.client("route53"),
        hosted_zone_id=zone_id,
        dns_domain=domain,
    )
    clock = [datetime(2026, 12, 7, 12, 0, 30, tzinfo=UTC)]

    def build(names: list[str], **settings_changes: Any) -> tuple[World, list[str]]:
        ids = [steady_load_balancer(cloud, entry, name, clock[0]) for name in names]
        faults = Faults()

        def client(service: str) -> Any:
            made = session.client(service)
            if service == "dynamodb":
                made.meta.events.register("before-call.dynamodb.*", faults.hook)
            return made

        settings = Settings(
            table_name=cloud.table,
            event_retention_days=30,
            idempotency_ttl_seconds=86400,
            lifecycle_state_machine_arn=f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:lifecycle",
            drain_state_machine_arn=f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:drain",
            tasks_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:tasks",
            hosted_zone_id=zone_id,
            dns_domain=domain,
            api_endpoint="https://api.example",
            **settings_changes,
        )
        reconciler = build_reconciler(settings, client, clock=lambda: clock[0], rng=random.Random(7))
        repository = LoadBalancerRepository(cloud.dynamodb, cloud.table)
        lbvms = LbvmRepository(cloud.dynamodb, cloud.table)
        return World(cloud, reconciler, repository, entry, faults, clock, lbvms), ids

    yield build


# --- isolation --------------------------------------------------------------------------------------------------


def test_a_load_balancer_whose_act_raises_does_not_stop_the_others(world: Build) -> None:
    # Listed by name: the poison one comes first, so before the fix the healthy one was never reached.
    w, (poison, healthy) = world(["a-poison", "b-healthy"])
    w.faults.poisoned.add(poison)
    report = w.tick()
    assert set(report.failures) == {poison}
    assert "(ValidationException)" in report.failures[poison]
    assert w.record(healthy).status.phase == "Active"
    assert w.record(healthy).status.observed_generation == 1
    assert w.record(poison).status.observed_generation != 1  # its status was never written
    # The healthy one has converged: the next tick has nothing to do for it.
    w.advance()
    again = w.tick()
    assert again.plans[healthy].is_noop(w.record(healthy).status)
    assert healthy not in again.acted
