"""Step Functions as the control plane uses it: start an LBVM's lifecycle, answer its callbacks.

The calls themselves live with the lifecycle (``lbcp.lifecycle.executions`` and
``callbacks``), which the lifecycle tasks function uses too; these classes are
the ports the reconciler and the heartbeat service are given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lbcp.lifecycle import callbacks
from lbcp.lifecycle.executions import start_lifecycle
from lbcp.models.lifecycle import LifecycleInput


class StepFunctionsCallbacks:
    """Completes and keeps alive the callbacks an LBVM's lifecycle execution waits on."""

    def __init__(self, sfn: Any) -> None:
        self._sfn = sfn

    def complete(self, token: str, output: Mapping[str, Any]) -> bool:
        return callbacks.complete(self._sfn, token, output)

    def heartbeat(self, token: str) -> bool:
        return callbacks.heartbeat(self._sfn, token)


class StepFunctionsLifecycle(StepFunctionsCallbacks):
    def __init__(self, sfn: Any, state_machine_arn: str) -> None:
        super().__init__(sfn)
        self._state_machine_arn = state_machine_arn

    def start(self, lifecycle_input: LifecycleInput) -> str:
        return start_lifecycle(self._sfn, self._state_machine_arn, lifecycle_input)
