"""Run Lambda functions in this process when moto invokes them (no Docker).

Everything this project needs from moto's private internals is here, pinned to
moto 5.2.5: ``install()`` refuses any other version, and
``tests/fleet/test_lambda_bridge.py`` checks the seams' signatures and drives
real calls through boto3, so an upgrade of moto fails loudly there.

1. **Lambda invocation.** moto runs a function's code in a Docker container,
   from ``moto.awslambda.models.LambdaFunction._invoke_lambda(self, event)``,
   which returns ``(payload, errored, logs)``; ``LambdaFunction.invoke`` turns
   that into the Invoke response (``X-Amz-Function-Error: Handled`` when
   ``errored``). The bridge replaces that one method with an in-process call of
   the function's handler: the ``Handler`` string
   (``handlers.lifecycle_tasks.lambda_handler``) is imported from this
   process's ``sys.path`` and called with the event and a Lambda context
   object; an exception becomes Lambda's error payload (``errorType`` = the
   class name, which Step Functions uses as the error name). Everything else
   stays moto's: the function must exist, and Step Functions' ``lambda:invoke``
   tasks go through the same path. Handlers read their configuration from this
   process's environment (all local functions share it): the function's own
   ``Environment`` is not applied.

2. **``states:startExecution`` tasks.** moto 5.2.5's interpreter passes the
   ASL's PascalCase parameters (``StateMachineArn``, ``Name``, ``Input``) to
   botocore unchanged, which fails (``KeyError: 'StateMachineArn'``), and
   returns boto's camelCase response where AWS returns PascalCase
   (``ExecutionArn``, ``Output``), which breaks ``.sync``/``.sync:2``. The
   interpreter has the converters (``_to_boto_request``/``_from_boto_response``)
   but its ``_normalise_parameters``/``_normalise_response`` hooks are empty;
   the bridge fills them in for the Step Functions service only, from
   botocore's service model, as AWS behaves.

3. **``aws-sdk:ec2:runInstances`` user data.** Step Functions passes
   ``UserData`` to EC2 as given (base64, as the EC2 API takes it), but moto's
   interpreter calls boto3, whose RunInstances customization base64-encodes it
   once more, so the instance would carry doubly encoded user data. The bridge
   decodes it first, for that one operation, so boto3's encoding restores it.

4. **SendTask* while an execution starts.** moto's ``send_task_success``,
   ``send_task_heartbeat`` and ``send_task_failure`` look the token up in
   every running execution, and an execution that is still parsing its
   definition (about 0.2 s after StartExecution) has no environment yet:
   the call fails with ``AttributeError`` (a 500 from the server) whenever a
   heartbeat arrives while any execution starts. The bridge retries such a
   call for up to two seconds, as a caller would retry AWS's 500.
"""

from __future__ import annotations

import base64
import functools
import importlib
import json
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

from lbcp_local.events import LocalLambdaContext

PINNED_MOTO_VERSION: Final = "5.2.5"

logger = logging.getLogger(__name__)

Handler = Callable[[Any, Any], Any]

_lock = threading.Lock()
# moto's own methods while the bridge is installed, by (class, attribute).
_saved: dict[tuple[type, str], Any] = {}
_handlers: dict[str, Handler] = {}


class MotoVersionMismatch(RuntimeError):
    """The installed moto is not the one the bridge was written against."""


def check_moto_version() -> None:
    import moto

    if moto.__version__ != PINNED_MOTO_VERSION:
        raise MotoVersionMismatch(
            f"lbcp_local.lambda_bridge patches private parts of moto {PINNED_MOTO_VERSION}; "
            f"moto {moto.__version__} is installed: re-check the seams listed in this module's docstring "
            "(tests/fleet/test_lambda_bridge.py), then update the pin"
        )


# --- 1. Lambda invocation -------------------------------------------------------------


def resolve_handler(handler: str) -> Handler:
    """``package.module.function`` -> the function (cached, like a warm Lambda)."""
    found = _handlers.get(handler)
    if found is None:
        module_name, _, attribute = handler.rpartition(".")
        if not module_name:
            raise ValueError(f"handler {handler!r} is not of the form module.function")
        found = getattr(importlib.import_module(module_name), attribute)
        if not callable(found):
            raise TypeError(f"handler {handler!r} is not callable")
        _handlers[handler] = found
    return found


def error_payload(exc: BaseException) -> dict[str, Any]:
    """Lambda's Python runtime error payload: Step Functions names the error after ``errorType``."""
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def _invoke_in_process(function: Any, event: Any = None) -> tuple[str, bool, str]:
    """Replacement of ``LambdaFunction._invoke_lambda``: (payload JSON, errored, logs)."""
    context = LocalLambdaContext(
        function_name=function.function_name,
        function_version=str(function.version),
        memory_limit_in_mb=int(function.memory_size),
        timeout_seconds=float(function.timeout),
        invoked_function_arn=function.function_arn,
        log_group_name=function.logs_group_name,
    )
    try:
        handler = resolve_handler(function.handler)
        result = handler(event if event is not None else {}, context)
        payload, errored = json.dumps(result), False
    except Exception as exc:
        logger.info("function %s raised %s: %s", function.function_name, type(exc).__name__, exc)
        payload, errored = json.dumps(error_payload(exc)), True
    # No log capture: handlers log to this process's stdout (redirecting it would
    # swap sys.stdout for every thread, and executions run in threads of their own).
    return payload, errored, ""


