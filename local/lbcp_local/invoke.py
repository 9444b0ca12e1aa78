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
    # Imported on call so that the handler reads its environment only once
    # the runtime has pointed it at the emulator.
    from handlers.api import lambda_handler

    event = http_api_event(
        method,
        path,
        query=query,
        headers=headers,
        body=body,
        **({"principal_arn": principal_arn} if principal_arn else {}),
    )
    result = lambda_handler(event, LocalLambdaContext())
    return to_api_response(result)


def invoke_agent_endpoint(
    method: str,
    path: str,
    *,
    query: str = "",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    principal_arn: str | None = None,
) -> ApiResponse:
    """The agent endpoint's handler with a function URL event (the agents' two routes)."""
    from handlers.agent_api import lambda_handler

    event = function_url_event(
        method,
        path,
        query=query,
        headers=headers,
        body=body,
        **({"principal_arn": principal_arn} if principal_arn else {}),
    )
    result = lambda_handler(event, LocalLambdaContext(function_name="lbcp-agent-api"))
    return to_api_response(result)


def to_api_response(result: Mapping[str, Any]) -> ApiResponse:
    """Apply API Gateway's rules for a payload 2.0 Lambda response (a function URL applies the same)."""
    headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[str(name)] = ",".join(str(v) for v in values)
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode("utf-8")
    return ApiResponse(int(result.get("statusCode", 200)), headers, body, list(result.get("cookies") or []))
