"""Every function is built by ``LbcpFunction`` from one ``FunctionContext``: the base settings once, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from lbcp.models.metrics import NAMESPACE
from lbcp.settings import ENV_EVENT_RETENTION_DAYS, ENV_TABLE_NAME

if TYPE_CHECKING:
    from stacks.functions import FunctionContext
    from tests.cdk.conftest import Synthesized

pytestmark = pytest.mark.cdk

SERVICE_NAMES = {
    "handlers.api.lambda_handler": "lbcp-api",
    "handlers.agent_api.lambda_handler": "lbcp-agent-api",
    "handlers.lifecycle_tasks.lambda_handler": "lbcp-lifecycle",
    "handlers.reconciler.lambda_handler": "lbcp-reconciler",
    "handlers.reconcile_worker.lambda_handler": "lbcp-reconciler",
    "handlers.scaler.lambda_handler": "lbcp-scaler",
    "handlers.consistency.lambda_handler": "lbcp-consistency",
}


def _functions(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    """Our functions by handler (CDK adds none of its own to this stack, and none may appear unnoticed)."""
    functions = synthesized.resources("AWS::Lambda::Function")
    by_handler = {function["Properties"]["Handler"]: function for function in functions.values()}
    assert len(by_handler) == len(functions)
    return by_handler


def test_every_function_gets_the_base_environment_and_its_own_service_name(synthesized: Synthesized) -> None:
    functions = _functions(synthesized)
    assert set(functions) == set(SERVICE_NAMES)
    table_id, _ = synthesized.only("AWS::DynamoDB::Table")
    base = {
        ENV_TABLE_NAME: {"Ref": table_id},
        ENV_EVENT_RETENTION_DAYS: str(synthesized.context["lbcp:eventRetentionDays"]),
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "PYDANTIC_DISABLE_PLUGINS": "__all__",
    }
    for handler, function in functions.items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert base.items() <= variables.items(), handler
        assert variables["POWERTOOLS_SERVICE_NAME"] == SERVICE_NAMES[handler]


def test_every_function_shares_runtime_tracing_layer_and_log_retention(synthesized: Synthesized) -> None:
    layer_id, _ = synthesized.only("AWS::Lambda::LayerVersion")
    code_keys = set()
    for handler, function in _functions(synthesized).items():
        props = function["Properties"]
        assert props["Runtime"] == "python3.13", handler
        assert props["Architectures"] == ["arm64"], handler
        assert props["TracingConfig"] == {"Mode": "Active"}, handler
        assert props["Layers"] == [{"Ref": layer_id}], handler
        code_keys.add(props["Code"]["S3Key"])
        log_group = synthesized.template["Resources"][props["LoggingConfig"]["LogGroup"]["Ref"]]
        assert log_group["Properties"]["RetentionInDays"] == synthesized.context["lbcp:logRetentionDays"], handler
    assert len(code_keys) == 1  # one code asset for all of them


def test_the_api_publishes_metrics_in_the_applications_namespace(synthesized: Synthesized) -> None:
    variables = _functions(synthesized)["handlers.api.lambda_handler"]["Properties"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE


# --- the factory itself (a small stack, no synth) ------------------------------------------------


@pytest.fixture(scope="module")
def context() -> FunctionContext:
    from aws_cdk import App, Stack
    from aws_cdk import aws_lambda as lambda_

    from stacks.config import ControlPlaneConfig, load_cdk_json_context
    from stacks.functions import FunctionContext
    from stacks.storage import ControlPlaneTable

    app = App(context=load_cdk_json_context(), builtin_cloud_formation_validation=False)
    stack = Stack(app, "Functions")
    return FunctionContext(
        table=ControlPlaneTable(stack, "Storage"),
        config=ControlPlaneConfig.from_context(app),
        code=lambda_.Code.from_inline("def handler(event, context): pass"),
        layers=[],
    )


def _function(context: FunctionContext, construct_id: str, environment: dict[str, str]) -> Any:
    from aws_cdk import Stack

    from stacks.functions import LbcpFunction

    return LbcpFunction(
        Stack.of(context.table),
        construct_id,
        context=context,
        handler="index.handler",
        service_name="lbcp-test",
        description="a test function",
        environment=environment,
    )


def test_a_function_gets_the_base_environment_its_service_name_and_its_own(context: FunctionContext) -> None:
    from aws_cdk import Stack
    from aws_cdk.assertions import Template

    function = _function(context, "Own", {"LBCP_OWN_SETTING": "yes"})
    stack = Stack.of(function)
    (resource,) = Template.from_stack(stack).find_resources("AWS::Lambda::Function").values()
    assert resource["Properties"]["Environment"]["Variables"] == {
        **stack.resolve(context.base_environment),
        "POWERTOOLS_SERVICE_NAME": "lbcp-test",
        "LBCP_OWN_SETTING": "yes",
    }


@pytest.mark.parametrize(
    "name", [ENV_TABLE_NAME, ENV_EVENT_RETENTION_DAYS, "POWERTOOLS_LOG_LEVEL", "POWERTOOLS_SERVICE_NAME"]
)
def test_a_function_may_not_redefine_a_base_setting(context: FunctionContext, name: str) -> None:
    from stacks.functions import EnvironmentConflictError

    with pytest.raises(EnvironmentConflictError, match=rf"function 'Redefines{name}': its environment sets {name}, "):
        _function(context, f"Redefines{name}", {name: "something else", "LBCP_OWN_SETTING": "yes"})


def test_redefining_a_base_setting_is_refused_even_with_the_same_value(context: FunctionContext) -> None:
    from stacks.functions import EnvironmentConflictError

    with pytest.raises(EnvironmentConflictError, match="change it there"):
        _function(context, "SameValue", {"POWERTOOLS_LOG_LEVEL": "INFO"})
