"""Invoking the API and agent endpoint handlers in-process with the events AWS sends them, as Lambda would."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lbcp_local.events import LocalLambdaContext, function_url_event, http_api_event


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    cookies: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)


def invoke_api(
    method: str,
    path: str,
    *,
    query: str = "",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    principal_arn: str | None = None,
) -> ApiResponse:
    """The API function's handler with an HTTP API event."""
    # Imported on call so that the handler reads its environment only once
    # the runtime has pointed it at the emulator.
    from handlers.api import lambda_handler

    request = _request(method, path, query=query, headers=headers, body=body, principal_arn=principal_arn)
    return to_api_response(lambda_handler(http_api_event(**request), LocalLambdaContext()))


def invoke_agent_endpoint(
    method: str,
    path: str,
    *,
    query: str = "",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    principal_arn: str | None = None,
    via_http_api: bool = False,
) -> ApiResponse:
    """The agent endpoint's handler with a function URL event (the agents' two routes).

    ``via_http_api``: with the event of the HTTP API's agent route instead, as an LBVM launched
    before the agent endpoint sends it (``stacks.api.LEGACY_AGENT_ROUTES``).
    """
    from handlers.agent_api import lambda_handler

    request = _request(method, path, query=query, headers=headers, body=body, principal_arn=principal_arn)
    if via_http_api:
        event = http_api_event(**request)
        event["routeKey"] = event["requestContext"]["routeKey"] = f"{method.upper()} {path}"
        event["requestContext"]["domainName"] = "localapi.execute-api.us-east-1.amazonaws.com"
    else:
        event = function_url_event(**request)
    return to_api_response(lambda_handler(event, LocalLambdaContext(function_name="lbcp-agent-api")))


def _request(
    method: str,
    path: str,
    *,
    query: str,
    headers: Mapping[str, str] | None,
    body: bytes | None,
    principal_arn: str | None,
) -> dict[str, Any]:
    """The event builders' arguments; no principal: the builders' own (the local caller)."""
    request: dict[str, Any] = {"method": method, "path": path, "query": query, "headers": headers, "body": body}
    if principal_arn:
        request["principal_arn"] = principal_arn
    return request


def to_api_response(result: Mapping[str, Any]) -> ApiResponse:
    """Apply API Gateway's rules for a payload 2.0 Lambda response (a function URL applies the same)."""
    headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[str(name)] = ",".join(str(v) for v in values)
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode("utf-8")
    return ApiResponse(int(result.get("statusCode", 200)), headers, body, list(result.get("cookies") or []))
