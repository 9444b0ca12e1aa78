"""The consistency checker in the synthesized stack: schedule, what its role may do, alarms, topic, cdk-nag."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import pytest

from lbcp.consistency.gc_policy import QUARANTINE_TAG, GcPolicy
from lbcp.models.metrics import METRIC_CONSISTENCY_FINDINGS, NAMESPACE
from lbcp.settings import (
    ENV_CONSISTENCY_FUNCTION,
    ENV_DRAIN_STATE_MACHINE_ARN,
    ENV_GC_POLICY,
    ENV_LIFECYCLE_STATE_MACHINE_ARN,
)
from tests.cdk.conftest import synthesize
from tests.cdk.test_fleet_stack import IAM5, NAG_ARN, NAG_EC2

if TYPE_CHECKING:
    from tests.cdk.conftest import Synthesized

pytestmark = pytest.mark.cdk

HANDLER = "handlers.consistency.lambda_handler"
ROLE_POLICY = "Lbcp/Consistency/Function/Role/DefaultPolicy"
EXPECTED_CONSISTENCY_ACKNOWLEDGMENTS: Final = {
    (f"{IAM5}*]", ROLE_POLICY),
    (f"{IAM5}*]", "Lbcp/Consistency/Function/DescribePolicy"),
    ("AwsSolutions::AwsSolutions-L1", "Lbcp/Consistency/Function/Function"),
    *(
        (f"{IAM5}{NAG_EC2.format(resource)}]", ROLE_POLICY)
        for resource in ("instance", "network-interface", "elastic-ip", "security-group")
    ),
    *(
        (f"{IAM5}{NAG_ARN.format(service='elasticloadbalancing', resource=pattern)}]", ROLE_POLICY)
        for pattern in ("loadbalancer/net/lbcp-*/*", "targetgroup/lbcp-*/*", "listener/net/lbcp-*/*/*")
    ),
    *(
        (f"{IAM5}{NAG_ARN.format(service='states', resource=f'execution:Lbcp-lbvm-{machine}:*')}]", ROLE_POLICY)
        for machine in ("lifecycle", "drain")
    ),
}
# Everything the checker may do. A change here is a security review.
EXPECTED_ACTIONS: Final = {
    "logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTraceSegments", "xray:PutTelemetryRecords",
    "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "states:ListExecutions",
    "dynamodb:BatchGetItem",  # the LBVM records, listed by their keys-only index
    "states:DescribeExecution", "states:StopExecution",
    "ec2:DescribeInstances", "ec2:DescribeNetworkInterfaces", "ec2:DescribeAddresses", "ec2:DescribeSecurityGroups",
    "ec2:DescribeVpcs", "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTags", "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeTargetHealth", "cloudwatch:PutMetricData",
    "ec2:TerminateInstances", "ec2:DeleteNetworkInterface", "ec2:ReleaseAddress", "ec2:DeleteSecurityGroup",
    "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:DeleteListener",
    "elasticloadbalancing:DeleteTargetGroup",
}  # fmt: skip
# What automatic GC adds, and only when cdk.json's lbcp:gc turns it on.
QUARANTINE_ACTIONS: Final = {
    "ec2:StopInstances", "ec2:CreateTags", "ec2:DeleteTags",
    "elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags",
}  # fmt: skip
AUTO_GC: Final = {"auto": True, "sightings": 4, "windows": ["Mon-Fri 09:00-17:00 UTC"], "maxDeletionsPerRun": 2}
OWNED_FOR_A_LOAD_BALANCER: Final = {
    "StringEquals": {"aws:ResourceTag/lbcp:product": "lbcp"},
    "Null": {"aws:ResourceTag/lbcp:load-balancer-id": "false"},
}
DELETES: Final = {
    action for action in EXPECTED_ACTIONS if ":Delete" in action or ":Terminate" in action or ":Release" in action
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _function(synthesized: Synthesized) -> tuple[str, dict[str, Any]]:
    (found,) = (
        (logical_id, function)
        for logical_id, function in synthesized.resources("AWS::Lambda::Function").items()
        if function["Properties"]["Handler"] == HANDLER
    )
    return found


def _statements(synthesized: Synthesized) -> list[dict[str, Any]]:
    role_id = _function(synthesized)[1]["Properties"]["Role"]["Fn::GetAtt"][0]
    return [
        statement
        for policy in synthesized.resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_it_runs_every_15_minutes_without_late_retries(synthesized: Synthesized) -> None:
    function_id, function = _function(synthesized)
    [rule] = [
        rule
        for rule in synthesized.resources("AWS::Events::Rule").values()
        if any(target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]} for target in rule["Properties"]["Targets"])
    ]
    assert rule["Properties"]["ScheduleExpression"] == "rate(15 minutes)"
    assert rule["Properties"]["Targets"][0]["RetryPolicy"] == {
        "MaximumEventAgeInSeconds": 900,
        "MaximumRetryAttempts": 0,
    }
    variables = function["Properties"]["Environment"]["Variables"]
    assert {ENV_LIFECYCLE_STATE_MACHINE_ARN, ENV_DRAIN_STATE_MACHINE_ARN} <= set(variables)


def test_the_api_invokes_it_by_name_and_may_do_nothing_else_with_it(synthesized: Synthesized) -> None:
    function_id, _ = _function(synthesized)
    (api,) = (
        f
        for f in synthesized.resources("AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == "handlers.api.lambda_handler"
    )
    assert api["Properties"]["Environment"]["Variables"][ENV_CONSISTENCY_FUNCTION] == {"Ref": function_id}
    role_id = api["Properties"]["Role"]["Fn::GetAtt"][0]
    invokes = [
        statement
        for policy in synthesized.resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "lambda:InvokeFunction" in _as_list(statement["Action"])
    ]
    assert [s["Resource"] for s in invokes] == [{"Fn::GetAtt": [function_id, "Arn"]}]


def test_its_permissions_are_exactly_the_expected_ones(synthesized: Synthesized) -> None:
    actions = {action for statement in _statements(synthesized) for action in _as_list(statement["Action"])}
    assert actions == EXPECTED_ACTIONS


def test_it_deletes_only_what_carries_our_owner_tags(synthesized: Synthesized) -> None:
    destructive = [s for s in _statements(synthesized) if set(_as_list(s["Action"])) & DELETES]
    assert {a for s in destructive for a in _as_list(s["Action"])} == DELETES
    for statement in destructive:
        assert statement["Condition"] == OWNED_FOR_A_LOAD_BALANCER
        assert "*" not in _as_list(statement["Resource"])


@pytest.fixture(scope="module")
def auto_gc(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The stack as `cdk deploy -c 'lbcp:gc={...auto: true...}'` (or the same in cdk.json) makes it."""
    return synthesize(tmp_path_factory.mktemp("cdk.out.autogc"), {"lbcp:gc": AUTO_GC})


