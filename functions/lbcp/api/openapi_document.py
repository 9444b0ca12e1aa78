"""The OpenAPI document of a resolver: Powertools' schema of its routes, in the API's terms.

Generated from the routes and the pydantic models; the API's errors are
problem+json (not Powertools' own validation error), and PATCH documents the
merge patch it reads itself. ``api_document`` is the whole control plane's:
the HTTP API's operations and the agent endpoint's, each of those with the
agent endpoint as its server.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, LambdaFunctionUrlResolver
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

from lbcp import __version__ as version
from lbcp.api.operations import PATCH_LOAD_BALANCER

DESCRIPTION = (
    "Declare load balancers; the control plane builds, heals, scales and removes their fleets of "
    "load-balancer VMs. Requests are signed with AWS Signature Version 4 (service execute-api). "
    "The LBVM agents' operations (tag agent) are served at the agent endpoint instead, a Lambda "
    "function URL with IAM auth, signed for service lambda with the instance role. "
    "Errors are application/problem+json (RFC 9457) with errors[] naming each bad field."
)
AGENT_ENDPOINT_SERVER: dict[str, Any] = {
    "url": "https://{urlId}.lambda-url.{region}.on.aws",
    "description": "The agent endpoint: a Lambda function URL (AuthType AWS_IAM), SigV4 for service lambda. "
    "The reconciler writes its URL into each LBVM's user data (--agent-endpoint).",
    "variables": {
        "urlId": {"default": "url-id", "description": "The function URL's id"},
        "region": {"default": "us-east-1", "description": "The control plane's region"},
    },
}


@lru_cache(maxsize=1)
def api_document(api: APIGatewayHttpResolver, agent_endpoint: LambdaFunctionUrlResolver) -> dict[str, Any]:
    """The HTTP API's document with the agent endpoint's operations, each naming that endpoint as its server."""
    document = copy.deepcopy(document_of(api))
    agent = document_of(agent_endpoint)
    for path, operations in agent["paths"].items():
        document["paths"][path] = {"servers": [AGENT_ENDPOINT_SERVER], **operations}
    document["components"]["schemas"].update(agent["components"]["schemas"])
    return document


@lru_cache(maxsize=1)
def document_of(resolver: ApiGatewayResolver) -> dict[str, Any]:
    schema = resolver.get_openapi_json_schema(
        title="lbcp load balancer control plane",
        version=version,
        description=DESCRIPTION,
        security_schemes={
            "sigv4": APIKey(
                name="Authorization",
                in_=APIKeyIn.header,
                description="AWS Signature Version 4 (IAM authorization on every route)",
            )
        },
        security=[{"sigv4": []}],
    )
    document: dict[str, Any] = json.loads(schema)
    if PATCH_LOAD_BALANCER.openapi_path in document["paths"]:
        _document_patch_body(document)
    _use_problem_details(document)
    return document


_HEADER_NAMES = {"idempotency-key": "Idempotency-Key", "if-match": "If-Match"}
_GENERIC_SCHEMAS = ("HTTPValidationError", "ValidationError", "ResponseValidationError")


def _use_problem_details(document: dict[str, Any]) -> None:
    # Powertools documents its own 422 validation error; ours are 400 problem+json.
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operations in document["paths"].values():
        for operation in _operations(operations):
            responses = operation["responses"]
            generic = responses.get("422", {}).get("content", {}).get("application/json", {})
            if generic.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
            responses.setdefault(
                "400", {"description": "Invalid request; errors[] names each bad field", "content": problem}
            )
            for parameter in operation.get("parameters", []):
                parameter["name"] = _HEADER_NAMES.get(parameter["name"], parameter["name"])
    schemas = document["components"]["schemas"]
    for name in _GENERIC_SCHEMAS:
        if f'"#/components/schemas/{name}"' not in json.dumps(document["paths"]):
            schemas.pop(name, None)


def _operations(path_item: dict[str, Any]) -> list[dict[str, Any]]:
    """The operations of a path item (not its ``servers``)."""
    return [operation for key, operation in path_item.items() if key != "servers"]


def _document_patch_body(document: dict[str, Any]) -> None:
    # PATCH reads its body itself (a merge patch is a partial document, so it
    # cannot be validated against the full spec model before merging).
    operation = document["paths"][PATCH_LOAD_BALANCER.openapi_path][PATCH_LOAD_BALANCER.method.lower()]
    partial = {
        "type": "object",
        "description": "JSON Merge Patch (RFC 7386) of the spec: the fields to change; null resets to the default.",
    }
    operation["requestBody"] = {
        "required": True,
        "content": {
            "application/merge-patch+json": {"schema": partial},
            "application/json": {"schema": partial},
        },
    }
