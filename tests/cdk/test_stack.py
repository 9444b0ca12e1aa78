"""The synthesized ``Lbcp`` stack: schema, function, API, IAM, cdk-nag, cfn-lint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from lbcp.dal.schema import GSI_BY_KIND, TTL_ATTRIBUTE, create_table_request
from lbcp.settings import (
    ENV_CONSISTENCY_FUNCTION,
    ENV_EVENT_RETENTION_DAYS,
    ENV_IDEMPOTENCY_TTL_SECONDS,
    ENV_TABLE_NAME,
)
from stacks import bundling
from stacks.config import (
    CTX_API_THROTTLING_BURST_LIMIT,
    CTX_API_THROTTLING_RATE_LIMIT,
    CTX_EVENT_RETENTION_DAYS,
    CTX_IDEMPOTENCY_TTL_SECONDS,
    CTX_LOG_RETENTION_DAYS,
    CTX_RECONCILE_SHARD_SIZE,
    CTX_RECONCILE_WORKER_CONCURRENCY,
)
from tests.cdk.test_agent_endpoint import EXPECTED_AGENT_ENDPOINT_ACKNOWLEDGMENTS
from tests.cdk.test_consistency_stack import EXPECTED_CONSISTENCY_ACKNOWLEDGMENTS
from tests.cdk.test_fleet_stack import EXPECTED_FLEET_ACKNOWLEDGMENTS
from tests.cdk.test_reconciler_stack import EXPECTED_RECONCILER_ACKNOWLEDGMENTS
from tests.cdk.test_scaler_stack import EXPECTED_SCALER_ACKNOWLEDGMENTS

if TYPE_CHECKING:
    from tests.cdk.conftest import Synthesized

pytestmark = pytest.mark.cdk

EXPECTED_ROUTE_KEYS = {
    "GET /v1/load-balancers",
    "POST /v1/load-balancers",
    "GET /v1/load-balancers/{id}",
    "PATCH /v1/load-balancers/{id}",
    "DELETE /v1/load-balancers/{id}",
    "GET /v1/load-balancers/{id}/events",
    "GET /v1/load-balancers/{id}/lbvms/{lbvmId}",
    "GET /v1/load-balancers/{id}/plan",
    "GET /v1/openapi.json",
    "POST /v1/load-balancers/{id}/warm",
    "GET /v1/consistency",
    "POST /v1/consistency/sweep",
    "GET /v1/consistency/audit",
    "POST /v1/load-balancers/{id}/rollout/pause",
    "POST /v1/load-balancers/{id}/rollout/resume",
    "POST /v1/load-balancers/{id}/rollout/abort",
    "GET /v1/load-balancers/{id}/rollouts",
    "$default",
}
# The agents' routes as LBVMs launched before the agent endpoint call them: to the agent endpoint's function.
EXPECTED_LEGACY_AGENT_ROUTE_KEYS = {"GET /v1/agent/config", "POST /v1/agent/heartbeat"}

# Everything the API function may do. A change here is a security review.
EXPECTED_API_ACTIONS = {
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:ConditionCheckItem",
    "ec2:DescribeVpcs",
    "ec2:DescribeSubnets",
    "ec2:DescribeImages",
    "acm:DescribeCertificate",
    # The plan preview observes the fleet as the reconciler does (reads only).
    "ec2:DescribeInstances",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeTags",
    # On-demand checks and sweeps run in the consistency function, not in the API.
    "lambda:InvokeFunction",
}

# (acknowledged finding, construct it is acknowledged on) of the API function's accepted cdk-nag findings.
EXPECTED_API_ACKNOWLEDGMENTS = {
    ("AwsSolutions::AwsSolutions-IAM5[Resource::*]", "Lbcp/ApiFunction/Role/DefaultPolicy"),
    ("AwsSolutions::AwsSolutions-IAM5[Resource::*]", "Lbcp/ApiFunction/DescribeNetworkPolicy"),
    # The plan preview's EC2 and ELBv2 Describe reads (they accept only Resource "*").
    ("AwsSolutions::AwsSolutions-IAM5[Resource::*]", "Lbcp/ApiFunction/ObserveFleetPolicy"),
    (
        "AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:acm:<AWS::Region>"
        ":<AWS::AccountId>:certificate/*]",
        "Lbcp/ApiFunction/Role/DefaultPolicy",
    ),
    ("AwsSolutions::AwsSolutions-L1", "Lbcp/ApiFunction/Function"),
}
# Every accepted finding of the stack: the API's and those of each part (each tested in its own module).
EXPECTED_ACKNOWLEDGMENTS = (
    EXPECTED_API_ACKNOWLEDGMENTS
    | EXPECTED_AGENT_ENDPOINT_ACKNOWLEDGMENTS
    | EXPECTED_SCALER_ACKNOWLEDGMENTS
    | EXPECTED_FLEET_ACKNOWLEDGMENTS
    | EXPECTED_RECONCILER_ACKNOWLEDGMENTS
    | EXPECTED_CONSISTENCY_ACKNOWLEDGMENTS
)

CERTIFICATE_ARN = {
    "Fn::Join": [
        "",
        [
            "arn:",
            {"Ref": "AWS::Partition"},
            ":acm:",
            {"Ref": "AWS::Region"},
            ":",
            {"Ref": "AWS::AccountId"},
            ":certificate/*",
        ],
    ]
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _ref_id(value: Any) -> str:
    """The logical id in ``{"Ref": id}`` or ``{"Fn::GetAtt": [id, attr]}``."""
    assert isinstance(value, dict), value
    if "Ref" in value:
        return str(value["Ref"])
    return str(value["Fn::GetAtt"][0])


def _statements(synthesized: Synthesized) -> list[tuple[str, dict[str, Any]]]:
    """(owner, statement) for every IAM policy in the template, inline role policies included."""
    found: list[tuple[str, dict[str, Any]]] = []
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for logical_id, resource in synthesized.resources(kind).items():
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                found.append((logical_id, statement))
    for logical_id, role in synthesized.resources("AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                found.append((f"{logical_id}/{policy['PolicyName']}", statement))
    return found


def _policies_of_role(synthesized: Synthesized, role_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (logical_id, resource)
        for logical_id, resource in synthesized.resources("AWS::IAM::Policy").items()
        if {"Ref": role_id} in resource["Properties"]["Roles"]
    ]


def _api_statements(synthesized: Synthesized) -> list[tuple[str, dict[str, Any]]]:
    """The statements of the API function's role (other functions have tests of their own)."""
    role_id = _ref_id(_api_function(synthesized)["Properties"]["Role"])
    return [
        (logical_id, statement)
        for logical_id, policy in _policies_of_role(synthesized, role_id)
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _api_function_with_id(synthesized: Synthesized) -> tuple[str, dict[str, Any]]:
    functions = synthesized.resources("AWS::Lambda::Function")
    (found,) = (
        (logical_id, function)
        for logical_id, function in functions.items()
        if function["Properties"]["Handler"] == "handlers.api.lambda_handler"
    )
    return found


def _api_function(synthesized: Synthesized) -> dict[str, Any]:
    return _api_function_with_id(synthesized)[1]


# --- DynamoDB -------------------------------------------------------------------------------------


def test_table_matches_the_schema_module(synthesized: Synthesized) -> None:
    _, table = synthesized.only("AWS::DynamoDB::Table")
    props = table["Properties"]
    expected = create_table_request("unused")

    def by_name(items: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
        return {item[key]: item for item in items}

    assert by_name(props["AttributeDefinitions"], "AttributeName") == by_name(
        expected["AttributeDefinitions"], "AttributeName"
    )
    assert props["KeySchema"] == expected["KeySchema"]
    assert props["BillingMode"] == expected["BillingMode"] == "PAY_PER_REQUEST"
    assert by_name(props["GlobalSecondaryIndexes"], "IndexName") == by_name(
        expected["GlobalSecondaryIndexes"], "IndexName"
    )
    assert GSI_BY_KIND in by_name(props["GlobalSecondaryIndexes"], "IndexName")
    assert (
        props["StreamSpecification"]["StreamViewType"]
        == expected["StreamSpecification"]["StreamViewType"]
        == "NEW_AND_OLD_IMAGES"
    )


def test_table_is_protected_and_expires_items(synthesized: Synthesized) -> None:
    _, table = synthesized.only("AWS::DynamoDB::Table")
    props = table["Properties"]
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["DeletionProtectionEnabled"] is True
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"
    assert props["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert "TableName" not in props  # generated: two stacks in one account cannot clash


# --- Lambda ---------------------------------------------------------------------------------------


def test_api_function_runtime_and_settings(synthesized: Synthesized) -> None:
    props = _api_function(synthesized)["Properties"]
    assert props["Runtime"] == "python3.13"
    assert props["Architectures"] == ["arm64"]
    assert props["Handler"] == "handlers.api.lambda_handler"
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["MemorySize"] == 512
    assert props["Timeout"] == 10
    assert "ReservedConcurrentExecutions" not in props


def test_api_function_environment(synthesized: Synthesized) -> None:
    props = _api_function(synthesized)["Properties"]
    table_id, _ = synthesized.only("AWS::DynamoDB::Table")
    (consistency_id,) = (
        logical_id
        for logical_id, function in synthesized.resources("AWS::Lambda::Function").items()
        if function["Properties"]["Handler"] == "handlers.consistency.lambda_handler"
    )
    assert props["Environment"]["Variables"] == {
        ENV_TABLE_NAME: {"Ref": table_id},
        "POWERTOOLS_SERVICE_NAME": "lbcp-api",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "POWERTOOLS_METRICS_NAMESPACE": "lbcp",
        "PYDANTIC_DISABLE_PLUGINS": "__all__",
        ENV_EVENT_RETENTION_DAYS: "30",
        ENV_IDEMPOTENCY_TTL_SECONDS: "86400",
        # By name: the API invokes the consistency checker for dry runs and sweeps.
        ENV_CONSISTENCY_FUNCTION: {"Ref": consistency_id},
    }
    assert synthesized.context[CTX_EVENT_RETENTION_DAYS] == 30
    assert synthesized.context[CTX_IDEMPOTENCY_TTL_SECONDS] == 86400


def test_api_function_logs_to_its_own_group_with_retention(synthesized: Synthesized) -> None:
    props = _api_function(synthesized)["Properties"]
    log_group_id = _ref_id(props["LoggingConfig"]["LogGroup"])
    log_group = synthesized.template["Resources"][log_group_id]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["RetentionInDays"] == synthesized.context[CTX_LOG_RETENTION_DAYS]


def test_api_function_uses_the_dependency_layer(synthesized: Synthesized) -> None:
    props = _api_function(synthesized)["Properties"]
    layer_id, layer = synthesized.only("AWS::Lambda::LayerVersion")
    assert props["Layers"] == [{"Ref": layer_id}]
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Properties"]["Content"]["S3Key"].endswith(".zip")


def test_api_function_depends_on_its_policies_not_its_role(synthesized: Synthesized) -> None:
    function = _api_function(synthesized)
    role_id = _ref_id(function["Properties"]["Role"])
    policy_ids = {logical_id for logical_id, _ in _policies_of_role(synthesized, role_id)}
    assert len(policy_ids) == 3  # the default one, and the two Resource "*" ones apart
    # The role is already ordered by the GetAtt (cfn-lint W3005 otherwise).
    assert set(function["DependsOn"]) == policy_ids


def test_code_asset_holds_only_the_code(synthesized: Synthesized) -> None:
    s3_key = _api_function(synthesized)["Properties"]["Code"]["S3Key"]
    asset_dir = synthesized.assembly_dir / f"asset.{s3_key.removesuffix('.zip')}"
    files = {path.relative_to(asset_dir).as_posix() for path in asset_dir.rglob("*") if path.is_file()}
    assert any(name.startswith("lbcp/") for name in files)
    assert any(name.startswith("handlers/") for name in files)
    unwanted = [
        name
        for name in files
        if "__pycache__" in name
        or name.endswith(".pyc")
        or Path(name).name.startswith("requirements")
        or "/tests/" in f"/{name}"
    ]
    assert unwanted == []


# --- HTTP API -------------------------------------------------------------------------------------


def test_every_route_requires_iam_and_the_route_set_is_exact(synthesized: Synthesized) -> None:
    routes = synthesized.resources("AWS::ApiGatewayV2::Route")
    expected = EXPECTED_ROUTE_KEYS | EXPECTED_LEGACY_AGENT_ROUTE_KEYS
    assert {route["Properties"]["RouteKey"] for route in routes.values()} == expected
    assert len(routes) == len(expected)
    for logical_id, route in routes.items():
        assert route["Properties"]["AuthorizationType"] == "AWS_IAM", logical_id


def test_every_route_proxies_to_the_api_function_but_the_legacy_agent_routes(synthesized: Synthesized) -> None:
    integrations = synthesized.resources("AWS::ApiGatewayV2::Integration")
    assert len(integrations) == 2
    function_id, _ = _api_function_with_id(synthesized)
    agent_id = next(
        logical_id
        for logical_id, function in synthesized.resources("AWS::Lambda::Function").items()
        if function["Properties"].get("Handler") == "handlers.agent_api.lambda_handler"
    )
    target_of = {}
    for integration_id, integration in integrations.items():
        props = integration["Properties"]
        assert props["IntegrationType"] == "AWS_PROXY"
        assert props["PayloadFormatVersion"] == "2.0"
        target_of[_ref_id(props["IntegrationUri"])] = {"Fn::Join": ["", ["integrations/", {"Ref": integration_id}]]}
    assert set(target_of) == {function_id, agent_id}
    for route in synthesized.resources("AWS::ApiGatewayV2::Route").values():
        key = route["Properties"]["RouteKey"]
        expected = target_of[agent_id if key in EXPECTED_LEGACY_AGENT_ROUTE_KEYS else function_id]
        assert route["Properties"]["Target"] == expected, key


def test_stage_has_access_logs_and_throttling(synthesized: Synthesized) -> None:
    _, stage = synthesized.only("AWS::ApiGatewayV2::Stage")
    props = stage["Properties"]
    assert props["StageName"] == "$default"
    assert props["AutoDeploy"] is True
    assert props["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": synthesized.context[CTX_API_THROTTLING_RATE_LIMIT],
        "ThrottlingBurstLimit": synthesized.context[CTX_API_THROTTLING_BURST_LIMIT],
    }
    log_group = synthesized.template["Resources"][_ref_id(props["AccessLogSettings"]["DestinationArn"])]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["RetentionInDays"] == synthesized.context[CTX_LOG_RETENTION_DAYS]
    log_format = json.loads(props["AccessLogSettings"]["Format"])
    assert {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "requestTime": "$context.requestTime",
        "httpMethod": "$context.httpMethod",
        "routeKey": "$context.routeKey",
        "status": "$context.status",
        "protocol": "$context.protocol",
        "responseLength": "$context.responseLength",
        "integrationError": "$context.integrationErrorMessage",
        "caller": "$context.identity.caller",
        "userArn": "$context.identity.userArn",
    }.items() <= log_format.items()


def test_outputs(synthesized: Synthesized) -> None:
    outputs = synthesized.template["Outputs"]
    assert {"ApiUrl", "AgentEndpointUrl", "TableName"} <= outputs.keys()
    url_id, _ = synthesized.only("AWS::Lambda::Url")
    assert outputs["AgentEndpointUrl"]["Value"] == {"Fn::GetAtt": [url_id, "FunctionUrl"]}
    table_id, _ = synthesized.only("AWS::DynamoDB::Table")
    assert outputs["TableName"]["Value"] == {"Ref": table_id}
    api_id, _ = synthesized.only("AWS::ApiGatewayV2::Api")
    assert {"Ref": api_id} in outputs["ApiUrl"]["Value"]["Fn::Join"][1]


# --- IAM ------------------------------------------------------------------------------------------


def test_no_iam_action_contains_a_wildcard(synthesized: Synthesized) -> None:
    statements = _statements(synthesized)
    assert statements
    wildcards = [
        (owner, action)
        for owner, statement in statements
        for action in _as_list(statement.get("Action", []))
        if "*" in action
    ]
    assert wildcards == []
    assert all("NotAction" not in statement for _, statement in statements)


def test_roles_have_no_managed_policies(synthesized: Synthesized) -> None:
    roles = synthesized.resources("AWS::IAM::Role")
    assert roles
    for logical_id, role in roles.items():
        assert not role["Properties"].get("ManagedPolicyArns"), logical_id


def test_api_function_permissions_are_exactly_the_expected_ones(synthesized: Synthesized) -> None:
    role_id = _ref_id(_api_function(synthesized)["Properties"]["Role"])
    role = synthesized.template["Resources"][role_id]
    assert "Policies" not in role["Properties"]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}
    ]
    statements = [
        statement
        for _, policy in _policies_of_role(synthesized, role_id)
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert all(statement["Effect"] == "Allow" for statement in statements)
    actions = {action for statement in statements for action in _as_list(statement["Action"])}
    assert actions == EXPECTED_API_ACTIONS
    # Resource "*" only where the service offers nothing narrower: X-Ray, EC2 Describe* and, for the plan
    # preview, ELBv2 Describe* (they accept only "*"; every other ELBv2 action is absent from this role).
    for statement in statements:
        if "*" in _as_list(statement["Resource"]):
            actions_here = _as_list(statement["Action"])
            assert {a.split(":")[0] for a in actions_here} <= {"xray", "ec2", "elasticloadbalancing"}, statement
            assert all(a.startswith("elasticloadbalancing:Describe") for a in actions_here if "elastic" in a)


def test_acm_permission_is_scoped_to_certificates(synthesized: Synthesized) -> None:
    acm = [
        statement
        for _, statement in _api_statements(synthesized)
        if any(action.startswith("acm:") for action in _as_list(statement["Action"]))
    ]
    assert len(acm) == 1
    assert _as_list(acm[0]["Action"]) == ["acm:DescribeCertificate"]
    assert acm[0]["Resource"] == CERTIFICATE_ARN


def test_table_permissions_are_item_level_on_the_table_and_its_index(synthesized: Synthesized) -> None:
    table_id, _ = synthesized.only("AWS::DynamoDB::Table")
    table_arn = {"Fn::GetAtt": [table_id, "Arn"]}
    index_arn = {"Fn::Join": ["", [table_arn, f"/index/{GSI_BY_KIND}"]]}
    granted: dict[str, list[Any]] = {}
    for _, statement in _api_statements(synthesized):
        for action in _as_list(statement["Action"]):
            if action.startswith("dynamodb:"):
                granted.setdefault(action, []).extend(_as_list(statement["Resource"]))
    assert set(granted) == {a for a in EXPECTED_API_ACTIONS if a.startswith("dynamodb:")}
    for action, resources in granted.items():
        expected = [table_arn, index_arn] if action == "dynamodb:Query" else [table_arn]
        assert sorted(map(json.dumps, resources)) == sorted(map(json.dumps, expected)), action


def test_log_permissions_are_scoped_to_the_function_log_group(synthesized: Synthesized) -> None:
    log_group_id = _ref_id(_api_function(synthesized)["Properties"]["LoggingConfig"]["LogGroup"])
    logs = [
        statement
        for _, statement in _api_statements(synthesized)
        if any(action.startswith("logs:") for action in _as_list(statement["Action"]))
    ]
    assert len(logs) == 1
    assert sorted(_as_list(logs[0]["Action"])) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert logs[0]["Resource"] == {"Fn::GetAtt": [log_group_id, "Arn"]}


# --- cdk-nag --------------------------------------------------------------------------------------


def test_cdk_nag_ran_and_reports_no_unacknowledged_finding(synthesized: Synthesized) -> None:
    # The synth in the fixture would have raised on any finding; check the report too.
    reports = {report["pluginName"]: report for report in synthesized.validation_report["pluginReports"]}
    assert "AwsSolutions" in reports
    assert reports["AwsSolutions"]["conclusion"] == "success"
    assert reports["AwsSolutions"]["violations"] == []


def test_api_passes_cdk_nag_with_exactly_the_expected_acknowledgments(synthesized: Synthesized) -> None:
    assert synthesized.passes_nag("Lbcp/ApiFunction/", "Lbcp/Api/") == EXPECTED_API_ACKNOWLEDGMENTS


def test_acknowledged_findings_are_exactly_the_expected_ones(synthesized: Synthesized) -> None:
    suppressed = synthesized.nag_report["suppressedViolations"]
    assert {(s["acknowledgedId"], s["acknowledgedAt"]) for s in suppressed} == EXPECTED_ACKNOWLEDGMENTS
    assert len(suppressed) == len(EXPECTED_ACKNOWLEDGMENTS)
    assert all(len(s["reason"].strip()) > 40 for s in suppressed)


def test_acknowledgments_are_recorded_in_the_template(synthesized: Synthesized) -> None:
    recorded: set[tuple[str, str]] = set()
    for resource in synthesized.template["Resources"].values():
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            assert rule["reason"].strip()
            recorded.add((rule["id"], resource["Type"]))
    assert recorded == {
        ("AwsSolutions::AwsSolutions-IAM5[Resource::*]", "AWS::IAM::Policy"),
        (next(iter(a for a, _ in EXPECTED_ACKNOWLEDGMENTS if "acm" in a)), "AWS::IAM::Policy"),
        ("AwsSolutions::AwsSolutions-L1", "AWS::Lambda::Function"),
        # Acknowledgments reach the children of the construct they are made on: the
        # function's stream mapping, the agent endpoint function's URL, the queue's SSL-only policy.
        ("AwsSolutions::AwsSolutions-L1", "AWS::Lambda::EventSourceMapping"),
        ("AwsSolutions::AwsSolutions-L1", "AWS::Lambda::Url"),
        ("AwsSolutions::AwsSolutions-SQS3", "AWS::SQS::Queue"),
        ("AwsSolutions::AwsSolutions-SQS3", "AWS::SQS::QueuePolicy"),
    } | {(rule, "AWS::IAM::Policy") for rule, _ in EXPECTED_ACKNOWLEDGMENTS if "IAM5" in rule}


def test_cdk_nag_fails_the_synth_on_an_unacknowledged_finding(tmp_path: Path) -> None:
    """The wiring itself: a finding nobody acknowledged must stop the synth."""
    from aws_cdk import App, Stack
    from aws_cdk import aws_iam as iam

    from stacks.nag import add_nag_checks

    app = App(outdir=str(tmp_path), builtin_cloud_formation_validation=False)
    stack = Stack(app, "Wildcard")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=["*"]))
    add_nag_checks(app)
    with pytest.raises(RuntimeError, match=r"(?s)ValidationFailed.*AwsSolutions-IAM5\[Resource::\*\]"):
        app.synth()


