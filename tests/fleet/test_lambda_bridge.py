"""The moto bridge (``lbcp_local.lambda_bridge``): fails loudly if moto's internals move.

Each seam is checked twice: its shape (the private methods and signatures the
bridge replaces or calls) and its effect through boto3 against moto in-process.
"""

from __future__ import annotations

import base64
import inspect
import io
import json
import sys
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lbcp_local import lambda_bridge
from tests.conftest import REGION

ROLE_TRUST = json.dumps({"Version": "2012-10-17", "Statement": []})


class BridgeTestError(Exception):
    pass


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The handler the test function runs (``tests.fleet.test_lambda_bridge.echo``)."""
    if event.get("fail"):
        raise BridgeTestError(f"asked to fail by {context.function_name}")
    return {"echo": event, "function": context.function_name, "remainingMs": context.get_remaining_time_in_millis()}


def _package() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("placeholder.txt", "")
    return buffer.getvalue()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with lambda_bridge.bridged(), mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="bridge-test", AssumeRolePolicyDocument=ROLE_TRUST)["Role"]["Arn"]
        lambda_client = boto3.client("lambda", region_name=REGION)
        function = lambda_client.create_function(
            FunctionName="echo",
            Runtime="python3.13",
            Role=role,
            Handler="tests.fleet.test_lambda_bridge.echo",
            Code={"ZipFile": _package()},
            Timeout=7,
        )["FunctionArn"]
        yield {
            "role": role,
            "function": function,
            "lambda": lambda_client,
            "sfn": boto3.client("stepfunctions", region_name=REGION),
            "ec2": boto3.client("ec2", region_name=REGION),
        }


def _run(sfn: Any, role: str, definition: dict[str, Any], payload: dict[str, Any], name: str) -> dict[str, Any]:
    machine = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=role)["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine, name=f"{name}-1", input=json.dumps(payload))["executionArn"]
    deadline = time.monotonic() + 20
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "execution did not end"
        time.sleep(0.05)
    return dict(described)


# --- the shape of moto's internals ----------------------------------------------------


def test_moto_is_the_pinned_version() -> None:
    import moto

    assert moto.__version__ == lambda_bridge.PINNED_MOTO_VERSION


def test_another_moto_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import moto

    monkeypatch.setattr(moto, "__version__", "5.3.0")
    with pytest.raises(lambda_bridge.MotoVersionMismatch, match=r"5\.3\.0"):
        lambda_bridge.check_moto_version()


def test_the_replaced_methods_still_have_the_shapes_the_bridge_assumes() -> None:
    from moto.awslambda.models import LambdaFunction
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
        StateTaskServiceSfn,
    )

    assert not lambda_bridge.installed()
    assert list(inspect.signature(LambdaFunction._invoke_lambda).parameters) == ["self", "event"]
    # invoke() is what calls it, and reads (payload, errored, logs).
    assert "res, errored, logs = self._invoke_lambda(event=body)" in inspect.getsource(LambdaFunction.invoke)
    hook = ["self", "parameters", "boto_service_name", "service_action_name"]
    assert list(inspect.signature(StateTaskServiceSfn._normalise_parameters).parameters) == hook
    assert list(inspect.signature(StateTaskService._normalise_response).parameters) == [
        "self",
        "response",
        "boto_service_name",
        "service_action_name",
    ]
    # The hooks are still empty in moto (if moto fills them in, the bridge's fixes must go).
    assert "_normalise_response" not in StateTaskServiceSfn.__dict__
    assert "_normalise_parameters" not in StateTaskServiceAwsSdk.__dict__
    assert inspect.getsource(StateTaskService._normalise_response).rstrip().endswith("pass")
    for name in ("_to_boto_request", "_from_boto_response", "_get_boto_service_name", "_get_boto_service_action"):
        assert callable(getattr(StateTaskService, name)), name
    # A starting execution has no environment until its definition is parsed.
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    logic = inspect.getsource(ExecutionWorker._execution_logic)
    assert logic.index("_get_evaluation_entrypoint()") < logic.index("self.env = ")
    for name in ("send_task_success", "send_task_heartbeat", "send_task_failure"):
        assert "exec_worker.env.callback_pool_manager" in inspect.getsource(StepFunctionsParserBackend.__dict__[name])


def test_uninstall_restores_moto_exactly() -> None:
    from moto.awslambda.models import LambdaFunction
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
        StateTaskServiceSfn,
    )

    before = (LambdaFunction.__dict__["_invoke_lambda"], dict(StateTaskServiceSfn.__dict__))
    with lambda_bridge.bridged():
        assert LambdaFunction.__dict__["_invoke_lambda"] is not before[0]
    assert LambdaFunction.__dict__["_invoke_lambda"] is before[0]
    assert dict(StateTaskServiceSfn.__dict__) == before[1]


# --- the effects, through boto3 ---------------------------------------------------------


def test_invoke_runs_the_handler_in_process(aws: dict[str, Any]) -> None:
    response = aws["lambda"].invoke(FunctionName="echo", Payload=json.dumps({"hello": "world"}))
    assert "FunctionError" not in response
    payload = json.loads(response["Payload"].read())
    assert payload["echo"] == {"hello": "world"}
    assert payload["function"] == "echo"
    assert 0 < payload["remainingMs"] <= 7000


def test_a_raising_handler_is_a_function_error_named_after_the_exception(aws: dict[str, Any]) -> None:
    response = aws["lambda"].invoke(FunctionName="echo", Payload=json.dumps({"fail": True}))
    assert response["FunctionError"] == "Handled"
    payload = json.loads(response["Payload"].read())
    assert payload["errorType"] == "BridgeTestError"
    assert payload["errorMessage"] == "asked to fail by echo"


def test_step_functions_lambda_tasks_run_the_handler_and_catch_its_errors_by_name(aws: dict[str, Any]) -> None:
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName.$": "$.function", "Payload": {"n": 1}},
                "ResultSelector": {"echo.$": "$.Payload.echo"},
                "ResultPath": "$.first",
                "Next": "Fail",
            },
            "Fail": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName.$": "$.function", "Payload": {"fail": True}},
                "Catch": [{"ErrorEquals": ["BridgeTestError"], "ResultPath": "$.caught", "Next": "Done"}],
                "Next": "Done",
            },
            "Done": {"Type": "Succeed"},
        },
    }
    described = _run(aws["sfn"], aws["role"], definition, {"function": aws["function"]}, "lambda-tasks")
    assert described["status"] == "SUCCEEDED"
    output = json.loads(described["output"])
    assert output["first"] == {"echo": {"n": 1}}
    assert output["caught"]["Error"] == "BridgeTestError"


def test_start_execution_sync2_takes_pascal_case_parameters_and_returns_the_output(aws: dict[str, Any]) -> None:
    child = {"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "Parameters": {"got.$": "$.x"}, "End": True}}}
    child_arn = aws["sfn"].create_state_machine(name="child", definition=json.dumps(child), roleArn=aws["role"])[
        "stateMachineArn"
    ]
    parent = {
        "StartAt": "Child",
        "States": {
            "Child": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync:2",
                "Parameters": {"StateMachineArn.$": "$.child", "Name": "child-run", "Input": {"x": 42}},
                "ResultSelector": {"status.$": "$.Status", "output.$": "$.Output", "arn.$": "$.ExecutionArn"},
                "End": True,
            }
        },
    }
    described = _run(aws["sfn"], aws["role"], parent, {"child": child_arn}, "parent")
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["status"] == "SUCCEEDED"
    assert output["output"] == {"got": 42}
    assert output["arn"].endswith(":child:child-run")


def test_run_instances_user_data_arrives_encoded_once(aws: dict[str, Any]) -> None:
    image = aws["ec2"].register_image(Name="bridge-test", RootDeviceName="/dev/xvda")["ImageId"]
    script = b"#!/bin/sh\necho hello\n"
    definition = {
        "StartAt": "Run",
        "States": {
            "Run": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:ec2:runInstances",
                "Parameters": {"ImageId.$": "$.image", "MinCount": 1, "MaxCount": 1, "UserData.$": "$.userData"},
                "ResultSelector": {"id.$": "States.ArrayGetItem($.Instances[*].InstanceId, 0)"},
                "End": True,
            }
        },
    }
    payload = {"image": image, "userData": base64.b64encode(script).decode()}
    described = _run(aws["sfn"], aws["role"], definition, payload, "run")
    instance_id = json.loads(described["output"])["id"]
    attribute = aws["ec2"].describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    assert base64.b64decode(attribute["UserData"]["Value"]) == script


def test_a_callback_answered_while_another_execution_starts_still_arrives(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    sfn, role = aws["sfn"], aws["role"]
    # Created first, so the token lookup meets its (starting) executions first.
    starting = sfn.create_state_machine(
        name="starting",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
        roleArn=role,
    )["stateMachineArn"]
    waiting_definition = {
        "StartAt": "Wait",
        "States": {
            "Wait": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName.$": "$.function", "Payload": {"token.$": "$$.Task.Token"}},
                "TimeoutSeconds": 30,
                "End": True,
            }
        },
    }
    tokens: list[str] = []

    def remember_token(event: dict[str, Any], context: Any) -> dict[str, Any]:
        tokens.append(event["token"])
        return {}

    monkeypatch.setattr(sys.modules[__name__], "echo", remember_token)
    lambda_bridge._handlers.clear()
    waiting = sfn.create_state_machine(name="waiting", definition=json.dumps(waiting_definition), roleArn=role)
    arn = sfn.start_execution(
        stateMachineArn=waiting["stateMachineArn"], name="w", input=json.dumps({"function": aws["function"]})
    )["executionArn"]
    deadline = time.monotonic() + 10
    while not tokens:
        assert time.monotonic() < deadline
        time.sleep(0.02)

    parse = ExecutionWorker._get_evaluation_entrypoint

    def slow_parse(worker: Any) -> Any:
        time.sleep(0.5)  # the window in which the starting execution has no environment
        return parse(worker)

    monkeypatch.setattr(ExecutionWorker, "_get_evaluation_entrypoint", slow_parse)
    sfn.start_execution(stateMachineArn=starting, name="s", input="{}")
    sfn.send_task_success(taskToken=tokens[0], output=json.dumps({"ok": True}))
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert described["status"] == "SUCCEEDED"
