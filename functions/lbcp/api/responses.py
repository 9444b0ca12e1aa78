"""Response shapes: JSON documents and problem details, never cached by clients."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response

from lbcp.api.problems import PROBLEM_CONTENT_TYPE, ApiProblem


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body),
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def problem_response(problem: ApiProblem) -> Response[Any]:
    return Response(
        status_code=problem.status,
        content_type=PROBLEM_CONTENT_TYPE,
        body=problem.to_json(),
        headers={"Cache-Control": "no-store", **problem.headers},
    )


def etag(generation: int) -> str:
    return f'"{generation}"'
