"""Real HTTP clients against a load balancer's entry, recording every request's fate.

Four kinds of client run at once, as a load balancer's users do:

- ``fresh``: a new TCP connection for every request (what most health probes and
  short-lived clients do);
- ``keepalive``: one connection reused for request after request. Like any
  well-behaved HTTP client (RFC 9112, section 9.3.1), it sends a GET again on a
  new connection when the server closed the idle one before answering; that is
  recorded as ``retried``, not as a failure;
- ``slow``: requests the backend answers only after ``slow_ms`` (in flight for a
  while when an LBVM goes away);
- ``stream``: a streamed response that lasts ``stream_seconds``; one that ends
  before its last chunk is a failure.

A failure is a connection error, a reset, a response cut short, or a 5xx (no
proxy of ours should ever produce one). ``summarize`` turns the records of a
time window into the numbers a person reads: sent, failed and why, p50/p99.
"""

from __future__ import annotations

import http.client
import json
import selectors
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

ClientKind = Literal["fresh", "keepalive", "slow", "stream"]


@dataclass(frozen=True)
class RequestRecord:
    kind: ClientKind
    started: float  # monotonic seconds
    ended: float
    outcome: str  # "ok", "retried", "5xx:502", "4xx:403", or the error's type
    backend: str | None = None

    @property
    def failed(self) -> bool:
        return self.outcome not in ("ok", "retried") and not self.outcome.startswith("4xx")

    @property
    def latency_ms(self) -> float:
        return (self.ended - self.started) * 1000


@dataclass(frozen=True)
class TrafficShape:
    fresh_clients: int = 2
    keepalive_clients: int = 2
    slow_clients: int = 1
    stream_clients: int = 1
    pause_seconds: float = 0.05  # between two requests of one client
    slow_ms: int = 1500
    stream_seconds: float = 5.0
    timeout_seconds: float = 10.0
    path: str = "/"


class ClosedBeforeAnswer(Exception):
    """The server closed an idle keep-alive connection before any byte of an answer."""


