"""Lambda entry point of the lifecycle tasks function (called by the LBVM state machines).

The event is ``{"action": ..., "lbvmId": ..., "loadBalancerId": ..., ...}``;
see ``lbcp.lifecycle.tasks`` for the actions. Errors propagate: Step Functions
names them after the exception class (``TransientError`` is retried).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from lbcp.lifecycle.tasks import default_context, dispatch

logger = Logger(service="lbcp-lifecycle")


@logger.inject_lambda_context(log_event=False, clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.append_keys(action=event.get("action"), lbvm_id=event.get("lbvmId"))
    return dispatch(default_context(), event)
