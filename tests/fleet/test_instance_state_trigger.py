"""An EC2 state change runs the reconciler for the load balancer of that instance, and only if it is ours."""

from __future__ import annotations

from typing import Any

import pytest

from handlers import reconciler as handler
from lbcp import LB_ID_TAG_KEY, PRODUCT_TAG_KEY, PRODUCT_TAG_VALUE
from lbcp.reconcile.compute import Ec2Compute
from lbcp.settings import (
    ENV_AGENT_ENDPOINT,
    ENV_DRAIN_STATE_MACHINE_ARN,
    ENV_LIFECYCLE_STATE_MACHINE_ARN,
    ENV_TASKS_FUNCTION_ARN,
)
from tests.conftest import Cloud


class LambdaContext:
    function_name = "lbcp-reconciler"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:lbcp-reconciler"
    aws_request_id = "00000000-0000-0000-0000-000000000000"


def _instance(cloud: Cloud, tags: dict[str, str]) -> str:
    launched = cloud.ec2.run_instances(
        ImageId=cloud.account.image_id,
        InstanceType="t3.micro",
        MinCount=1,
        MaxCount=1,
        SubnetId=cloud.account.subnet_ids[0],
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": key, "Value": value} for key, value in tags.items()]}
        ],
    )
    return str(launched["Instances"][0]["InstanceId"])


def _state_change(instance_id: str, state: str = "shutting-down") -> dict[str, Any]:
    return {
        "source": "aws.ec2",
        "detail-type": "EC2 Instance State-change Notification",
        "detail": {"instance-id": instance_id, "state": state},
    }


def test_the_owner_is_read_from_the_owner_tags(cloud: Cloud) -> None:
    ours = _instance(cloud, {PRODUCT_TAG_KEY: PRODUCT_TAG_VALUE, LB_ID_TAG_KEY: "lb-0123456789abcdef"})
    # A look-alike: the load balancer tag without our product tag is not ours.
    look_alike = _instance(cloud, {LB_ID_TAG_KEY: "lb-0123456789abcdef"})
    foreign = _instance(cloud, {"Name": "someone-else"})
    compute = Ec2Compute(cloud.ec2)
    assert compute.owner_of(ours) == "lb-0123456789abcdef"
    assert compute.owner_of(look_alike) is None
    assert compute.owner_of(foreign) is None
    assert compute.owner_of("i-0000000000000dead") is None


def test_only_ec2_state_changes_name_instances() -> None:
    assert handler.changed_instances(_state_change("i-0abc")) == ["i-0abc"]
    assert handler.changed_instances({"source": "aws.events", "detail-type": "Scheduled Event"}) is None
    assert handler.changed_instances({"Records": []}) is None
    assert (
        handler.changed_instances({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification"}) == []
    )


def test_a_foreign_instance_ticks_nothing(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    from lbcp.settings import settings

    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:"
    monkeypatch.setenv(ENV_LIFECYCLE_STATE_MACHINE_ARN, arn + "lifecycle")
    monkeypatch.setenv(ENV_DRAIN_STATE_MACHINE_ARN, arn + "drain")
    monkeypatch.setenv(ENV_TASKS_FUNCTION_ARN, "arn:aws:lambda:us-east-1:123456789012:function:tasks")
    monkeypatch.setenv(ENV_AGENT_ENDPOINT, "https://agent.example.com")
    settings.cache_clear()
    handler.reconciler.cache_clear()
    try:
        foreign = _instance(cloud, {"Name": "someone-else"})
        assert handler.lambda_handler(_state_change(foreign), LambdaContext()) == {"loadBalancers": 0}
        ours = _instance(cloud, {PRODUCT_TAG_KEY: PRODUCT_TAG_VALUE, LB_ID_TAG_KEY: "lb-0123456789abcdef"})
        assert handler.reconciler().owners_of([ours, foreign]) == {"lb-0123456789abcdef"}
    finally:
        handler.reconciler.cache_clear()
        settings.cache_clear()


def _stream_record(event_name: str, new: dict[str, Any], old: dict[str, Any], sk: str = "LB") -> dict[str, Any]:
    change: dict[str, Any] = {"Keys": {"pk": {"S": "LB#lb-1"}, "sk": {"S": sk}}}
    if new:
        change["NewImage"] = new
    if old:
        change["OldImage"] = old
    return {"eventName": event_name, "dynamodb": change}


def test_a_new_intent_is_urgent_and_a_status_write_is_not() -> None:
    gen1 = {"generation": {"N": "1"}, "status": {"S": "{}"}, "phase": {"S": "Pending"}}
    status_written = {**gen1, "status": {"S": '{"observedGeneration":1}'}, "phase": {"S": "Active"}}
    respecified = {**status_written, "generation": {"N": "2"}}
    deleting = {**status_written, "deletionRequestedAt": {"S": "2026-12-07T12:00:00Z"}}
    paused = {**status_written, "rolloutControl": {"S": '{"action":"pause"}'}}
    scaled = {**status_written, "desiredCapacity": {"N": "3"}}

    def urgent(*records: dict[str, Any]) -> set[str]:
        return handler.user_changes({"Records": list(records)})

    assert urgent(_stream_record("INSERT", gen1, {})) == {"lb-1"}
    assert urgent(_stream_record("MODIFY", respecified, status_written)) == {"lb-1"}
    assert urgent(_stream_record("MODIFY", deleting, status_written)) == {"lb-1"}
    assert urgent(_stream_record("MODIFY", paused, status_written)) == {"lb-1"}
    assert urgent(_stream_record("MODIFY", scaled, status_written)) == {"lb-1"}
    # The reconciler's own status write and the scaler's memory: they tick it, but within its backoff.
    assert urgent(_stream_record("MODIFY", status_written, gen1)) == set()
    remembered = {**status_written, "scaling": {"S": '{"lastDecisionAt":"2026-12-07T12:00:00Z"}'}}
    assert urgent(_stream_record("MODIFY", remembered, status_written)) == set()
    assert urgent(_stream_record("REMOVE", {}, status_written)) == set()
    assert urgent(_stream_record("INSERT", gen1, {}, sk="RETRY")) == set()
    assert handler.changed_load_balancers({"Records": [_stream_record("MODIFY", status_written, gen1)]}) == {"lb-1"}
