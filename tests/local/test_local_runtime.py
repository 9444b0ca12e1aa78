"""End to end over HTTP: the real local runtime (`make local`) in a subprocess."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
from typing import Any

import pytest

from lbcp_local.seed import example_spec
from tests.conftest import LocalRuntimeProcess

pytestmark = pytest.mark.e2e


def call(
    runtime: LocalRuntimeProcess, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(runtime.api_url + path, data=data, method=method, headers=headers or {})
    if data is not None and "Content-Type" not in (headers or {}):
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_the_crud_flow_over_http(local_runtime: LocalRuntimeProcess) -> None:
    spec = example_spec(local_runtime.account, name="e2e-crud")
    status, headers, created = call(local_runtime, "POST", "/v1/load-balancers", spec)
    assert status == 201
    assert headers["Location"] == f"/v1/load-balancers/{created['id']}"
    assert headers["ETag"] == '"1"'

    status, _, fetched = call(local_runtime, "GET", "/v1/load-balancers/e2e-crud")
    assert (status, fetched) == (200, created)

    status, headers, patched = call(
        local_runtime,
        "PATCH",
        f"/v1/load-balancers/{created['id']}",
        {"capacity": {"max": 9}},
        {"Content-Type": "application/merge-patch+json", "If-Match": '"1"'},
    )
    assert status == 200
    assert patched["capacity"]["max"] == 9
    assert headers["ETag"] == '"2"'

    status, _, listing = call(local_runtime, "GET", "/v1/load-balancers?limit=100")
    assert status == 200
    assert "e2e-crud" in [item["name"] for item in listing["items"]]

    status, _, deleted = call(local_runtime, "DELETE", "/v1/load-balancers/e2e-crud")
    assert status == 202
    assert deleted["status"]["phase"] == "Deleting"

    status, _, events = call(local_runtime, "GET", f"/v1/load-balancers/{created['id']}/events?limit=100")
    # The reconciler's own events (launches, drains) interleave with the API's.
    api_events = [
        e["reason"] for e in events["items"] if e["reason"] in ("DeletionRequested", "SpecUpdated", "Created")
    ]
    assert api_events == ["DeletionRequested", "SpecUpdated", "Created"]


def test_errors_over_http_are_problem_json(local_runtime: LocalRuntimeProcess) -> None:
    status, headers, problem = call(local_runtime, "POST", "/v1/load-balancers", {"name": "x"})
    assert status == 400
    assert headers["Content-Type"] == "application/problem+json"
    assert {"type", "title", "status", "detail", "errors"} <= set(problem)

    status, headers, problem = call(local_runtime, "PUT", "/v1/load-balancers")
    assert status == 405
    assert headers["Allow"] == "GET, POST"


def test_the_runtime_serves_its_openapi_document(local_runtime: LocalRuntimeProcess) -> None:
    status, _, document = call(local_runtime, "GET", "/v1/openapi.json")
    assert status == 200
    assert document["openapi"].startswith("3.")
    assert "/v1/load-balancers/{id}" in document["paths"]


def test_the_example_spec_points_at_real_backends_the_runtime_serves(local_runtime: LocalRuntimeProcess) -> None:
    document = json.loads((local_runtime.state_dir / "example-spec.json").read_text())
    targets = {backend["name"]: backend["targets"] for backend in document["backends"]}
    for name in ("app", "api"):
        [target] = targets[name]
        assert target["host"] == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{target['port']}/healthz", timeout=5) as response:
            assert json.loads(response.read())["backend"] == name
    status, _, created = call(local_runtime, "POST", "/v1/load-balancers", {**document, "name": "e2e-example"})
    assert status == 201, created  # loopback targets are accepted
    call(local_runtime, "DELETE", f"/v1/load-balancers/{created['id']}")


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "FOO"])
def test_every_method_gets_an_answer_naming_the_allowed_ones(local_runtime: LocalRuntimeProcess, method: str) -> None:
    """As API Gateway does: no request goes unanswered, whatever its method."""
    host, _, port = local_runtime.api_url.removeprefix("http://").partition(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            f"{method} /v1/load-balancers HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n".encode()
        )
        response = http.client.HTTPResponse(connection)
        response.begin()
        body = json.loads(response.read())
    assert response.status == 405
    assert response.getheader("Allow") == "GET, POST"
    assert response.getheader("Content-Type") == "application/problem+json"
    assert body["status"] == 405 and method in body["detail"]
