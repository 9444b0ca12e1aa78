"""The resolvers every route and error handler registers on, and what they read off the current request.

``app`` is the HTTP API's (API Gateway, payload 2.0); ``agent_app`` the agent
endpoint's (a Lambda function URL, whose events are the same payload 2.0, with
the caller's verified IAM identity in the same place).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, LambdaFunctionUrlResolver
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver

from lbcp.api.operations import Operation
from lbcp.models.app_metrics import SERVICE_API

logger = Logger(service=SERVICE_API)
app = APIGatewayHttpResolver(enable_validation=True)
agent_app = LambdaFunctionUrlResolver(enable_validation=True)

Handler = TypeVar("Handler", bound=Callable[..., Any])


def route(
    operation: Operation, resolver: ApiGatewayResolver = app, **documentation: Any
) -> Callable[[Handler], Handler]:
    """Register a handler for a declared operation; ``documentation`` is its OpenAPI description."""
    register: Callable[[Handler], Handler] = resolver.route(operation.path, operation.method, **documentation)
    return register


def principal(resolver: ApiGatewayResolver = app) -> str | None:
    """The caller's IAM ARN, as IAM authorization verified it (API Gateway's authorizer or the function URL's)."""
    context = resolver.current_event.raw_event.get("requestContext", {})
    iam = (context.get("authorizer") or {}).get("iam") or {}
    arn = iam.get("userArn") or iam.get("callerId")
    return str(arn) if arn else None


def keep_json_body(body: dict[str, Any], resolver: ApiGatewayResolver = app) -> None:
    """Hand the body ``preflight`` decoded to the route (Powertools clears the context after each request)."""
    resolver.append_context(json_body=body)


def json_body() -> dict[str, Any]:
    """The body ``preflight`` decoded, for the operations that read one."""
    body: dict[str, Any] = app.context.get("json_body") or {}
    return body
