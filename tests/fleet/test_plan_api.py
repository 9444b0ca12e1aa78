"""GET /v1/load-balancers/{id}/plan against moto: the planner on a fresh observation, and nothing acted on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from lbcp.models.lbvm import Lbvm
from tests.fleet.harness import Fleet


def _world(fleet: Fleet) -> dict[str, Any]:
    """Everything a plan could change if it acted: the table, EC2, the entry, DNS and the executions."""
    ec2, elbv2 = fleet.cloud.ec2, fleet.elbv2
    groups = elbv2.describe_target_groups()["TargetGroups"]
    return {
        "table": fleet.cloud.table_items(),
        "instances": ec2.describe_instances()["Reservations"],
        "interfaces": ec2.describe_network_interfaces()["NetworkInterfaces"],
        "security_groups": ec2.describe_security_groups()["SecurityGroups"],
        "targets": {
            group["TargetGroupArn"]: elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])[
                "TargetHealthDescriptions"
            ]
            for group in groups
        },
        "nlbs": elbv2.describe_load_balancers()["LoadBalancers"],
        "records": fleet.route53.list_resource_record_sets(HostedZoneId=fleet.hosted_zone_id)["ResourceRecordSets"],
        "executions": [
            fleet.sfn.list_executions(stateMachineArn=arn)["executions"]
            for arn in (fleet.machinery.lifecycle_state_machine_arn, fleet.machinery.drain_state_machine_arn)
        ],
    }


def test_the_plan_lists_what_the_reconciler_would_do_and_acts_on_nothing(fleet: Fleet, spec: dict[str, Any]) -> None:
    lb_id, _ = fleet.create_load_balancer(spec)
    now = datetime.now(UTC)
    # A Routable LBVM whose instance is gone: the planner replaces it, and registers nothing for it.
    lost = Lbvm(
        lbvm_id="lbvm-0000000000aa", load_balancer_id=lb_id, subnet_id=spec["subnetIds"][0], state="Routable",
        state_since=now - timedelta(hours=1), version=1, launched_generation=1, created_at=now - timedelta(hours=1),
        launch_reason="test", instance_id="i-000000000000000aa", applied_config_version=1,
    )  # fmt: skip
    fleet.lbvms.create(lost)
    before = _world(fleet)

    response = fleet.api.request("GET", f"/v1/load-balancers/{lb_id}/plan")
    again = fleet.api.request("GET", f"/v1/load-balancers/{lb_id}/plan")

    assert response.status == 200, response.json()
    assert _world(fleet) == before
    body = response.json()
    assert body["loadBalancerId"] == lb_id and body["noop"] is False and body["inSync"] is False
    actions = [job["action"] for job in body["jobs"]]
    assert actions.count("Launch") == 2, body["jobs"]
    drain = next(job for job in body["jobs"] if job["action"] == "RequestDrain")
    assert (drain["lbvmId"], drain["drainReason"]) == (lost.lbvm_id, "replace")
    assert all(job["reason"] for job in body["jobs"])
    diff = {field["field"]: field for field in body["diff"]}
    assert (diff["entry"]["observed"], diff["entry"]["inSync"]) == ("complete", True)
    instances = diff["instances"]
    assert (instances["desired"], instances["observed"], instances["inSync"]) == ("1", "0", False)
    assert diff["registrations"]["observed"] == "none"  # read, not skipped: the preview verifies registrations
    assert body["template"] == next(job["template"] for job in body["jobs"] if job["action"] == "Launch")
    assert [job["action"] for job in again.json()["jobs"]] == actions


def test_the_plan_of_an_unknown_load_balancer_is_404_problem_json(fleet: Fleet) -> None:
    response = fleet.api.request("GET", "/v1/load-balancers/lb-00000000000000bad/plan")
    assert response.status == 404
    assert response.header("Content-Type") == "application/problem+json"
    assert [error["field"] for error in response.json()["errors"]] == ["id"]


def test_the_plan_of_a_load_balancer_failed_by_its_retry_streak_says_failed_like_the_reconciler(
    fleet: Fleet, spec: dict[str, Any]
) -> None:
    from lbcp.dal.retries import RetryRepository
    from lbcp.reconcile.backoff import RetryStreak

    lb_id, _ = fleet.create_load_balancer(spec)
    record = fleet.load_balancers.get(lb_id)
    assert record is not None
    generation = record.generation
    now = datetime.now(UTC)
    retries = RetryRepository(fleet.cloud.dynamodb, fleet.cloud.table, fleet.load_balancers)
    assert fleet.api.request("GET", f"/v1/load-balancers/{lb_id}/plan").json()["plannedPhase"] != "Failed"

    streak = RetryStreak(
        load_balancer_id=lb_id,
        generation=generation,
        failures=3,
        first_failed_at=now - timedelta(minutes=6),
        last_failed_at=now - timedelta(minutes=2),
        last_error="EntryFailed: AccessDenied: elasticloadbalancing:CreateTargetGroup",
        not_before=now + timedelta(minutes=2),
    )
    assert retries.save(None, streak, None)
    before = _world(fleet)
    body = fleet.api.request("GET", f"/v1/load-balancers/{lb_id}/plan").json()

    assert _world(fleet) == before
    assert body["plannedPhase"] == "Failed", body
