"""Small real HTTP servers on loopback: the backends the seeded example spec points at.

Each answers every GET with a JSON line naming itself, the path and the
headers a load balancer adds, so a request sent through an LBVM shows where
it went; ``/healthz`` answers 200 for the proxies' health checks. Two paths
make the requests a drain must not cut: ``/slow?ms=N`` answers after N ms,
``/stream?seconds=N`` streams a chunk every 100 ms for N seconds.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lbcp_local.ports import LOOPBACK


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one go: no delayed-ACK pause on a reused upstream connection.
    disable_nagle_algorithm = True
    server: _BackendServer

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path != "/healthz":  # the proxies' health checks are not requests anyone sent
            self.server.count()
        arguments = dict(part.partition("=")[::2] for part in query.split("&") if part)
        if path == "/slow":
            time.sleep(min(60_000, int(arguments.get("ms", "1000") or 0)) / 1000)
        if path == "/stream":
            self._stream(min(600.0, float(arguments.get("seconds", "5") or 0)))
            return
        body = (
            json.dumps(
                {
                    "backend": self.server.name,
                    "path": self.path,
                    "host": self.headers.get("Host"),
                    "forwardedFor": self.headers.get("X-Forwarded-For"),
                    "forwardedProto": self.headers.get("X-Forwarded-Proto"),
                }
            )
            + "\n"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, seconds: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        deadline = time.monotonic() + seconds
        count = 0
        while time.monotonic() < deadline:
            chunk = f"{self.server.name} {count}\n".encode()
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
            count += 1
            time.sleep(0.1)
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the runtime's output is the control plane's story, not every request


class _BackendServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default accept backlog is 5: a burst of new upstream connections (the demo's
    # 240 held streams) overflows it, the kernel drops SYNs, and a request waits out 1 s, 3 s, 7 s
    # retransmissions and times out. A production server listens with hundreds (NGINX 511).
    request_queue_size = 1024

    def __init__(self, name: str) -> None:
        super().__init__((LOOPBACK, 0), _Handler)
        self.name = name
        self.requests = 0
        self._lock = threading.Lock()

    def count(self) -> None:
        with self._lock:
            self.requests += 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Proxies close health-check connections with a reset: routine, not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class LocalBackends:
    """One server per name, each on a free loopback port, until ``stop``."""

    names: tuple[str, ...]
    _servers: dict[str, _BackendServer] = field(default_factory=dict, init=False)

    def start(self) -> LocalBackends:
        for name in self.names:
            server = _BackendServer(name)
            self._servers[name] = server
            threading.Thread(target=server.serve_forever, name=f"backend-{name}", daemon=True).start()
        return self

    def requests(self, name: str) -> int:
        """How many requests this server has answered (or begun to), health checks left out."""
        return self._servers[name].requests

    def port(self, name: str) -> int:
        port: int = self._servers[name].server_address[1]
        return port

    def stop(self) -> None:
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
        self._servers.clear()
