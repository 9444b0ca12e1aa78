"""Starting an LBVM's lifecycle execution (behind the reconciler's ``LifecyclePort``).

The execution is named after the LBVM, so starting it twice is harmless:
Step Functions answers a repeated StartExecution of a running execution with
the same name and input with the same ARN, and ``ExecutionAlreadyExists``
otherwise, which ``start`` treats as "already started".
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from lbcp.lifecycle.protocol import LBVM_ID_TAG_KEY, lifecycle_execution_name
from lbcp.models.lifecycle import LifecycleInput


def execution_arn(state_machine_arn: str, name: str) -> str:
    """``arn:aws:states:R:A:stateMachine:M`` + name -> ``arn:aws:states:R:A:execution:M:name``."""
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"


def lifecycle_input_json(lifecycle_input: LifecycleInput) -> str:
    """The execution input: camelCase, unset fields left out (the ASL tests ``IsPresent``)."""
    tags = {tag.key: tag.value for tag in lifecycle_input.launch.tags}
    if tags.get(LBVM_ID_TAG_KEY) != lifecycle_input.lbvm_id:
        # The state machines find the LBVM's instance and interface by this tag:
        # without it a retry would launch a second instance and a drain would miss it.
        raise ValueError(f"launch.tags must carry {LBVM_ID_TAG_KEY}={lifecycle_input.lbvm_id}")
    return json.dumps(lifecycle_input.model_dump(mode="json", by_alias=True, exclude_none=True), separators=(",", ":"))


def start_lifecycle(sfn: Any, state_machine_arn: str, lifecycle_input: LifecycleInput) -> str:
    """Start (or find) the LBVM's lifecycle execution; returns its ARN."""
    name = lifecycle_execution_name(lifecycle_input.lbvm_id)
    try:
        response = sfn.start_execution(
            stateMachineArn=state_machine_arn, name=name, input=lifecycle_input_json(lifecycle_input)
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
            raise
        return execution_arn(state_machine_arn, name)
    return str(response["executionArn"])
