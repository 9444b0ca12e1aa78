"""Test scaffolding for the agent: specs, local backends that say who they are, a plain HTTP client."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agent.certs import CertificateMaterial, self_signed
from lbcp.models.agent import AgentConfig
from lbcp.validation import parse_spec

LB_ID = "lb-0123456789abcdef0"
CERT_ARN = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"
OTHER_CERT_ARN = "arn:aws:acm:us-east-1:123456789012:certificate/99999999-8888-7777-6666-555555555555"
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B85"  # RFC 6455, 1.3


def certificate(common_name: str = "lb.test") -> CertificateMaterial:
    now = datetime.now(UTC)
    return self_signed(common_name, now - timedelta(hours=1), now + timedelta(days=2))


def spec_document(
    *,
    type: str = "application",
    proxy: str = "haproxy",
    listeners: list[dict[str, Any]],
    backends: list[dict[str, Any]],
    **extra: Any,
) -> dict[str, Any]:
    return {
        "name": "web",
        "type": type,
        "vpcId": "vpc-0123456789abcdef0",
        "subnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
        "listeners": listeners,
        "backends": backends,
        "capacity": {"min": 1, "max": 3},
        "proxy": proxy,
        **extra,
    }


def agent_config(document: dict[str, Any], version: int = 1) -> AgentConfig:
    return AgentConfig(load_balancer_id=LB_ID, lbvm_id="lbvm-test", config_version=version, spec=parse_spec(document))


def backend(name: str, *ports: int, health: dict[str, Any] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"name": name, "targets": [{"host": "127.0.0.1", "port": port} for port in ports]}
    if health is not None:
        result["healthCheck"] = health
    return result


# --- local backends ------------------------------------------------------------------


class _EchoHandler(BaseHTTPRequestHandler):
    """Answers JSON naming the backend; ``/sleep/<seconds>`` answers late; ``/healthz`` as configured."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, a reused upstream
    # connection waits for the proxy's delayed ACK (40 ms) between them.
    disable_nagle_algorithm = True
    server: _HttpBackendServer

    def do_GET(self) -> None:
        self.server.hits += 1
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self._websocket()
            return
        if self.path.startswith("/sleep/"):
            time.sleep(float(self.path.split("/")[2]))
        status = self.server.health_status if self.path == "/healthz" else 200
        body = json.dumps(
            {
                "backend": self.server.name,
                "port": self.server.server_address[1],
                "path": self.path,
                "host": self.headers.get("Host"),
                "forwardedProto": self.headers.get("X-Forwarded-Proto"),
                "forwardedFor": self.headers.get("X-Forwarded-For"),
                "forwardedPort": self.headers.get("X-Forwarded-Port"),
            }
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _websocket(self) -> None:
        """Accept the upgrade (RFC 6455's handshake), then echo bytes until the peer closes.

        Past the 101 the proxies carry an opaque tunnel, so the echo needs no WebSocket framing.
        """
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        try:
            while data := self.connection.recv(4096):
                self.connection.sendall(data)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _QuietServer(socketserver.ThreadingTCPServer):
    """Proxies reset idle upstream and health-check connections: that is not a test failure."""

    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class _HttpBackendServer(_QuietServer, ThreadingHTTPServer):
    name = ""
    hits = 0
    health_status = 200


class _TcpEchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: _TcpBackendServer = self.server  # type: ignore[assignment]
        self.request.sendall(f"{server.name}\n".encode())
        while data := self.request.recv(4096):
            self.request.sendall(data)


class _TcpBackendServer(_QuietServer):
    name = ""


@dataclass
class Backends:
    """Local HTTP and TCP backends, each on its own loopback port, all shut down at teardown."""

    servers: list[socketserver.BaseServer] = field(default_factory=list)

    def http(self, name: str, health_status: int = 200) -> _HttpBackendServer:
        server = _HttpBackendServer(("127.0.0.1", 0), _EchoHandler)
        server.name = name
        server.health_status = health_status
        self._serve(server)
        return server

    def tcp(self, name: str) -> _TcpBackendServer:
        server = _TcpBackendServer(("127.0.0.1", 0), _TcpEchoHandler)
        server.name = name
        self._serve(server)
        return server

    def _serve(self, server: socketserver.BaseServer) -> None:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.servers.append(server)

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def port_of(server: socketserver.BaseServer) -> int:
    address: Any = server.server_address
    return int(address[1])


# --- clients -------------------------------------------------------------------------


def unverified_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the listeners serve self-signed test certificates
    return context


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


def get(port: int, path: str = "/", *, host: str | None = None, tls: bool = False, timeout: float = 5.0) -> Answer:
    """One request on a fresh connection (what a new client does)."""
    connection: http.client.HTTPConnection
    if tls:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=unverified_tls())
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Host": host} if host else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"raw": raw.decode(errors="replace")}
        return Answer(response.status, body)
    finally:
        connection.close()


def wait_until(condition: Any, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


@contextmanager
def tcp_connection(port: int, *, tls: bool = False, timeout: float = 5.0) -> Iterator[socket.socket]:
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock: socket.socket = unverified_tls().wrap_socket(raw) if tls else raw
    try:
        yield sock
    finally:
        sock.close()


@contextmanager
def websocket(port: int, path: str = "/ws", timeout: float = 10.0) -> Iterator[socket.socket]:
    """A WebSocket opened through the proxy: the upgrade answered 101, then the raw tunnel."""
    key = base64.b64encode(b"lbcp-test-key-16").decode()
    with tcp_connection(port, timeout=timeout) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: lb.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            chunk = sock.recv(1)
            if not chunk:
                raise AssertionError(f"closed during the upgrade: {head!r}")
            head += chunk
        expected = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest())
        assert head.startswith(b"HTTP/1.1 101 "), head
        assert expected in head, head
        yield sock


def read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data


class LoadGenerator:
    """Clients requesting as fast as they can, each request on a fresh connection, until stopped.

    Every request that does not come back 200 is a failure, with its reason kept.
    ``keep_alive`` reuses one connection per client instead (and reconnects after
    a server-side close, as an HTTP client does for an idle connection).
    """

    def __init__(self, port: int, *, clients: int = 4, path: str = "/", keep_alive: bool = False) -> None:
        self.port = port
        self.path = path
        self.keep_alive = keep_alive
        self.ok = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def __enter__(self) -> LoadGenerator:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _client(self) -> None:
        kept: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            connection = kept or http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            kept = None
            try:
                connection.request("GET", self.path, headers={} if self.keep_alive else {"Connection": "close"})
                response = connection.getresponse()
                response.read()
                outcome = None if response.status == 200 else f"HTTP {response.status}"
                if self.keep_alive and not response.will_close:
                    kept = connection
            except (OSError, http.client.HTTPException) as exc:
                outcome = f"{type(exc).__name__}: {exc}"
            if kept is None:
                connection.close()
            with self._lock:
                if outcome is None:
                    self.ok += 1
                else:
                    self.failures.append(outcome)
