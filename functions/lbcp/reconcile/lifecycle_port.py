"""Step Functions as the control plane uses it: start an LBVM's lifecycle, answer its callbacks."""

from __future__ import annotations

import json
from typing import Any

from lbcp.models.lifecycle import LifecycleInput


class StepFunctionsCallbacks:
    """Completes and keeps alive the callbacks an LBVM's lifecycle execution waits on."""

    def __init__(self, sfn: Any) -> None:
        self._sfn = sfn
        errors = sfn.exceptions
        # A token nobody waits on any more: the execution moved on (or timed out) meanwhile.
        self._gone = (errors.TaskTimedOut, errors.InvalidToken, errors.TaskDoesNotExist)

    def complete(self, token: str, output: dict[str, Any]) -> bool:
        try:
            self._sfn.send_task_success(taskToken=token, output=json.dumps(output))
        except self._gone:
            return False
        return True

    def heartbeat(self, token: str) -> bool:
        try:
            self._sfn.send_task_heartbeat(taskToken=token)
        except self._gone:
            return False
        return True


class StepFunctionsLifecycle(StepFunctionsCallbacks):
    def __init__(self, sfn: Any, state_machine_arn: str) -> None:
        super().__init__(sfn)
        self._state_machine_arn = state_machine_arn

    def start(self, lifecycle_input: LifecycleInput) -> str:
        # Named after the LBVM: a second start of the same LBVM cannot create a second execution.
        name = lifecycle_input.lbvm_id
        try:
            response = self._sfn.start_execution(
                stateMachineArn=self._state_machine_arn,
                name=name,
                input=lifecycle_input.model_dump_json(by_alias=True),
            )
        except self._sfn.exceptions.ExecutionAlreadyExists:
            return self._state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"
        return str(response["executionArn"])
