"""The control-plane client over real HTTP: the protocol's JSON, SigV4 that verifies, errors that back off."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from agent.control import ControlPlaneError, HttpControlPlaneClient
from lbcp.models.agent import AGENT_CONFIG_PATH, AGENT_HEARTBEAT_PATH, Heartbeat
from tests.agent.helpers import LB_ID, agent_config, backend, spec_document

CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token-example")
REGION = "eu-west-1"


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeApi:
    """The two agent routes; records every request and answers what it is told to."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    status: int = 200
    body: bytes = b"{}"


@pytest.fixture
def api() -> Iterator[FakeApi]:
    state = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            state.received.append(
                Received(self.command, self.path, dict(self.headers.items()), self.rfile.read(length))
            )
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def _heartbeat() -> Heartbeat:
    return Heartbeat(
        lbvm_id="lbvm-1",
        instance_id="i-0123456789abcdef0",
        load_balancer_id=LB_ID,
        boot_id="b007",
        sequence=3,
        sent_at=datetime(2026, 1, 1, tzinfo=UTC),
        state="ready",
        active_connections=12,
        applied_config_version=4,
        agent_version="0.1.0",
    )


def _verify_sigv4(request: Received, host_url: str) -> None:
    """Recompute the signature from what arrived, as a function URL does (service lambda), from the signed headers."""
    authorization = request.headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    fields = dict(part.strip().split("=", 1) for part in authorization.split(" ", 1)[1].split(","))
    assert fields["Credential"].endswith(f"/{REGION}/lambda/aws4_request")
    signed = fields["SignedHeaders"].split(";")
    assert {"host", "x-amz-date", "x-amz-security-token"} <= set(signed)
    headers = {name: value for name, value in request.headers.items() if name.lower() in signed}
    replay = AWSRequest(method=request.method, url=host_url + request.path, data=request.body, headers=headers)
    replay.context["timestamp"] = request.headers["X-Amz-Date"]
    signer = SigV4Auth(CREDENTIALS.get_frozen_credentials(), "lambda", REGION)
    canonical = signer.canonical_request(replay)
    expected = signer.signature(signer.string_to_sign(replay, canonical), replay)
    assert fields["Signature"] == expected


def test_get_config_is_signed_for_the_function_url_and_parses_the_agent_config(api: FakeApi) -> None:
    config = agent_config(
        spec_document(listeners=[{"protocol": "HTTP", "port": 80, "defaultBackend": "a"}], backends=[backend("a", 1)]),
        9,
    )
    api.body = config.model_dump_json(by_alias=True).encode()
    client = HttpControlPlaneClient(api.url + "/", REGION, lambda: CREDENTIALS)

    assert client.get_config("lb-0123456789abcdef0", "lbvm 1/é") == config
    (request,) = api.received
    assert request.method == "GET"
    assert request.path == f"{AGENT_CONFIG_PATH}?loadBalancerId=lb-0123456789abcdef0&lbvmId=lbvm+1%2F%C3%A9"
    assert request.headers["X-Amz-Security-Token"] == "session-token-example"
    _verify_sigv4(request, api.url)


def test_heartbeat_posts_the_protocols_camel_case_json_signed(api: FakeApi) -> None:
    api.body = json.dumps(
        {
            "desiredConfigVersion": 5,
            "drain": True,
            "drainDeadline": "2026-01-01T00:05:00Z",
            "heartbeatIntervalSeconds": 10,
        }
    ).encode()
    client = HttpControlPlaneClient(api.url, REGION, lambda: CREDENTIALS)

    reply = client.heartbeat(_heartbeat())
    assert (reply.desired_config_version, reply.drain, reply.heartbeat_interval_seconds) == (5, True, 10)
    assert reply.drain_deadline == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    (request,) = api.received
    assert request.path == AGENT_HEARTBEAT_PATH and request.headers["Content-Type"] == "application/json"
    sent = json.loads(request.body)
    assert sent["lbvmId"] == "lbvm-1" and sent["activeConnections"] == 12 and sent["appliedConfigVersion"] == 4
    assert Heartbeat.model_validate(sent) == _heartbeat()
    _verify_sigv4(request, api.url)


def test_without_credentials_requests_go_unsigned_with_the_local_principal_header(api: FakeApi) -> None:
    api.body = b'{"desiredConfigVersion": 1, "heartbeatIntervalSeconds": 5}'
    client = HttpControlPlaneClient(
        api.url, REGION, None, headers={"X-Lbcp-Local-Principal": "arn:aws:sts::1:assumed-role/r/i-1"}
    )
    client.heartbeat(_heartbeat())
    (request,) = api.received
    assert "Authorization" not in request.headers
    assert request.headers["X-Lbcp-Local-Principal"] == "arn:aws:sts::1:assumed-role/r/i-1"


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (503, b'{"message": "Service Unavailable"}', "HTTP 503"),
        (403, b'{"message": "Forbidden"}', "HTTP 403"),
        (200, b'{"unexpected": true}', "not a HeartbeatReply"),
        (200, b"<html>", "not a HeartbeatReply"),
    ],
)
def test_unusable_answers_raise_control_plane_errors(api: FakeApi, status: int, body: bytes, message: str) -> None:
    api.status, api.body = status, body
    with pytest.raises(ControlPlaneError, match=message) as error:
        HttpControlPlaneClient(api.url, REGION, None).heartbeat(_heartbeat())
    assert error.value.status == (status if status != 200 else None)


def test_an_unreachable_control_plane_is_a_control_plane_error() -> None:
    from lbcp_local.ports import free_port

    client = HttpControlPlaneClient(f"http://127.0.0.1:{free_port()}", REGION, None, timeout=1)
    with pytest.raises(ControlPlaneError):
        client.get_config("lb-0123456789abcdef0", "lbvm-1")
