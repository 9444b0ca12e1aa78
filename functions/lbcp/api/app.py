"""The HTTP API: Powertools' HTTP API event handler, entered through ``handle``.

Routes parse and translate; the use cases live in ``lbcp.service``. Every
error leaves as application/problem+json naming the offending field.
"""

from __future__ import annotations

import time
from typing import Any

# Imported for what they register on the resolver: the error handlers and the routes.
from lbcp.api import error_handlers  # noqa: F401
from lbcp.api.dependencies import dependencies
from lbcp.api.operations import reads_body
from lbcp.api.preflight import decode_json_body
from lbcp.api.problems import PROBLEM_CONTENT_TYPE, ApiProblem
from lbcp.api.resolver import app, keep_json_body, logger
from lbcp.api.responses import problem_response
from lbcp.api.routes import (  # noqa: F401
    agent,
    consistency,
    events,
    inspection,
    load_balancers,
    openapi,
    rollouts,
    warm,
)

__all__ = ["app", "dependencies", "handle", "logger"]


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Preflight the raw request, then route it. Logs one line per request."""
    started = time.perf_counter()
    http = event.get("requestContext", {}).get("http", {})
    method, path = str(http.get("method", "")).upper(), str(event.get("rawPath") or http.get("path") or "")
    try:
        body = None
        if reads_body(method, path):
            body, media_type = decode_json_body(event)
            # Powertools matches media types case-sensitively; hand it the canonical form.
            event = {**event, "headers": {**(event.get("headers") or {}), "content-type": media_type}}
    except ApiProblem as problem:
        response = problem_response(problem)
        result: dict[str, Any] = {
            "statusCode": response.status_code,
            "headers": {"Content-Type": PROBLEM_CONTENT_TYPE, **response.headers},
            "body": response.body,
            "isBase64Encoded": False,
        }
    else:
        if body is not None:
            keep_json_body(body)
        dependencies().register_lambda_context(context)
        result = app.resolve(event, context)
    logger.info(
        "request",
        method=method,
        path=path,
        status=result.get("statusCode"),
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return result
