"""The local entry: a real HAProxy per NLB in the emulator, routing as the registrations say, late as an NLB is."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lbcp import LB_ID_TAG_KEY, PRODUCT_TAG_KEY, PRODUCT_TAG_VALUE
from lbcp_local.backends import LocalBackends
from lbcp_local.entry import LocalEntry
from lbcp_local.entry_routing import EntryDelays

REGION = "us-east-1"
LB_ID = "lb-0123456789abcdef0"


@dataclass
class FakeClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    elbv2: Any
    nlb_arn: str
    group_arn: str
    instances: list[str]
    lbvms: LocalBackends  # stand-ins for the LBVMs: each answers with its own name
    entry: LocalEntry
    clock: FakeClock

    def at(self, now: float) -> None:
        self.clock.now = now
        self.entry.sync()

    def port(self) -> int:
        [endpoint] = json.loads(self.entry.endpoints_file.read_text())[LB_ID]
        assert endpoint["listenerPort"] == 80
        host, _, port = endpoint["address"].rpartition(":")
        assert host == "127.0.0.1"
        return int(port)

    def register(self, index: int) -> None:
        self.elbv2.register_targets(TargetGroupArn=self.group_arn, Targets=[{"Id": self.instances[index], "Port": 80}])

    def deregister(self, index: int) -> None:
        self.elbv2.deregister_targets(TargetGroupArn=self.group_arn, Targets=[{"Id": self.instances[index]}])


def answered_by(connection: http.client.HTTPConnection) -> str:
    connection.request("GET", "/")
    response = connection.getresponse()
    body = json.loads(response.read())
    assert response.status == 200
    return str(body["backend"])


def fresh(port: int) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        return answered_by(connection)
    finally:
        connection.close()


def unserved(port: int) -> bool:
    try:
        fresh(port)
    except (OSError, http.client.HTTPException):
        return True
    return False


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        elbv2 = boto3.client("elbv2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        reservation = ec2.run_instances(ImageId=image, MinCount=2, MaxCount=2, SubnetId=subnet)
        instances = [instance["InstanceId"] for instance in reservation["Instances"]]
        tags = [{"Key": PRODUCT_TAG_KEY, "Value": PRODUCT_TAG_VALUE}, {"Key": LB_ID_TAG_KEY, "Value": LB_ID}]
        nlb = elbv2.create_load_balancer(Name="lbcp-test", Subnets=[subnet], Type="network", Tags=tags)
        nlb_arn = nlb["LoadBalancers"][0]["LoadBalancerArn"]
        group_arn = elbv2.create_target_group(
            Name="lbcp-test-80", Protocol="TCP", Port=80, VpcId=vpc, TargetType="instance", Tags=tags
        )["TargetGroups"][0]["TargetGroupArn"]
        elbv2.modify_target_group_attributes(
            TargetGroupArn=group_arn, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}]
        )
        elbv2.create_listener(
            LoadBalancerArn=nlb_arn,
            Protocol="TCP",
            Port=80,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": group_arn}],
        )
        lbvms = LocalBackends(("lbvm-a", "lbvm-b")).start()
        addresses = {
            instance: {80: f"127.0.0.1:{lbvms.port(name)}"}
            for instance, name in zip(instances, ("lbvm-a", "lbvm-b"), strict=True)
        }
        clock = FakeClock()
        entry = LocalEntry(
            elbv2,
            lambda instance: addresses.get(instance, {}),
            tmp_path / "entry",
            EntryDelays(registration_seconds=10, deregistration_seconds=4),
            clock=clock,
        )
        entry.state_dir.mkdir(parents=True)
        try:
            yield World(elbv2, nlb_arn, group_arn, instances, lbvms, entry, clock)
        finally:
            entry.stop()
            lbvms.stop()


def test_the_entry_routes_late_as_an_nlb_does_and_keeps_connections_to_a_deregistered_target(world: World) -> None:
    world.register(0)
    world.at(0)
    port = world.port()
    assert unserved(port)  # registered, but not routed yet
    world.at(10)
    assert fresh(port) == "lbvm-a"

    kept = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    assert answered_by(kept) == "lbvm-a"  # a keep-alive connection to A, through the entry

    world.register(1)
    world.at(20)
    world.at(30)
    assert {fresh(port) for _ in range(6)} == {"lbvm-a", "lbvm-b"}

    world.deregister(0)
    world.at(40)
    world.at(43.9)
    # Deregistered, but the entry has not caught up yet: new connections still reach A.
    assert "lbvm-a" in {fresh(port) for _ in range(6)}
    world.at(44)
    assert {fresh(port) for _ in range(6)} == {"lbvm-b"}
    # The connection it already had goes on.
    assert answered_by(kept) == "lbvm-a"

    # The target group's deregistration timeout (30 s after the entry took A out) ends it.
    world.at(73.9)
    assert answered_by(kept) == "lbvm-a"
    world.at(74)
    with pytest.raises((OSError, http.client.HTTPException)):
        answered_by(kept)
    kept.close()


def test_deleting_the_nlb_stops_its_stand_in(world: World) -> None:
    world.register(0)
    world.at(0)
    world.at(10)
    port = world.port()
    assert fresh(port) == "lbvm-a"
    listeners = world.elbv2.describe_listeners(LoadBalancerArn=world.nlb_arn)["Listeners"]
    for listener in listeners:
        world.elbv2.delete_listener(ListenerArn=listener["ListenerArn"])
    world.elbv2.delete_load_balancer(LoadBalancerArn=world.nlb_arn)
    world.at(11)
    assert unserved(port)
    assert json.loads(world.entry.endpoints_file.read_text()) == {}
