"""Stand-ins for what surrounds the agent loop: a clock that only moves when told, a scripted control plane."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from agent.control import ControlPlaneError
from lbcp.models.agent import AgentConfig, Heartbeat, HeartbeatReply


class FakeClock:
    def __init__(self) -> None:
        self.wall = datetime(2026, 1, 1, tzinfo=UTC)
        self.mono = 1000.0
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


@dataclass
class ScriptedControlPlane:
    """The control plane's side of the protocol, in memory: configs by version and what to reply."""

    configs: dict[int, AgentConfig] = field(default_factory=dict)
    desired: int = 0
    drain: bool = False
    drain_deadline: datetime | None = None
    interval: int = 5
    failing: int = 0  # the next N heartbeats fail
    heartbeats: list[Heartbeat] = field(default_factory=list)
    config_fetches: int = 0
    preload: int | None = None  # told to agents that announce the capability

    def publish(self, config: AgentConfig) -> None:
        self.configs[config.config_version] = config
        self.desired = config.config_version

    def get_config(self, load_balancer_id: str, lbvm_id: str, version: int | None = None) -> AgentConfig:
        self.config_fetches += 1
        if version is not None and version not in (self.desired, self.preload):
            raise ControlPlaneError(f"HTTP 409: version {version} is not offered to {lbvm_id}", status=409)
        return self.configs[self.desired if version is None else version]

    def heartbeat(self, heartbeat: Heartbeat) -> HeartbeatReply:
        self.heartbeats.append(heartbeat)
        if self.failing:
            self.failing -= 1
            raise ControlPlaneError("HTTP 503: Service Unavailable", status=503)
        return HeartbeatReply(
            desired_config_version=self.desired,
            drain=self.drain,
            drain_deadline=self.drain_deadline,
            heartbeat_interval_seconds=self.interval,
            preload_config_version=self.preload if heartbeat.preloads else None,
        )

    @property
    def last(self) -> Heartbeat:
        return self.heartbeats[-1]


class ControlPlaneServer:
    """A ScriptedControlPlane behind the two HTTP routes, on loopback: for the agent as a process."""

    def __init__(self, script: ScriptedControlPlane) -> None:
        import threading
        import time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from lbcp.models.agent import AGENT_CONFIG_PATH, AGENT_HEARTBEAT_PATH

        self.script = script
        # (monotonic time, desired version) of every heartbeat answered: when the agent learned of a version.
        self.replies: list[tuple[float, int]] = []
        replies = self.replies
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if not self.path.startswith(AGENT_CONFIG_PATH + "?"):
                    self._send(404, b"{}")
                    return
                with lock:
                    config = script.get_config("", "")
                self._send(200, config.model_dump_json(by_alias=True).encode())

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                heartbeat = Heartbeat.model_validate_json(self.rfile.read(length))
                if self.path != AGENT_HEARTBEAT_PATH:
                    self._send(404, b"{}")
                    return
                try:
                    with lock:
                        reply = script.heartbeat(heartbeat)
                        replies.append((time.monotonic(), reply.desired_config_version))
                except ControlPlaneError:
                    self._send(503, b'{"message": "Service Unavailable"}')
                    return
                self._send(200, reply.model_dump_json(by_alias=True).encode())

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