@dataclass
class TrafficGenerator:
    """Clients of ``host:port`` until ``stop``; ``records`` holds every request that ended."""

    host: str
    port: int
    shape: TrafficShape = field(default_factory=TrafficShape)
    clock: Callable[[], float] = time.monotonic
    records: list[RequestRecord] = field(default_factory=list, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _threads: list[threading.Thread] = field(default_factory=list, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def start(self) -> TrafficGenerator:
        shape = self.shape
        plan: list[tuple[str, Callable[[], None]]] = [
            *((f"fresh-{n}", self._fresh) for n in range(shape.fresh_clients)),
            *((f"keepalive-{n}", self._keepalive) for n in range(shape.keepalive_clients)),
            *((f"slow-{n}", self._slow) for n in range(shape.slow_clients)),
            *((f"stream-{n}", self._stream) for n in range(shape.stream_clients)),
        ]
        for name, loop in plan:
            thread = threading.Thread(target=loop, name=f"traffic-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.shape.timeout_seconds + self.shape.stream_seconds + 5)

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self.records)

    # --- the clients ------------------------------------------------------------------

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self.records.append(record)

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=self.shape.timeout_seconds)

    def _fresh(self) -> None:
        self._one_per_connection("fresh", self.shape.path)

    def _slow(self) -> None:
        self._one_per_connection("slow", f"/slow?ms={self.shape.slow_ms}")

    def _one_per_connection(self, kind: ClientKind, path: str) -> None:
        while not self._stop.is_set():
            started = self.clock()
            connection = self._connection()
            try:
                outcome, backend = _get(connection, path)
            except (OSError, http.client.HTTPException, ClosedBeforeAnswer) as exc:
                outcome, backend = type(exc).__name__, None
            finally:
                connection.close()
            self._record(RequestRecord(kind, started, self.clock(), outcome, backend))
            self._stop.wait(self.shape.pause_seconds)

    def _keepalive(self) -> None:
        connection = self._connection()
        while not self._stop.is_set():
            started = self.clock()
            try:
                outcome, backend = _get(connection, self.shape.path)
            except ClosedBeforeAnswer:
                # Closed while idle, before any answer: a client sends a GET again on a new connection.
                connection.close()
                connection = self._connection()
                try:
                    outcome, backend = _get(connection, self.shape.path)
                    outcome = "retried" if outcome == "ok" else outcome
                except (OSError, http.client.HTTPException, ClosedBeforeAnswer) as exc:
                    outcome, backend = type(exc).__name__, None
            except (OSError, http.client.HTTPException) as exc:
                outcome, backend = type(exc).__name__, None
            self._record(RequestRecord("keepalive", started, self.clock(), outcome, backend))
            if outcome not in ("ok", "retried"):
                connection.close()
                connection = self._connection()
            self._stop.wait(self.shape.pause_seconds)
        connection.close()

    def _stream(self) -> None:
        while not self._stop.is_set():
            started = self.clock()
            connection = self._connection()
            outcome, backend = "ok", None
            try:
                connection.request("GET", f"/stream?seconds={self.shape.stream_seconds:g}")
                response = connection.getresponse()
                if response.status >= 400:
                    outcome = _status_outcome(response.status)
                    response.read()
                else:
                    body = response.read()  # raises IncompleteRead when cut short
                    backend = body.split(b" ", 1)[0].decode() if body else None
            except (OSError, http.client.HTTPException) as exc:
                outcome = type(exc).__name__
            finally:
                connection.close()
            self._record(RequestRecord("stream", started, self.clock(), outcome, backend))
            self._stop.wait(self.shape.pause_seconds)


def _status_outcome(status: int) -> str:
    if status >= 500:
        return f"5xx:{status}"
    if status >= 400:
        return f"4xx:{status}"
    return "ok"


def _get(connection: http.client.HTTPConnection, path: str) -> tuple[str, str | None]:
    """One GET; raises ClosedBeforeAnswer when the server closed the connection before answering."""
    try:
        connection.request("GET", path, headers={"Host": "traffic.lbcp.local"})
        response = connection.getresponse()
    except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
        if connection.sock is None or isinstance(exc, http.client.RemoteDisconnected | BrokenPipeError):
            raise ClosedBeforeAnswer from exc
        raise
    body = response.read()
    outcome = _status_outcome(response.status)
    backend = None
    if outcome == "ok" and body.startswith(b"{"):
        backend = json.loads(body).get("backend")
    return outcome, backend


@dataclass(frozen=True)
class PhaseStats:
    phase: str
    seconds: float
    sent: int
    failed: int
    retried: int
    server_errors: int  # 5xx
    client_errors: int  # 4xx: not a loss, but a WAF that blocks real traffic shows here
    failures: dict[str, int]  # outcome -> count
    p50_ms: float | None
    p99_ms: float | None


def summarize(phase: str, records: Sequence[RequestRecord], start: float, end: float) -> PhaseStats:
    """The requests that started in [start, end)."""
    inside = [record for record in records if start <= record.started < end]
    # Latency of what was answered in full; streams and slow requests last by design.
    latencies = sorted(record.latency_ms for record in inside if not record.failed and record.kind != "stream")
    failures = Counter(record.outcome for record in inside if record.failed)
    return PhaseStats(
        phase=phase,
        seconds=round(end - start, 1),
        sent=len(inside),
        failed=sum(failures.values()),
        retried=sum(1 for record in inside if record.outcome == "retried"),
        server_errors=sum(count for outcome, count in failures.items() if outcome.startswith("5xx")),
        client_errors=sum(1 for record in inside if record.outcome.startswith("4xx")),
        failures=dict(failures),
        p50_ms=round(statistics.median(latencies), 1) if latencies else None,
        p99_ms=round(_quantile(latencies, 0.99), 1) if latencies else None,
    )


@dataclass(frozen=True)
class LossAtKill:
    """What a lost instance cost the clients: requests it had, and new ones sent to it before the entry knew."""

    in_flight: int  # requests in flight through the entry when the instance died (on any LBVM)
    in_flight_failed: int
    started_after: int
    started_after_failed: int
    # From the kill to the start of the last failed request sent after it: how long the entry kept routing to it.
    window_seconds: float | None


def loss_at_kill(records: Sequence[RequestRecord], killed_at: float, until: float) -> LossAtKill:
    in_flight = [record for record in records if record.started < killed_at < record.ended]
    after = [record for record in records if killed_at <= record.started < until]
    failed_after = [record for record in after if record.failed]
    return LossAtKill(
        in_flight=len(in_flight),
        in_flight_failed=sum(1 for record in in_flight if record.failed),
        started_after=len(after),
        started_after_failed=len(failed_after),
        window_seconds=round(max(r.started for r in failed_after) - killed_at, 1) if failed_after else None,
    )


def _quantile(ordered: Sequence[float], q: float) -> float:
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


class HeldConnections:
    """``count`` streaming requests held open through ``host:port``: load a scaler can see as connections.

    One thread reads every stream (a selector), so holding hundreds costs the
    client little; each stream lasts ``seconds`` unless ``release`` closes it.
    """

    def __init__(self, host: str, port: int, count: int, seconds: float = 600.0) -> None:
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        for _ in range(count):
            sock = socket.create_connection((host, port), timeout=10)
            sock.sendall(f"GET /stream?seconds={seconds:g} HTTP/1.1\r\nHost: held.lbcp.local\r\n\r\n".encode())
            sock.setblocking(False)
            self._selector.register(sock, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._drain, name="held-connections", daemon=True)
        self._thread.start()

    @property
    def open(self) -> int:
        return len(self._selector.get_map())

    def _drain(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.2):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:  # the stream ended (or was cut)
                    self._selector.unregister(sock)
                    sock.close()

    def release(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for key in list(self._selector.get_map().values()):
            self._selector.unregister(key.fileobj)
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()
