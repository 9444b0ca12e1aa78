"""The OpenAPI document: generated from the code, committed, valid, and complete."""

from __future__ import annotations

import json
import re
from pathlib import Path

from openapi_spec_validator import validate

from lbcp.api.app import ROUTE_TABLE
from lbcp.api.openapi import openapi_document
from tests.conftest import Api

COMMITTED = Path(__file__).parents[2] / "docs" / "openapi.json"


def test_the_committed_document_matches_the_code() -> None:
    generated = json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"
    assert COMMITTED.read_text() == generated, "docs/openapi.json is stale: run `make openapi` and commit it"


def test_the_document_is_valid_openapi() -> None:
    validate(openapi_document())


def test_the_route_table_matches_the_documented_routes() -> None:
    documented = {
        (path, method.upper()) for path, operations in openapi_document()["paths"].items() for method in operations
    } | {("/v1/openapi.json", "GET")}
    in_table = set()
    for pattern, methods in ROUTE_TABLE:
        sample = re.sub(r"\[\^/\]\+", "{id}", pattern.pattern.strip("^$")).replace("\\.", ".")
        in_table |= {(sample, method) for method in methods}
    assert in_table == documented


def test_every_operation_documents_problem_details_for_400() -> None:
    for operations in openapi_document()["paths"].values():
        for operation in operations.values():
            content = operation["responses"]["400"]["content"]
            assert content == {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def test_the_api_serves_the_document(api: Api) -> None:
    response = api.request("GET", "/v1/openapi.json")
    assert response.status == 200
    assert response.json() == openapi_document()
