"""The scaler in the synthesized stack: function, schedule, least-privilege role, cdk-nag."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

import pytest

from lbcp.dal.schema import GSI_BY_KIND
from lbcp.settings import ENV_EVENT_RETENTION_DAYS, ENV_TABLE_NAME

if TYPE_CHECKING:
    from tests.cdk.conftest import Synthesized

pytestmark = pytest.mark.cdk

HANDLER = "handlers.scaler.lambda_handler"
# (acknowledged finding, where) of every accepted cdk-nag finding of the scaler.
EXPECTED_SCALER_ACKNOWLEDGMENTS: Final = {
    ("AwsSolutions::AwsSolutions-IAM5[Resource::*]", "Lbcp/Scaler/Function/Role/DefaultPolicy"),
    ("AwsSolutions::AwsSolutions-L1", "Lbcp/Scaler/Function/Function"),
}
# Everything the scaler may do. A change here is a security review.
EXPECTED_SCALER_ACTIONS = {
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "dynamodb:GetItem",
    "dynamodb:UpdateItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:BatchGetItem",
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _ref_id(value: Any) -> str:
    assert isinstance(value, dict), value
    return str(value["Ref"]) if "Ref" in value else str(value["Fn::GetAtt"][0])


def _scaler(synthesized: Synthesized) -> tuple[str, dict[str, Any]]:
    (found,) = (
        (logical_id, function)
        for logical_id, function in synthesized.resources("AWS::Lambda::Function").items()
        if function["Properties"]["Handler"] == HANDLER
    )
    return found


def _role_policies(synthesized: Synthesized, role_id: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: policy
        for logical_id, policy in synthesized.resources("AWS::IAM::Policy").items()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
    }


def _statements(synthesized: Synthesized) -> list[dict[str, Any]]:
    role_id = _ref_id(_scaler(synthesized)[1]["Properties"]["Role"])
    return [
        statement
        for policy in _role_policies(synthesized, role_id).values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_scaler_function_settings(synthesized: Synthesized) -> None:
    props = _scaler(synthesized)[1]["Properties"]
    table_id, _ = synthesized.only("AWS::DynamoDB::Table")
    assert props["Runtime"] == "python3.13"
    assert props["Architectures"] == ["arm64"]
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["Timeout"] == 50  # ends before the next minute's run starts
    assert props["Environment"]["Variables"] == {
        ENV_TABLE_NAME: {"Ref": table_id},
        ENV_EVENT_RETENTION_DAYS: "30",
        "POWERTOOLS_SERVICE_NAME": "lbcp-scaler",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "PYDANTIC_DISABLE_PLUGINS": "__all__",
    }
    layer_id, _ = synthesized.only("AWS::Lambda::LayerVersion")
    assert props["Layers"] == [{"Ref": layer_id}]
    log_group = synthesized.template["Resources"][_ref_id(props["LoggingConfig"]["LogGroup"])]
    assert log_group["Properties"]["RetentionInDays"] == synthesized.context["lbcp:logRetentionDays"]


def test_scaler_runs_every_minute_without_late_retries(synthesized: Synthesized) -> None:
    function_id, _ = _scaler(synthesized)
    rules = [
        rule
        for rule in synthesized.resources("AWS::Events::Rule").values()
        if any(_ref_id(target["Arn"]) == function_id for target in rule["Properties"].get("Targets", []))
    ]
    assert len(rules) == 1
    props = rules[0]["Properties"]
    assert props["ScheduleExpression"] == "rate(1 minute)"
    assert props["State"] == "ENABLED"
    (target,) = props["Targets"]
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 60, "MaximumRetryAttempts": 0}
    permissions = [
        permission["Properties"]
        for permission in synthesized.resources("AWS::Lambda::Permission").values()
        if _ref_id(permission["Properties"]["FunctionName"]) == function_id
    ]
    assert permissions == [
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [function_id, "Arn"]},
            "Principal": "events.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": [next(iter(_rule_ids(synthesized, function_id))), "Arn"]},
        }
    ]


def _rule_ids(synthesized: Synthesized, function_id: str) -> list[str]:
    return [
        logical_id
        for logical_id, rule in synthesized.resources("AWS::Events::Rule").items()
        if any(_ref_id(target["Arn"]) == function_id for target in rule["Properties"].get("Targets", []))
    ]


def test_scaler_permissions_are_exactly_the_expected_ones(synthesized: Synthesized) -> None:
    statements = _statements(synthesized)
    assert all(statement["Effect"] == "Allow" for statement in statements)
    actions = {action for statement in statements for action in _as_list(statement["Action"])}
    assert actions == EXPECTED_SCALER_ACTIONS
    assert not any("*" in action for action in actions)


def test_scaler_table_access_is_item_level_and_queries_only_the_index_and_the_table(synthesized: Synthesized) -> None:
    table_id, _ = synthesized.only("AWS::DynamoDB::Table")
    table_arn = {"Fn::GetAtt": [table_id, "Arn"]}
    index_arn = {"Fn::Join": ["", [table_arn, f"/index/{GSI_BY_KIND}"]]}
    granted: dict[str, list[str]] = {}
    for statement in _statements(synthesized):
        for action in _as_list(statement["Action"]):
            if action.startswith("dynamodb:"):
                granted.setdefault(action, []).extend(json.dumps(r) for r in _as_list(statement["Resource"]))
    assert granted == {
        "dynamodb:GetItem": [json.dumps(table_arn)],
        "dynamodb:UpdateItem": [json.dumps(table_arn)],
        "dynamodb:PutItem": [json.dumps(table_arn)],
        # Listing load balancers (the index), and the LBVM records with the agents' metrics (the table).
        "dynamodb:Query": [json.dumps(index_arn), json.dumps(table_arn)],
        # The scalers' memory items, 100 a call.
        "dynamodb:BatchGetItem": [json.dumps(table_arn)],
    }


def test_only_xray_has_resource_star_and_no_metric_is_read_from_cloudwatch(synthesized: Synthesized) -> None:
    for statement in _statements(synthesized):
        if "*" in _as_list(statement["Resource"]):
            assert set(_as_list(statement["Action"])) <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
    assert not [s for s in _statements(synthesized) if "cloudwatch:GetMetricData" in _as_list(s["Action"])]


def test_scaler_passes_cdk_nag_with_exactly_the_expected_acknowledgments(synthesized: Synthesized) -> None:
    assert synthesized.passes_nag("Lbcp/Scaler/") == EXPECTED_SCALER_ACKNOWLEDGMENTS


def test_the_only_wildcard_acknowledged_is_x_rays(synthesized: Synthesized) -> None:
    suppressed = {
        s["acknowledgedAt"]: s["reason"]
        for s in synthesized.nag_acknowledgments("Lbcp/Scaler/")
        if s["acknowledgedId"] == "AwsSolutions::AwsSolutions-IAM5[Resource::*]"
    }
    assert set(suppressed) == {"Lbcp/Scaler/Function/Role/DefaultPolicy"}
    assert "X-Ray" in suppressed["Lbcp/Scaler/Function/Role/DefaultPolicy"]


def test_scaler_function_waits_for_its_policies(synthesized: Synthesized) -> None:
    _, function = _scaler(synthesized)
    role_id = _ref_id(function["Properties"]["Role"])
    assert set(function["DependsOn"]) == set(_role_policies(synthesized, role_id))
