"""The fleet machinery in the synthesized stack: state machines from the ASL files, roles, tasks function."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

import pytest

from lbcp import PRODUCT_TAG_KEY
from lbcp.lifecycle.protocol import DRAIN_STATE_MACHINE_FILE, LIFECYCLE_STATE_MACHINE_FILE
from lbcp.settings import ENV_EVENT_RETENTION_DAYS, ENV_TABLE_NAME
from lbcp_local.machinery import definition
from stacks.config import CTX_LOG_RETENTION_DAYS

if TYPE_CHECKING:
    from tests.cdk.conftest import Synthesized

pytestmark = pytest.mark.cdk

TASKS_HANDLER = "handlers.lifecycle_tasks.lambda_handler"
IAM5: Final = "AwsSolutions::AwsSolutions-IAM5[Resource::"
# A resource pattern as cdk-nag renders it in a finding's id.
NAG_ARN: Final = "arn:<AWS::Partition>:{service}:<AWS::Region>:<AWS::AccountId>:{resource}"
NAG_EC2: Final = NAG_ARN.format(service="ec2", resource="{}/*")

# (acknowledged finding, where) of every accepted cdk-nag finding of the fleet machinery (tests/cdk/test_stack.py
# checks the whole stack's set, which includes these).
EXPECTED_FLEET_ACKNOWLEDGMENTS: Final = {
    *(
        (f"{IAM5}*]", f"Lbcp/Fleet/{owner}")
        for owner in (
            "Drain/DescribePolicy",
            "Drain/Role/DefaultPolicy",
            "Lifecycle/DescribePolicy",
            "Lifecycle/Role/DefaultPolicy",
            "LifecycleTasks/DescribePolicy",
            "LifecycleTasks/Role/DefaultPolicy",
        )
    ),
    *(
        (f"{IAM5}{NAG_EC2.format(resource)}]", f"Lbcp/Fleet/{machine}/Role/DefaultPolicy")
        for machine in ("Drain", "Lifecycle")
        for resource in ("instance", "network-interface")
    ),
    *(
        (f"{IAM5}{NAG_EC2.format(resource)}]", "Lbcp/Fleet/Lifecycle/Role/DefaultPolicy")
        for resource in ("security-group", "subnet", "volume")
    ),
    (f"{IAM5}arn:<AWS::Partition>:ec2:<AWS::Region>::image/*]", "Lbcp/Fleet/Lifecycle/Role/DefaultPolicy"),
    (
        f"{IAM5}{NAG_ARN.format(service='states', resource='execution:Lbcp-lbvm-drain:*')}]",
        "Lbcp/Fleet/Lifecycle/Role/DefaultPolicy",
    ),
    (
        f"{IAM5}{NAG_ARN.format(service='elasticloadbalancing', resource='targetgroup/lbcp-*/*')}]",
        "Lbcp/Fleet/LifecycleTasks/Role/DefaultPolicy",
    ),
    ("AwsSolutions::AwsSolutions-L1", "Lbcp/Fleet/LifecycleTasks/Function"),
    (
        f"{IAM5}{NAG_ARN.format(service='acm', resource='certificate/*')}]",
        "Lbcp/Fleet/LbvmInstanceRole/AgentPolicy",
    ),
    # The agents' routes on the HTTP API, for LBVMs launched before the agent endpoint: any stage.
    *(
        (
            f"{IAM5}{NAG_ARN.format(service='execute-api', resource='<ApiHttpApi4C294DC0>/*/' + route)}]",
            "Lbcp/Fleet/LbvmInstanceRole/AgentPolicy",
        )
        for route in ("GET/v1/agent/config", "POST/v1/agent/heartbeat")
    ),
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _state_machines(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    return {
        resource["Properties"]["StateMachineName"]: resource
        for resource in synthesized.resources("AWS::StepFunctions::StateMachine").values()
    }


def _role_statements(synthesized: Synthesized, role: Any) -> list[dict[str, Any]]:
    role_id = role["Fn::GetAtt"][0] if isinstance(role, dict) and "Fn::GetAtt" in role else role
    return [
        statement
        for policy in synthesized.resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    return {action for statement in statements for action in _as_list(statement["Action"])}


def _by_action(statements: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [statement for statement in statements if action in _as_list(statement["Action"])]


def _tasks_function(synthesized: Synthesized) -> dict[str, Any]:
    (function,) = (
        resource
        for resource in synthesized.resources("AWS::Lambda::Function").values()
        if resource["Properties"]["Handler"] == TASKS_HANDLER
    )
    return function


# --- state machines ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "file_name"),
    [("Lbcp-lbvm-lifecycle", LIFECYCLE_STATE_MACHINE_FILE), ("Lbcp-lbvm-drain", DRAIN_STATE_MACHINE_FILE)],
)
def test_state_machines_are_the_asl_files_inline(synthesized: Synthesized, name: str, file_name: str) -> None:
    machine = _state_machines(synthesized)[name]
    props = machine["Properties"]
    assert props["StateMachineType"] == "STANDARD"
    # Inline (cfn-lint validates it), and exactly the file: no substitutions.
    assert json.loads(props["DefinitionString"]) == json.loads(definition(file_name))
    assert props["TracingConfiguration"] == {"Enabled": True}
    logging = props["LoggingConfiguration"]
    assert logging["Level"] == "ALL" and logging["IncludeExecutionData"] is True
    log_group_id = logging["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    log_group = synthesized.template["Resources"][log_group_id]
    assert log_group["Properties"]["RetentionInDays"] == synthesized.context[CTX_LOG_RETENTION_DAYS]


def test_lifecycle_role_can_do_exactly_what_its_states_do(synthesized: Synthesized) -> None:
    machine = _state_machines(synthesized)["Lbcp-lbvm-lifecycle"]
    statements = _role_statements(synthesized, machine["Properties"]["RoleArn"])
    own = {
        "lambda:InvokeFunction",
        "dynamodb:UpdateItem",
        "ec2:DescribeInstances",
        "ec2:DescribeNetworkInterfaces",
        "ec2:CreateNetworkInterface",
        "ec2:RunInstances",
        "ec2:CreateTags",
        "iam:PassRole",
        "states:StartExecution",
        "states:DescribeExecution",
        "states:StopExecution",
        "events:PutTargets",
        "events:PutRule",
        "events:DescribeRule",
    }
    assert _actions(statements) - own <= {a for a in _actions(statements) if a.split(":")[0] in ("logs", "xray")}
    assert own <= _actions(statements)
    # Creates are fenced by the owner tag on the request, launches onto our own interfaces only.
    tagged = [s for s in _by_action(statements, "ec2:RunInstances") if "Condition" in s]
    assert {json.dumps(s["Condition"], sort_keys=True) for s in tagged} == {
        json.dumps({"StringEquals": {f"aws:RequestTag/{PRODUCT_TAG_KEY}": "lbcp"}}),
        json.dumps({"StringEquals": {f"ec2:ResourceTag/{PRODUCT_TAG_KEY}": "lbcp"}}),
    }
    (create_tags,) = _by_action(statements, "ec2:CreateTags")
    tag_on_create = {"StringEquals": {"ec2:CreateAction": ["RunInstances", "CreateNetworkInterface"]}}
    assert create_tags["Condition"] == tag_on_create
    (pass_role,) = _by_action(statements, "iam:PassRole")
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
    (events_rule,) = _by_action(statements, "events:PutRule")
    assert "StepFunctionsGetEventsForStepFunctionsExecutionRule" in json.dumps(events_rule["Resource"])


def test_drain_role_deletes_only_what_carries_the_owner_tag(synthesized: Synthesized) -> None:
    machine = _state_machines(synthesized)["Lbcp-lbvm-drain"]
    statements = _role_statements(synthesized, machine["Properties"]["RoleArn"])
    assert {a for a in _actions(statements) if a.split(":")[0] not in ("logs", "xray")} == {
        "lambda:InvokeFunction",
        "dynamodb:GetItem",
        "ec2:DescribeInstances",
        "ec2:DescribeNetworkInterfaces",
        "ec2:TerminateInstances",
        "ec2:DeleteNetworkInterface",
    }
    for action in ("ec2:TerminateInstances", "ec2:DeleteNetworkInterface"):
        (statement,) = _by_action(statements, action)
        assert statement["Condition"] == {"StringEquals": {f"ec2:ResourceTag/{PRODUCT_TAG_KEY}": "lbcp"}}


def test_wildcard_resources_are_only_for_actions_without_resource_level_permissions(synthesized: Synthesized) -> None:
    for machine in _state_machines(synthesized).values():
        for statement in _role_statements(synthesized, machine["Properties"]["RoleArn"]):
            if "*" in _as_list(statement["Resource"]):
                services = {action.split(":")[0] for action in _as_list(statement["Action"])}
                assert services <= {"logs", "xray", "ec2"}, statement
                if "ec2" in services:
                    assert all(a.split(":")[1].startswith("Describe") for a in _as_list(statement["Action"]))


# --- the tasks function -----------------------------------------------------------------


def test_tasks_function_settings_and_permissions(synthesized: Synthesized) -> None:
    function = _tasks_function(synthesized)
    props = function["Properties"]
    table_id, _ = synthesized.only("AWS::DynamoDB::Table")
    variables = props["Environment"]["Variables"]
    assert variables[ENV_TABLE_NAME] == {"Ref": table_id}
    assert variables[ENV_EVENT_RETENTION_DAYS] == "30"
    assert variables["POWERTOOLS_SERVICE_NAME"] == "lbcp-lifecycle"
    assert props["TracingConfig"] == {"Mode": "Active"}
    statements = _role_statements(synthesized, props["Role"])
    assert _actions(statements) == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "states:SendTaskSuccess",
        "elasticloadbalancing:RegisterTargets",
        "elasticloadbalancing:DeregisterTargets",
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeTargetGroups",
        "ec2:DescribeInstances",
    }
    (register,) = _by_action(statements, "elasticloadbalancing:RegisterTargets")
    assert register["Condition"] == {"StringEquals": {f"aws:ResourceTag/{PRODUCT_TAG_KEY}": "lbcp"}}
    (send,) = _by_action(statements, "states:SendTaskSuccess")
    assert "stateMachine:Lbcp-lbvm-lifecycle" in json.dumps(send["Resource"])


def test_only_the_state_machines_invoke_the_tasks_function(synthesized: Synthesized) -> None:
    function_id = next(
        logical_id
        for logical_id, resource in synthesized.resources("AWS::Lambda::Function").items()
        if resource["Properties"]["Handler"] == TASKS_HANDLER
    )
    invokers = [
        statement
        for policy in synthesized.resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "lambda:InvokeFunction" in _as_list(statement["Action"])
        and statement["Resource"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    assert len(invokers) == 2
    assert all(statement["Sid"] == "TasksFunction" for statement in invokers)


# --- the LBVM role ----------------------------------------------------------------------


def test_lbvm_role_and_instance_profile(synthesized: Synthesized) -> None:
    _, profile = synthesized.only("AWS::IAM::InstanceProfile")
    (role_ref,) = profile["Properties"]["Roles"]
    role = synthesized.template["Resources"][role_ref["Ref"]]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "ec2.amazonaws.com"
    }
    statements = _role_statements(synthesized, role_ref["Ref"])
    assert _actions(statements) == {
        "lambda:InvokeFunctionUrl",  # the agent endpoint (tests/cdk/test_agent_endpoint.py)
        "lambda:InvokeFunction",
        "execute-api:Invoke",  # the legacy agent routes, those two only (tests/cdk/test_agent_endpoint.py)
        "acm:ExportCertificate",
        "s3:GetObject",  # the agent artifact, that one object (stacks/agent_artifact.py)
    }
    [download] = [s for s in statements if s["Action"] == "s3:GetObject"]
    assert "*" not in json.dumps(download["Resource"])
    # The agents' metrics ride on their heartbeats: no CloudWatch call, so nothing on Resource "*".
    assert not [s for s in statements if "*" in _as_list(s["Resource"])]
    assert not [a for a in _actions(statements) if a.startswith("cloudwatch:")]


# --- cdk-nag ----------------------------------------------------------------------------


def test_fleet_passes_cdk_nag_with_exactly_the_expected_acknowledgments(synthesized: Synthesized) -> None:
    assert synthesized.passes_nag("Lbcp/Fleet/") == EXPECTED_FLEET_ACKNOWLEDGMENTS
