"""The local front doors: HTTP requests in, events to the real handlers, responses out.

``LocalApiServer`` does what API Gateway does for a ``$default`` route with a
Lambda proxy integration (payload 2.0), and ``LocalApiServer.agent_endpoint``
what the agent endpoint's Lambda function URL does (the same payload 2.0), on
a port of its own: local agents are given its URL as LBVMs are given the
function URL. Both minus SigV4: requests are accepted unsigned and attributed
to a local developer principal, or to the principal named in the
``X-Lbcp-Local-Principal`` header (how local agents present their instance
role session). Like a Lambda instance, each handler serves one request at a
time.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lbcp_local.invoke import ApiResponse, invoke_agent_endpoint, invoke_api

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's own limit; the handler enforces a smaller one
LOCAL_PRINCIPAL_HEADER = "x-lbcp-local-principal"


class _Handler(BaseHTTPRequestHandler):
    server_version = "lbcp-local"
    protocol_version = "HTTP/1.1"
    lock = threading.Lock()
    quiet = False
    name = "api"
    invoke: Callable[..., ApiResponse] = staticmethod(invoke_api)

    def _serve(self) -> None:
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_PAYLOAD_BYTES:
            self._send(413, {"Content-Type": "application/json"}, b'{"message":"Request Entity Too Large"}')
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else None
        headers = {name: value for name, value in self.headers.items() if name.lower() != LOCAL_PRINCIPAL_HEADER}
        # Local stand-in for SigV4 identity: local agents say which instance they are.
        principal = self.headers.get(LOCAL_PRINCIPAL_HEADER)
        with self.lock:
            response = self.invoke(self.command, path, query=query, headers=headers, body=body, principal_arn=principal)
        self._send(response.status, response.headers, response.body)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def __getattr__(self, name: str) -> Any:
        # Every method goes to the API, which answers the ones it has no route for with 405 and
        # Allow, as API Gateway passes any method to a $default route: no request goes unanswered
        # (BaseHTTPRequestHandler would answer an unknown method with an HTML 501).
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        if not self.quiet:
            sys.stderr.write(f"{self.name}  {self.address_string()} {format % tuple(str(a) for a in args)}\n")


class LocalApiServer:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        quiet: bool = False,
        *,
        name: str = "api",
        invoke: Callable[..., ApiResponse] = invoke_api,
    ) -> None:
        # A lock of its own: the two endpoints are two functions, each serving one request at a time.
        attributes = {"quiet": quiet, "name": name, "invoke": staticmethod(invoke), "lock": threading.Lock()}
        handler = type("Handler", (_Handler,), attributes)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"lbcp-local-{name}", daemon=True)

    @classmethod
    def agent_endpoint(cls, host: str = "127.0.0.1", port: int = 0, quiet: bool = False) -> LocalApiServer:
        """The stand-in for the agent endpoint's function URL (port 0: any free one)."""
        return cls(host, port, quiet, name="agent", invoke=invoke_agent_endpoint)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
