"""The consistency function, as the API calls it: on-demand checks and sweeps run there, not in the API.

The API's role never deletes anything (DESIGN 2.1: the API never touches
instances); the consistency function's role may delete what carries our
owner tags, and re-checks every deletion itself. So the API invokes it
synchronously (one resource per sweep call, well inside API Gateway's 30 s).
"""

from __future__ import annotations

import json
from typing import Any


class ConsistencyFunctionFailed(RuntimeError):
    """The function answered with an error payload."""


class ConsistencyFunction:
    def __init__(self, lambda_client: Any, function_name: str) -> None:
        self._client = lambda_client
        self._name = function_name

    def invoke(self, payload: dict[str, Any]) -> dict[str, Any]:
        response = self._client.invoke(
            FunctionName=self._name, InvocationType="RequestResponse", Payload=json.dumps(payload).encode()
        )
        body = json.loads(response["Payload"].read() or b"{}")
        if response.get("FunctionError"):
            raise ConsistencyFunctionFailed(f"{body.get('errorType')}: {body.get('errorMessage')}")
        if not isinstance(body, dict):
            raise ConsistencyFunctionFailed(f"unexpected answer {body!r}")
        return body