# --- 2. states:startExecution parameters and responses --------------------------------


@functools.cache
def _operation_model(service: str, snake_case_action: str) -> Any:
    import botocore.session
    from botocore import xform_name

    model = botocore.session.get_session().get_service_model(service)
    for name in model.operation_names:
        if xform_name(name) == snake_case_action:
            return model.operation_model(name)
    raise KeyError(f"{service} has no operation {snake_case_action}")


def _sfn_normalise_parameters(
    task: Any, parameters: dict[str, Any], boto_service_name: str | None = None, service_action_name: str | None = None
) -> None:
    # moto's own step first: it serialises a non-string ``Input`` to JSON.
    original = _saved[(_sfn_task_class(), "_normalise_parameters")]
    original(task, parameters, boto_service_name=boto_service_name, service_action_name=service_action_name)
    operation = _operation_model(
        task._get_boto_service_name(boto_service_name), task._get_boto_service_action(service_action_name)
    )
    task._to_boto_request(parameters, operation.input_shape)


def _sfn_normalise_response(
    task: Any, response: Any, boto_service_name: str | None = None, service_action_name: str | None = None
) -> None:
    operation = _operation_model(
        task._get_boto_service_name(boto_service_name), task._get_boto_service_action(service_action_name)
    )
    task._from_boto_response(response, operation.output_shape)


# --- 3. RunInstances user data ---------------------------------------------------------


def _aws_sdk_normalise_parameters(
    task: Any, parameters: dict[str, Any], boto_service_name: str | None = None, service_action_name: str | None = None
) -> None:
    if (
        task._get_boto_service_name(boto_service_name) == "ec2"
        and task._get_boto_service_action(service_action_name) == "run_instances"
        and isinstance(parameters.get("UserData"), str)
    ):
        parameters["UserData"] = base64.b64decode(parameters["UserData"]).decode("utf-8")


# --- 4. SendTask* while an execution starts --------------------------------------------

_STARTING_RETRY_SECONDS: Final = 2.0
_STARTING_RETRY_INTERVAL: Final = 0.02


def _retrying_while_an_execution_starts(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def send_task(backend: Any, *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + _STARTING_RETRY_SECONDS
        while True:
            try:
                return method(backend, *args, **kwargs)
            except AttributeError as exc:
                # Only the missing environment of a starting execution; anything else is a bug.
                if "callback_pool_manager" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(_STARTING_RETRY_INTERVAL)

    return send_task


# --- installing -------------------------------------------------------------------------


def _lambda_function_class() -> type:
    from moto.awslambda.models import LambdaFunction

    return LambdaFunction


def _sfn_task_class() -> type:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
        StateTaskServiceSfn,
    )

    return StateTaskServiceSfn


def _aws_sdk_task_class() -> type:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )

    return StateTaskServiceAwsSdk


def _sfn_backend_class() -> type:
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    return StepFunctionsParserBackend


def _replacements() -> list[tuple[type, str, Any]]:
    backend = _sfn_backend_class()
    return [
        (_lambda_function_class(), "_invoke_lambda", _invoke_in_process),
        (_sfn_task_class(), "_normalise_parameters", _sfn_normalise_parameters),
        (_sfn_task_class(), "_normalise_response", _sfn_normalise_response),
        (_aws_sdk_task_class(), "_normalise_parameters", _aws_sdk_normalise_parameters),
        *(
            (backend, name, _retrying_while_an_execution_starts(backend.__dict__[name]))
            for name in ("send_task_success", "send_task_heartbeat", "send_task_failure")
        ),
    ]


def install() -> None:
    """Patch moto in this process (idempotent): the four seams of this module's docstring."""
    check_moto_version()
    with _lock:
        for cls, attribute, replacement in _replacements():
            if (cls, attribute) not in _saved:
                # The class's own entry (None when inherited), so uninstall restores exactly it.
                _saved[(cls, attribute)] = cls.__dict__.get(attribute)
                setattr(cls, attribute, replacement)


def uninstall() -> None:
    with _lock:
        for (cls, attribute), original in list(_saved.items()):
            if original is None:
                delattr(cls, attribute)
            else:
                setattr(cls, attribute, original)
        _saved.clear()
        _handlers.clear()


def installed() -> bool:
    return bool(_saved)


@contextmanager
def bridged() -> Iterator[None]:
    """``install()`` for the duration of a block (restores moto if it was not installed before)."""
    was_installed = installed()
    install()
    try:
        yield
    finally:
        if not was_installed:
            uninstall()
