"""Lambda entry point of the agent endpoint (a Lambda function URL with IAM auth, payload format 2.0)."""

from __future__ import annotations

from typing import Any

from lbcp.api.agent_app import handle, logger


@logger.inject_lambda_context(log_event=False, clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, context)
