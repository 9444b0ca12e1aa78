"""The agent endpoint: its function, its IAM-authorized function URL, and who may call it (the LBVM role only)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from lbcp.settings import ENV_AGENT_ENDPOINT, ENV_TABLE_NAME
from stacks.agent_endpoint import AGENT_API_HANDLER
from stacks.reconciler import RECONCILER_HANDLER

if TYPE_CHECKING:
    from tests.cdk.conftest import Synthesized

pytestmark = pytest.mark.cdk

EXPECTED_AGENT_ENDPOINT_ACKNOWLEDGMENTS = {
    ("AwsSolutions::AwsSolutions-IAM5[Resource::*]", "Lbcp/AgentEndpoint/Role/DefaultPolicy"),
    ("AwsSolutions::AwsSolutions-L1", "Lbcp/AgentEndpoint/Function"),
}
# Everything the agent endpoint's function may do. A change here is a security review.
EXPECTED_AGENT_ENDPOINT_ACTIONS = {
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    # The load balancer, its stored config versions and the LBVM records; LBVM updates; events.
    "dynamodb:GetItem",
    "dynamodb:UpdateItem",
    "dynamodb:PutItem",
    # Heartbeats complete and keep alive the lifecycle's callbacks.
    "states:SendTaskSuccess",
    "states:SendTaskHeartbeat",
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _function(synthesized: Synthesized, handler: str) -> tuple[str, dict[str, Any]]:
    (found,) = (
        (logical_id, function)
        for logical_id, function in synthesized.resources("AWS::Lambda::Function").items()
        if function["Properties"]["Handler"] == handler
    )
    return found


def _role_statements(synthesized: Synthesized, role_id: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in synthesized.resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _statements_allowing(synthesized: Synthesized, action: str) -> list[tuple[list[str], dict[str, Any]]]:
    """(the roles of the policy, statement) of every Allow statement with ``action``, in every policy."""
    found = []
    for policy in synthesized.resources("AWS::IAM::Policy").values():
        roles = [role["Ref"] for role in policy["Properties"]["Roles"]]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Allow" and action in _as_list(statement["Action"]):
                found.append((roles, statement))
    return found


def _lbvm_role_id(synthesized: Synthesized) -> str:
    _, profile = synthesized.only("AWS::IAM::InstanceProfile")
    (role,) = profile["Properties"]["Roles"]
    return str(role["Ref"])


def test_the_function_url_requires_iam_auth_and_fronts_the_agent_function(synthesized: Synthesized) -> None:
    function_id, _ = _function(synthesized, AGENT_API_HANDLER)
    _, url = synthesized.only("AWS::Lambda::Url")
    assert url["Properties"]["AuthType"] == "AWS_IAM"
    assert url["Properties"]["TargetFunctionArn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert "Cors" not in url["Properties"]  # no browser calls it


def test_only_the_http_apis_two_legacy_agent_routes_may_invoke_the_agent_function(synthesized: Synthesized) -> None:
    # Same account: the LBVM role's own policy is what lets agents in through the URL. The one resource
    # policy is API Gateway's, for the agents' routes as LBVMs launched before the endpoint call them.
    function_id, _ = _function(synthesized, AGENT_API_HANDLER)
    permissions = [
        permission["Properties"]
        for permission in synthesized.resources("AWS::Lambda::Permission").values()
        if permission["Properties"]["FunctionName"] in ({"Ref": function_id}, {"Fn::GetAtt": [function_id, "Arn"]})
    ]
    assert {(p["Action"], p["Principal"]) for p in permissions} == {
        ("lambda:InvokeFunction", "apigateway.amazonaws.com")
    }
    sources = sorted(json.dumps(p["SourceArn"]) for p in permissions)
    assert len(sources) == 2
    assert sources[0].endswith('"/*/*/v1/agent/config"]]}') and sources[1].endswith('"/*/*/v1/agent/heartbeat"]]}')


def test_the_lbvm_role_may_call_the_agent_function_through_its_iam_url_only(synthesized: Synthesized) -> None:
    function_id, _ = _function(synthesized, AGENT_API_HANDLER)
    function_arn = {"Fn::GetAtt": [function_id, "Arn"]}
    statements = _role_statements(synthesized, _lbvm_role_id(synthesized))
    lambda_statements = [s for s in statements if any(a.startswith("lambda:") for a in _as_list(s["Action"]))]
    assert sorted((s["Action"], s["Resource"] == function_arn, s["Condition"]) for s in lambda_statements) == [
        ("lambda:InvokeFunction", True, {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}),
        ("lambda:InvokeFunctionUrl", True, {"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}}),
    ]


def test_only_the_lbvm_role_may_invoke_the_legacy_agent_routes_and_only_those(synthesized: Synthesized) -> None:
    # LBVMs launched before the agent endpoint call the agents' routes on the HTTP API: an upgrade must
    # not silence them. No other route, and no other role.
    allowing = _statements_allowing(synthesized, "execute-api:Invoke")
    assert [roles for roles, _ in allowing] == [[_lbvm_role_id(synthesized)]]
    (_, statement) = allowing[0]
    assert statement["Action"] == "execute-api:Invoke"
    routes = sorted(json.dumps(resource) for resource in _as_list(statement["Resource"]))
    assert len(routes) == 2
    assert routes[0].endswith('/*/GET/v1/agent/config"]]}') and routes[1].endswith('/*/POST/v1/agent/heartbeat"]]}')


def test_the_agent_function_permissions_are_exactly_the_expected_ones(synthesized: Synthesized) -> None:
    _, function = _function(synthesized, AGENT_API_HANDLER)
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    actions = {a for s in _role_statements(synthesized, role_id) for a in _as_list(s["Action"])}
    assert actions == EXPECTED_AGENT_ENDPOINT_ACTIONS


def test_the_agent_function_reads_the_table_and_names_its_service(synthesized: Synthesized) -> None:
    _, function = _function(synthesized, AGENT_API_HANDLER)
    variables = function["Properties"]["Environment"]["Variables"]
    table_id, _ = synthesized.only("AWS::DynamoDB::Table")
    assert variables[ENV_TABLE_NAME] == {"Ref": table_id}
    assert variables["POWERTOOLS_SERVICE_NAME"] == "lbcp-agent-api"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "lbcp"


def test_the_reconciler_writes_the_function_url_into_user_data(synthesized: Synthesized) -> None:
    url_id, _ = synthesized.only("AWS::Lambda::Url")
    _, reconciler = _function(synthesized, RECONCILER_HANDLER)
    assert reconciler["Properties"]["Environment"]["Variables"][ENV_AGENT_ENDPOINT] == {
        "Fn::GetAtt": [url_id, "FunctionUrl"]
    }


def test_agent_endpoint_passes_cdk_nag_with_exactly_the_expected_acknowledgments(synthesized: Synthesized) -> None:
    assert synthesized.passes_nag("Lbcp/AgentEndpoint/") == EXPECTED_AGENT_ENDPOINT_ACKNOWLEDGMENTS
