"""The OpenAPI document: generated from the code, committed, valid, and complete."""

from __future__ import annotations

import json
from pathlib import Path

from openapi_spec_validator import validate

from lbcp.api.openapi import openapi_document
from lbcp.api.openapi_document import AGENT_ENDPOINT_SERVER
from lbcp.api.operations import AGENT_OPERATIONS, AGENT_RESOURCES, OPENAPI_DOCUMENT, OPERATIONS, RESOURCES
from lbcp_local.invoke import invoke_agent_endpoint
from tests.conftest import Api

COMMITTED = Path(__file__).parents[2] / "docs" / "openapi.json"


def test_the_committed_document_matches_the_code() -> None:
    generated = json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"
    assert COMMITTED.read_text() == generated, "docs/openapi.json is stale: run `make openapi` and commit it"


def test_the_document_is_valid_openapi() -> None:
    validate(openapi_document())


def documented_operations() -> dict[tuple[str, str], dict[str, object]]:
    return {
        (path, method.upper()): operation
        for path, operations in openapi_document()["paths"].items()
        for method, operation in operations.items()
        if method != "servers"
    }


def test_the_declared_operations_are_the_documented_ones() -> None:
    declared = {(operation.openapi_path, operation.method) for operation in OPERATIONS + AGENT_OPERATIONS}
    # The document describes everything but itself.
    assert declared == set(documented_operations()) | {(OPENAPI_DOCUMENT.openapi_path, OPENAPI_DOCUMENT.method)}


def test_exactly_the_agent_operations_name_the_agent_endpoint_as_their_server() -> None:
    paths = openapi_document()["paths"]
    on_agent_endpoint = {path for path, item in paths.items() if item.get("servers") == [AGENT_ENDPOINT_SERVER]}
    assert on_agent_endpoint == {operation.openapi_path for operation in AGENT_OPERATIONS}
    assert all("servers" not in item for path, item in paths.items() if path not in on_agent_endpoint)


def test_the_operations_declared_to_read_a_body_are_those_documented_with_one() -> None:
    documented = documented_operations()
    for operation in OPERATIONS + AGENT_OPERATIONS:
        if operation != OPENAPI_DOCUMENT:
            key = (operation.openapi_path, operation.method)
            assert ("requestBody" in documented[key]) == operation.reads_body, key


def test_each_declared_path_refuses_other_methods_with_the_declared_ones_in_allow(api: Api) -> None:
    for resource in RESOURCES:
        path = resource.path.replace("<id>", "lb-0123456789abcdef0")
        response = api.request("PUT", path)
        assert (response.status, response.header("Allow")) == (405, ", ".join(resource.methods)), path
        assert response.json()["type"] == "urn:lbcp:problem:method-not-allowed"


def test_each_endpoint_knows_only_its_own_paths(api: Api) -> None:
    for operation in AGENT_OPERATIONS:
        response = api.request(operation.method, operation.path)
        assert (response.status, response.json()["type"]) == (404, "urn:lbcp:problem:not-found"), operation
    for operation in OPERATIONS:
        path = operation.path.replace("<id>", "lb-0123456789abcdef0")
        response = invoke_agent_endpoint(operation.method, path)
        assert (response.status, response.json()["type"]) == (404, "urn:lbcp:problem:not-found"), operation
    for resource in AGENT_RESOURCES:
        response = invoke_agent_endpoint("PUT", resource.path)
        assert (response.status, response.header("Allow")) == (405, ", ".join(resource.methods)), resource.path


def test_the_agent_endpoint_checks_the_heartbeat_body_before_routing(api: Api) -> None:
    for operation in AGENT_OPERATIONS:
        response = invoke_agent_endpoint(
            operation.method, operation.path, headers={"content-type": "text/xml"}, body=b"<xml/>"
        )
        refused = response.status == 415 and response.json()["type"] == "urn:lbcp:problem:unsupported-media-type"
        assert refused == operation.reads_body, (operation, response.status)


def test_exactly_the_operations_that_read_a_body_check_it_before_routing(api: Api) -> None:
    for operation in OPERATIONS:
        path = operation.path.replace("<id>", "lb-0123456789abcdef0")
        response = api.request(operation.method, path, raw=b"<xml/>", headers={"content-type": "text/xml"})
        refused = response.status == 415 and response.json()["type"] == "urn:lbcp:problem:unsupported-media-type"
        assert refused == operation.reads_body, (operation, response.status)


def test_every_operation_documents_problem_details_for_400() -> None:
    for operation in documented_operations().values():
        content = operation["responses"]["400"]["content"]  # type: ignore[index]
        assert content == {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def test_the_api_serves_the_document(api: Api) -> None:
    response = api.request("GET", "/v1/openapi.json")
    assert response.status == 200
    assert response.json() == openapi_document()
