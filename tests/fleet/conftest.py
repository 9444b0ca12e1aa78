"""Fixtures of the fleet tests: the real state machines and tasks function running in moto."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest

from lbcp.settings import ENV_DNS_DOMAIN, ENV_HOSTED_ZONE_ID
from lbcp_local import lambda_bridge
from lbcp_local.machinery import FleetMachinery, deploy_fleet_machinery
from tests.conftest import REGION, Api, Cloud
from tests.fleet.harness import Fleet
from tests.fleet.sfn import fast_forward


@pytest.fixture(scope="module")
def bridge() -> Iterator[None]:
    """moto patched for this module only (test_lambda_bridge checks moto unpatched)."""
    with lambda_bridge.bridged():
        yield


@dataclass(frozen=True)
class Deployed:
    machinery: FleetMachinery
    image_id: str


@pytest.fixture(scope="module")
def deployed(emulated_account: Cloud, bridge: None) -> Iterator[Deployed]:
    """The machinery, deployed once per module (moto parses an ASL definition in about a second)."""
    from moto.core.config import default_user_config

    with pytest.MonkeyPatch.context() as patch:
        # The module's mock_aws was started without executing state machines:
        # these are created, and run, with execution on.
        patch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": True})
        machinery = deploy_fleet_machinery(
            iam=boto3.client("iam", region_name=REGION),
            lambda_client=boto3.client("lambda", region_name=REGION),
            sfn=boto3.client("stepfunctions", region_name=REGION),
        )
        # An image of our own: listing moto's whole catalogue costs seconds.
        image_id = emulated_account.ec2.register_image(Name="lbcp-test-lbvm", RootDeviceName="/dev/xvda")["ImageId"]
        yield Deployed(machinery, image_id)


@pytest.fixture
def fleet(cloud: Cloud, api: Api, deployed: Deployed, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    from lbcp.lifecycle import tasks
    from lbcp.settings import settings

    fast_forward(monkeypatch, scale=0.01)

    route53 = boto3.client("route53", region_name=REGION)
    domain = f"{uuid.uuid4().hex[:8]}.lbcp.test"
    zone_id = route53.create_hosted_zone(Name=domain, CallerReference=uuid.uuid4().hex)["HostedZone"]["Id"]
    zone_id = zone_id.rsplit("/", 1)[-1]
    monkeypatch.setenv(ENV_HOSTED_ZONE_ID, zone_id)
    monkeypatch.setenv(ENV_DNS_DOMAIN, domain)

    sfn = boto3.client("stepfunctions", region_name=REGION)
    machinery = deployed.machinery
    for name, value in machinery.environment().items():
        monkeypatch.setenv(name, value)
    settings.cache_clear()
    tasks.default_context.cache_clear()
    yield Fleet(
        cloud=cloud,
        api=api,
        sfn=sfn,
        elbv2=boto3.client("elbv2", region_name=REGION),
        route53=route53,
        machinery=machinery,
        hosted_zone_id=zone_id,
        dns_domain=domain,
        image_id=deployed.image_id,
    )
    # Stop what still runs (a Routable LBVM waits for a year), so no execution
    # outlives its test and acts on the next test's table.
    for arn in (machinery.lifecycle_state_machine_arn, machinery.drain_state_machine_arn):
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn, statusFilter="RUNNING"):
            for execution in page["executions"]:
                sfn.stop_execution(executionArn=execution["executionArn"])
    tasks.default_context.cache_clear()