def test_by_default_gc_is_manual_and_the_role_cannot_quarantine(synthesized: Synthesized) -> None:
    assert synthesized.context["lbcp:gc"] == {"auto": False}
    variables = _function(synthesized)[1]["Properties"]["Environment"]["Variables"]
    assert GcPolicy.from_env(variables[ENV_GC_POLICY]) == GcPolicy()
    actions = {action for statement in _statements(synthesized) for action in _as_list(statement["Action"])}
    assert not actions & QUARANTINE_ACTIONS


def test_auto_gc_reaches_the_function_and_grants_only_fenced_quarantine(auto_gc: Synthesized) -> None:
    variables = _function(auto_gc)[1]["Properties"]["Environment"]["Variables"]
    policy = GcPolicy.from_env(variables[ENV_GC_POLICY])
    assert (policy.auto, policy.sightings, policy.windows, policy.max_deletions_per_run) == (
        True, 4, ["Mon-Fri 09:00-17:00 UTC"], 2,
    )  # fmt: skip
    statements = _statements(auto_gc)
    actions = {action for statement in statements for action in _as_list(statement["Action"])}
    assert actions == EXPECTED_ACTIONS | QUARANTINE_ACTIONS
    granting = [s for s in statements if set(_as_list(s["Action"])) & QUARANTINE_ACTIONS]
    stop = [s for s in granting if _as_list(s["Action"]) == ["ec2:StopInstances"]]
    assert [s["Condition"] for s in stop] == [OWNED_FOR_A_LOAD_BALANCER]
    tagging = [s for s in granting if s not in stop]
    assert {a for s in tagging for a in _as_list(s["Action"])} == QUARANTINE_ACTIONS - {"ec2:StopInstances"}
    for statement in granting:
        assert "*" not in _as_list(statement["Resource"])
    for statement in tagging:
        # Only the quarantine tag, never a request without keys (an EC2 DeleteTags without keys removes them all).
        assert statement["Condition"] == {
            "StringEquals": OWNED_FOR_A_LOAD_BALANCER["StringEquals"],
            "Null": {**OWNED_FOR_A_LOAD_BALANCER["Null"], "aws:TagKeys": "false"},
            "ForAllValues:StringEquals": {"aws:TagKeys": [QUARANTINE_TAG]},
        }
    assert auto_gc.passes_nag("Lbcp/Consistency/") == EXPECTED_CONSISTENCY_ACKNOWLEDGMENTS


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"auto": True}, "needs at least one window"),
        ({"auto": True, "windows": ["weekdays"]}, "windows"),
        ('{"auto": true, "windows": ["Mon-Sun 00:00-24:00 UTC"], "sightings": 0}', "sightings"),
        ({"auto": False, "quarantineDays": 2}, "quarantineDays"),
    ],
)
def test_a_bad_gc_policy_fails_the_synth_naming_the_key_and_field(value: object, error: str) -> None:
    from aws_cdk import App

    from stacks.config import ControlPlaneConfig, load_cdk_json_context

    app = App(context={**load_cdk_json_context(), "lbcp:gc": value})
    with pytest.raises(ValueError, match=rf"invalid lbcp:gc: .*{error}"):
        ControlPlaneConfig.from_context(app)


