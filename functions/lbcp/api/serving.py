"""One request through an endpoint's resolver: preflight the raw request, route it, log one line."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver

from lbcp.api.dependencies import dependencies
from lbcp.api.operations import Resource, reads_body
from lbcp.api.preflight import decode_json_body
from lbcp.api.problems import PROBLEM_CONTENT_TYPE, ApiProblem
from lbcp.api.resolver import keep_json_body, logger
from lbcp.api.responses import problem_response


def serve(
    resolver: ApiGatewayResolver, resources: tuple[Resource, ...], event: dict[str, Any], context: Any
) -> dict[str, Any]:
    """Preflight the raw request (the body of the operations that read one), then route it."""
    started = time.perf_counter()
    http = event.get("requestContext", {}).get("http", {})
    method, path = str(http.get("method", "")).upper(), str(event.get("rawPath") or http.get("path") or "")
    try:
        body = None
        if reads_body(method, path, resources):
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
            keep_json_body(body, resolver)
        dependencies().register_lambda_context(context)
        result = resolver.resolve(event, context)
    logger.info(
        "request",
        method=method,
        path=path,
        status=result.get("statusCode"),
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return result
