"""GET /v1/consistency, POST /v1/consistency/sweep and the audit log, through the real API handler.

The sweep routes invoke the consistency function through moto's Lambda, which
the local runtime's bridge runs in this process (as the local runtime does).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import pytest

from handlers import consistency as consistency_handler
from lbcp.api.dependencies import dependencies
from lbcp.consistency.findings import ConsistencyReport, Finding
from lbcp.consistency.store import ConsistencyStore
from lbcp.settings import ENV_CONSISTENCY_FUNCTION, settings
from lbcp_local import lambda_bridge
from lbcp_local.machinery import deploy_consistency_function
from tests.conftest import REGION, Api, Cloud
from tests.consistency.plant import plant_orphans, still_there

GHOST = "lb-00000000000000bad"


def test_before_the_first_run_the_report_is_empty_with_generated_at_null(api: Api) -> None:
    response = api.request("GET", "/v1/consistency")
    assert response.status == 200
    assert response.json() == {
        "generatedAt": None, "loadBalancers": 0, "findings": [],
        "counts": {"orphan": 0, "drift": 0, "leak": 0, "stuck": 0}, "awsCalls": 0, "truncated": False,
    }  # fmt: skip


def test_the_last_report_is_served_as_stored(api: Api, cloud: Cloud) -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    finding = Finding(
        resource_type="instance", resource_id="i-0abc", load_balancer_id=GHOST, kind="orphan", first_seen=now,
        message="instance i-0abc carries the owner tag of load balancer lb-..., which has no record",
    )  # fmt: skip
    ConsistencyStore(cloud.dynamodb, cloud.table).put_report(
        ConsistencyReport(generated_at=now, findings=[finding], counts={"orphan": 1, "drift": 0, "leak": 0, "stuck": 0})
    )
    body = api.request("GET", "/v1/consistency").json()
    assert body["generatedAt"] == "2026-12-01T12:00:00Z"
    assert body["findings"] == [
        {
            "resourceType": "instance", "resourceId": "i-0abc", "loadBalancerId": GHOST, "kind": "orphan",
            "firstSeen": "2026-12-01T12:00:00Z", "message": finding.message, "sightings": 1, "quarantinedAt": None,
        }
    ]  # fmt: skip


def test_a_sweep_without_the_checker_deployed_is_503_problem_json(api: Api) -> None:
    response = api.request("POST", "/v1/consistency/sweep", {"apply": False})
    assert response.status == 503
    assert response.header("Content-Type") == "application/problem+json"
    assert response.json()["type"] == "urn:lbcp:problem:service-unavailable"


@pytest.fixture
def deployed(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    with lambda_bridge.bridged():
        arn = deploy_consistency_function(
            iam=boto3.client("iam", region_name=REGION), lambda_client=boto3.client("lambda", region_name=REGION)
        )
        monkeypatch.setenv(ENV_CONSISTENCY_FUNCTION, arn)
        settings.cache_clear()
        dependencies.cache_clear()
        consistency_handler.checker.cache_clear()
        consistency_handler.sweeper.cache_clear()
        yield cloud
        consistency_handler.checker.cache_clear()
        consistency_handler.sweeper.cache_clear()


def test_apply_needs_the_resource(api: Api, deployed: Cloud) -> None:
    response = api.request("POST", "/v1/consistency/sweep", {"apply": True, "resourceType": "instance"})
    assert response.status == 400
    assert [error["field"] for error in response.json()["errors"]] == ["resourceId"]


def test_dry_run_then_apply_one_by_one_with_an_audit_entry_each(api: Api, deployed: Cloud) -> None:
    ec2, elbv2 = boto3.client("ec2", region_name=REGION), boto3.client("elbv2", region_name=REGION)
    account = deployed.account
    planted = plant_orphans(
        ec2, elbv2, vpc_id=account.vpc_id, subnet_id=account.subnet_ids[0], image_id=account.image_id, ghost=GHOST
    )
    try:
        plan = api.request("POST", "/v1/consistency/sweep", {}).json()
        chosen = [(c["resourceType"], c["resourceId"]) for c in plan["candidates"]]
        assert sorted(chosen) == sorted(planted.orphans.items())
        assert plan["report"]["counts"]["orphan"] == 5
        assert all(still_there(ec2, elbv2, kind, resource) for kind, resource in planted.orphans.items())
        for kind, resource in chosen:
            response = api.request(
                "POST", "/v1/consistency/sweep", {"apply": True, "resourceType": kind, "resourceId": resource}
            )
            assert (response.status, response.json()["outcome"]) == (200, "deleted"), response.json()
        assert not any(still_there(ec2, elbv2, kind, resource) for kind, resource in planted.orphans.items())
        assert all(still_there(ec2, elbv2, kind, resource) for kind, resource in planted.lookalikes.items())
        audit = api.request("GET", "/v1/consistency/audit", query="limit=10").json()["items"]
        assert [(e["action"], e["resourceId"]) for e in reversed(audit)] == [("deleted", r) for _, r in chosen]
    finally:
        for kind in ("instance",):
            for resource in (planted.orphans[kind], planted.lookalikes[kind]):
                ec2.terminate_instances(InstanceIds=[resource])
