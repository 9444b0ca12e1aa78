"""Drain mode on the real proxies: no new connections, in-flight ones finish, the count falls to zero."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from typing import Any

import pytest

from agent.dataplane import ProxyDataPlane
from agent.model import GOAWAY_CLOSE_SECONDS
from agent.render import ProxyName
from lbcp_local.ports import free_port
from tests.agent import h2
from tests.agent.conftest import DataPlaneFactory
from tests.agent.helpers import (
    CERT_ARN,
    Backends,
    agent_config,
    backend,
    get,
    port_of,
    read_line,
    spec_document,
    tcp_connection,
    wait_until,
    websocket,
)

pytestmark = pytest.mark.proxies
PROXIES: list[ProxyName] = ["haproxy", "nginx"]
LONG_LIVED_BOUND = 3  # drain.maxConnectionLifetimeSeconds below, well inside the drain timeout


class _Request(threading.Thread):
    """One request in flight on its own connection; records how it ended and when."""

    def __init__(self, port: int, path: str) -> None:
        super().__init__(daemon=True)
        self.port, self.path = port, path
        self.status: int | None = None
        self.error: str | None = None
        self.ended_at = 0.0

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request("GET", self.path)
            response = connection.getresponse()
            response.read()
            self.status = response.status
        except (OSError, http.client.HTTPException) as exc:
            self.error = type(exc).__name__
        finally:
            self.ended_at = time.monotonic()
            connection.close()


def _refused_once(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except (ConnectionRefusedError, ConnectionResetError):
        # Reset: the connection reached the listen queue of a worker that was closing its
        # listener (NGINX's old workers close theirs as they quit); not served either way.
        return True
    return False


# NGINX's reload returns once the new workers run; the old ones close their inherited
# listeners only when they handle the master's SIGQUIT, a moment later (CI caught one
# accepting then). The entry stops sending new connections after its deregistration delay
# (seconds), so a listener that closes within this bound loses nobody.
LISTENERS_CLOSE_WITHIN = 2.0


def _refused(port: int) -> bool:
    return wait_until(lambda: _refused_once(port), timeout=LISTENERS_CLOSE_WITHIN)


def _serving_app(
    proxy: ProxyName,
    backends: Backends,
    make_dataplane: DataPlaneFactory,
    *,
    tls: bool = False,
    lifetime: int | None = None,
) -> tuple[ProxyDataPlane, int]:
    """A data plane serving one HTTP (or HTTPS) listener in front of the ``app`` backend; and its port."""
    app = backends.http("app")
    port = free_port()
    listener: dict[str, Any] = {"protocol": "HTTP", "port": port, "defaultBackend": "app"}
    if tls:
        listener.update(protocol="HTTPS", certificateArn=CERT_ARN)
    extra: dict[str, Any] = {}
    if lifetime is not None:
        extra["drain"] = {"timeoutSeconds": 60, "maxConnectionLifetimeSeconds": lifetime, "connectionThreshold": 0}
    document = spec_document(proxy=proxy, listeners=[listener], backends=[backend("app", port_of(app))], **extra)
    dataplane = make_dataplane(proxy)
    dataplane.apply(agent_config(document))
    return dataplane, port


@pytest.mark.parametrize("proxy", PROXIES)
def test_l7_drain_finishes_requests_closes_keep_alive_and_bounds_long_lived_ones(
    proxy: ProxyName, backends: Backends, make_dataplane: DataPlaneFactory
) -> None:
    dataplane, port = _serving_app(proxy, backends, make_dataplane, lifetime=LONG_LIVED_BOUND)

    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # a keep-alive client between requests
    idle.request("GET", "/")
    idle.getresponse().read()
    short, long_lived = _Request(port, "/sleep/1"), _Request(port, "/sleep/30")
    short.start()
    long_lived.start()
    assert wait_until(lambda: dataplane.active_connections() == 3, timeout=3)

    drained_at = time.monotonic()
    dataplane.drain()
    assert dataplane.draining
    assert _refused(port)  # new connections: nobody listens any more (the entry sends them elsewhere)

    if proxy == "haproxy":
        # The idle connection stays usable for one more request, answered with "Connection: close".
        idle.request("GET", "/")
        response = idle.getresponse()
        response.read()
        assert response.status == 200 and response.getheader("Connection") == "close"
    else:
        # NGINX closes idle keep-alive connections at once (a client retries an idempotent request).
        assert idle.sock is not None
        assert idle.sock.recv(1) == b""
    idle.close()

    counts: list[int] = []

    def sampled_zero() -> bool:
        counts.append(dataplane.active_connections())
        return counts[-1] == 0

    assert wait_until(sampled_zero, timeout=10)
    short.join(5)
    long_lived.join(5)
    assert short.status == 200  # in flight when the drain began: finished
    # Long-lived: cut at the bound (NGINX closes the connection; HAProxy's hard stop may answer 502 first).
    assert long_lived.status != 200 and (long_lived.error is not None or long_lived.status == 502)
    assert LONG_LIVED_BOUND - 0.5 <= long_lived.ended_at - drained_at <= LONG_LIVED_BOUND + 3
    assert counts[0] >= 1 and counts[-1] == 0 and counts == sorted(counts, reverse=True)  # falling, to zero


@pytest.mark.parametrize("proxy", PROXIES)
def test_http2_drain_sends_goaway_finishes_streams_and_closes_long_before_the_lifetime_bound(
    proxy: ProxyName, backends: Backends, make_dataplane: DataPlaneFactory
) -> None:
    lifetime = 30
    dataplane, port = _serving_app(proxy, backends, make_dataplane, tls=True, lifetime=lifetime)
    busy, idle = h2.Connection.open(port), h2.Connection.open(port)  # a stream in flight / between streams
    busy.get(1, "/sleep/1")
    assert wait_until(lambda: dataplane.active_connections() == 2, timeout=3)

    drained_at = time.monotonic()
    dataplane.drain()
    readers = [threading.Thread(target=connection.read_to_close, daemon=True) for connection in (busy, idle)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(lifetime)

    for connection in (busy, idle):
        # A graceful GOAWAY: the client opens a new connection (through the entry, to
        # another LBVM) for its next request, and nothing it sent is refused.
        goaway = connection.goaway()
        assert goaway is not None and goaway[1] == h2.NO_ERROR, connection.frames
        assert connection.closed_at is not None
    assert busy.status(1) == 200 and busy.ended(1) and not busy.reset(1)  # the stream in flight finished
    # Closed by the proxy once idle, not held until the lifetime bound cuts it.
    bound = GOAWAY_CLOSE_SECONDS + 1
    assert idle.closed_at is not None and idle.closed_at - drained_at <= bound
    answered_at = next(frame.at for frame in busy.frames if frame.stream == 1 and frame.flags & h2.END_STREAM)
    assert busy.closed_at is not None and busy.closed_at - answered_at <= bound
    busy.close()  # a client closes its end on the proxy's FIN (NGINX lingers until then)
    idle.close()
    assert wait_until(lambda: dataplane.active_connections() == 0, timeout=2)


@pytest.mark.parametrize("proxy", PROXIES)
def test_a_websocket_keeps_working_through_the_drain_until_the_lifetime_bound(
    proxy: ProxyName, backends: Backends, make_dataplane: DataPlaneFactory
) -> None:
    dataplane, port = _serving_app(proxy, backends, make_dataplane, lifetime=LONG_LIVED_BOUND)
    with websocket(port) as tunnel:
        tunnel.sendall(b"before\n")
        assert read_line(tunnel) == b"before\n"
        drained_at = time.monotonic()
        dataplane.drain()
        assert _refused(port)
        tunnel.sendall(b"during\n")  # the tunnel is not cut by the drain itself
        assert read_line(tunnel) == b"during\n"
        assert dataplane.active_connections() == 1
        tunnel.settimeout(LONG_LIVED_BOUND + 5)
        try:
            cut = tunnel.recv(1) == b""
        except ConnectionResetError:
            cut = True
        cut_after = time.monotonic() - drained_at
    assert cut and LONG_LIVED_BOUND - 0.5 <= cut_after <= LONG_LIVED_BOUND + 3  # then cut at the bound
    assert wait_until(lambda: dataplane.active_connections() == 0, timeout=2)


def test_a_half_closed_http1_request_still_gets_its_slow_answer(
    backends: Backends, make_dataplane: DataPlaneFactory
) -> None:
    """HAProxy's `timeout client-fin` on HTTP listeners bounds GOAWAY'd HTTP/2 connections, not this."""
    _, port = _serving_app("haproxy", backends, make_dataplane)
    with tcp_connection(port, timeout=15) as session:
        slow = GOAWAY_CLOSE_SECONDS + 2
        session.sendall(f"GET /sleep/{slow} HTTP/1.1\r\nHost: lb.test\r\nConnection: close\r\n\r\n".encode())
        session.shutdown(socket.SHUT_WR)  # the request is sent; the client waits for the answer
        answer = b""
        while chunk := session.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:80]


@pytest.mark.parametrize("proxy", PROXIES)
def test_l4_drain_lets_connections_run_until_the_deadline(
    proxy: ProxyName, backends: Backends, make_dataplane: DataPlaneFactory
) -> None:
    db = backends.tcp("db")
    port = free_port()
    document: dict[str, Any] = spec_document(
        type="classic",
        proxy=proxy,
        listeners=[{"protocol": "TCP", "port": port, "defaultBackend": "db"}],
        backends=[backend("db", port_of(db), health={"protocol": "TCP"})],
        drain={"timeoutSeconds": 60},
    )
    dataplane = make_dataplane(proxy)
    dataplane.apply(agent_config(document))
    with tcp_connection(port) as session:
        assert read_line(session) == b"db\n"
        dataplane.drain()
        assert _refused(port)
        time.sleep(0.5)
        session.sendall(b"still here\n")  # an L4 session is not cut by the drain
        assert read_line(session) == b"still here\n"
        assert dataplane.active_connections() == 1
        # The drain deadline: the agent stops the proxy, and what is left is cut.
        dataplane.stop()
        session.settimeout(5)
        assert session.recv(1) == b""
    assert dataplane.active_connections() == 0


@pytest.mark.parametrize("proxy", PROXIES)
def test_undrain_serves_the_last_good_config_again(
    proxy: ProxyName, backends: Backends, make_dataplane: DataPlaneFactory
) -> None:
    app = backends.http("app")
    port = free_port()
    document = spec_document(
        proxy=proxy,
        listeners=[{"protocol": "HTTP", "port": port, "defaultBackend": "app"}],
        backends=[backend("app", port_of(app))],
    )
    dataplane = make_dataplane(proxy)
    dataplane.apply(agent_config(document, version=5))
    dataplane.drain()
    assert _refused(port) and dataplane.applied_version() == 5
    dataplane.undrain()
    assert not dataplane.draining and get(port).status == 200
