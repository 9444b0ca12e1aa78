"""The resolver every route and error handler registers on, and what they read off the current request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from lbcp.api.operations import Operation
from lbcp.models.app_metrics import SERVICE_API

logger = Logger(service=SERVICE_API)
app = APIGatewayHttpResolver(enable_validation=True)

Handler = TypeVar("Handler", bound=Callable[..., Any])


def route(operation: Operation, **documentation: Any) -> Callable[[Handler], Handler]:
    """Register a handler for a declared operation; ``documentation`` is its OpenAPI description."""
    register: Callable[[Handler], Handler] = app.route(operation.path, operation.method, **documentation)
    return register


def principal() -> str | None:
    """The caller's IAM ARN, as API Gateway's IAM authorizer verified it."""
    context = app.current_event.raw_event.get("requestContext", {})
    iam = (context.get("authorizer") or {}).get("iam") or {}
    arn = iam.get("userArn") or iam.get("callerId")
    return str(arn) if arn else None


def keep_json_body(body: dict[str, Any]) -> None:
    """Hand the body ``preflight`` decoded to the route (Powertools clears the context after each request)."""
    app.append_context(json_body=body)


def json_body() -> dict[str, Any]:
    """The body ``preflight`` decoded, for the operations that read one."""
    body: dict[str, Any] = app.context.get("json_body") or {}
    return body
