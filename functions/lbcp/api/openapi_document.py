"""The OpenAPI document of a resolver: Powertools' schema of its routes, in the API's terms.

Generated from the routes and the pydantic models; the API's errors are
problem+json (not Powertools' own validation error), and PATCH documents the
merge patch it reads itself.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

from lbcp import __version__ as version
from lbcp.api.operations import PATCH_LOAD_BALANCER

DESCRIPTION = (
    "Declare load balancers; the control plane builds, heals, scales and removes their fleets of "
    "load-balancer VMs. Requests are signed with AWS Signature Version 4 (service execute-api). "
    "Errors are application/problem+json (RFC 9457) with errors[] naming each bad field."
)


@lru_cache(maxsize=1)
def document_of(resolver: APIGatewayHttpResolver) -> dict[str, Any]:
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
    _document_patch_body(document)
    _use_problem_details(document)
    return document


_HEADER_NAMES = {"idempotency-key": "Idempotency-Key", "if-match": "If-Match"}
_GENERIC_SCHEMAS = ("HTTPValidationError", "ValidationError", "ResponseValidationError")


def _use_problem_details(document: dict[str, Any]) -> None:
    # Powertools documents its own 422 validation error; ours are 400 problem+json.
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operations in document["paths"].values():
        for operation in operations.values():
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