# --- cfn-lint -------------------------------------------------------------------------------------


def test_cfn_lint_reports_nothing(synthesized: Synthesized) -> None:
    from cfnlint.api import ManualArgs, lint

    matches = lint(
        json.dumps(synthesized.template),
        config=ManualArgs(regions=["eu-west-1", "us-east-1"]),
    )
    # Errors and warnings alike: `make synth` runs the cfn-lint CLI, which fails on both.
    assert [f"{m.rule.id} {m.message} ({'/'.join(map(str, m.path))})" for m in matches] == []


# --- bundling and configuration (no synth) --------------------------------------------------------


def test_pip_targets_lambda_arm64_python_313() -> None:
    command = bundling.pip_install_command(Path("req.txt"), Path("/out/python"))
    joined = " ".join(command)
    assert "--platform manylinux2014_aarch64" in joined
    assert "--only-binary=:all:" in command
    assert "--python-version 3.13" in joined
    assert "--implementation cp" in joined
    assert "--target /out/python" in joined


def test_layer_hash_follows_the_requirements(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pydantic==2.14.3\n")
    first = bundling.requirements_hash(requirements)
    assert bundling.requirements_hash(requirements) == first
    requirements.write_text("pydantic==2.14.4\n")
    assert bundling.requirements_hash(requirements) != first


def test_bundling_fails_loudly_with_pip_output(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("this is not a requirement ===\n")
    bundler = bundling.PipLayerBundler(requirements)
    with pytest.raises(bundling.BundlingError, match=r"(?s)exit \d+.*requirement"):
        bundler.try_bundle(str(tmp_path / "out"))


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        (CTX_LOG_RETENTION_DAYS, 13, "must be one of"),
        (CTX_LOG_RETENTION_DAYS, "soon", "positive integer"),
        (CTX_API_THROTTLING_RATE_LIMIT, 0, "positive integer"),
        (CTX_API_THROTTLING_BURST_LIMIT, True, "positive integer"),
        (CTX_RECONCILE_SHARD_SIZE, 0, "positive integer"),
        (CTX_RECONCILE_WORKER_CONCURRENCY, 1, "between 2 and 1000"),
        (CTX_RECONCILE_WORKER_CONCURRENCY, "1001", "between 2 and 1000"),
    ],
)
def test_bad_context_values_are_rejected(key: str, value: object, error: str) -> None:
    from aws_cdk import App

    from stacks.config import ControlPlaneConfig, load_cdk_json_context

    app = App(context={**load_cdk_json_context(), key: value})
    with pytest.raises(ValueError, match=error):
        ControlPlaneConfig.from_context(app)


def test_context_values_from_the_cli_are_parsed() -> None:
    from aws_cdk import App

    from stacks.config import ControlPlaneConfig, load_cdk_json_context

    # `cdk synth -c lbcp:logRetentionDays=90` passes a string.
    app = App(context={**load_cdk_json_context(), CTX_LOG_RETENTION_DAYS: "90"})
    assert ControlPlaneConfig.from_context(app).log_retention_days == 90
    app = App(context={**load_cdk_json_context(), CTX_RECONCILE_SHARD_SIZE: "20"})
    assert ControlPlaneConfig.from_context(app).reconcile_shard_size == 20


def test_the_stack_routes_are_the_documented_api_routes() -> None:
    # The routes are declared twice (API Gateway, and the handler's OpenAPI
    # document); this keeps the two in step.
    from lbcp.api.openapi import openapi_document
    from stacks.api import ROUTES

    # The agent endpoint's operations (they name it as their server) are not API Gateway routes.
    documented = {
        f"{method.upper()} {path}"
        for path, operations in openapi_document()["paths"].items()
        if "servers" not in operations
        for method in operations
    } | {"GET /v1/openapi.json"}
    assert {f"{method.value} {path}" for method, path in ROUTES} == documented