def test_a_gc_policy_from_the_cli_is_parsed() -> None:
    from aws_cdk import App

    from stacks.config import ControlPlaneConfig, load_cdk_json_context

    # `cdk deploy -c 'lbcp:gc={"auto":true,...}'` passes a string.
    text = '{"auto": true, "windows": ["Sat 02:00-04:00 UTC"]}'
    app = App(context={**load_cdk_json_context(), "lbcp:gc": text})
    assert ControlPlaneConfig.from_context(app).gc_policy.windows == ["Sat 02:00-04:00 UTC"]


def test_orphans_and_drift_alarm_to_an_encrypted_ssl_only_topic(synthesized: Synthesized) -> None:
    alarms = [
        alarm["Properties"]
        for alarm in synthesized.resources("AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("MetricName") == METRIC_CONSISTENCY_FINDINGS
    ]
    assert sorted(a["Dimensions"][0]["Value"] for a in alarms) == ["drift", "orphan"]
    topic_id, topic = synthesized.only("AWS::SNS::Topic")
    for alarm in alarms:
        assert alarm["Namespace"] == NAMESPACE
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
        assert alarm["AlarmActions"] == [{"Ref": topic_id}] == alarm["OKActions"]
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = synthesized.template["Resources"][key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    assert any(s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"} for s in key["KeyPolicy"]["Statement"])
    (policy,) = synthesized.resources("AWS::SNS::TopicPolicy").values()
    [deny] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert (deny["Effect"], deny["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})


def test_it_passes_cdk_nag_with_exactly_the_expected_acknowledgments(synthesized: Synthesized) -> None:
    assert synthesized.passes_nag("Lbcp/Consistency/") == EXPECTED_CONSISTENCY_ACKNOWLEDGMENTS
