"""Real proxies on loopback serve traffic to local backends as the spec's listeners and rules say."""

from __future__ import annotations

import socket
import socketserver
import ssl
import threading
from typing import Any

import pytest

from agent.dataplane import ApplyError
from agent.proxy.haproxy import HaproxyDriver
from agent.render import ProxyName
from lbcp_local.ports import free_port
from tests.agent.conftest import DataPlaneFactory
from tests.agent.helpers import (
    CERT_ARN,
    OTHER_CERT_ARN,
    Backends,
    agent_config,
    backend,
    get,
    port_of,
    read_line,
    spec_document,
    tcp_connection,
    unverified_tls,
    wait_until,
)

pytestmark = pytest.mark.proxies
PROXIES: list[ProxyName] = ["haproxy", "nginx"]


@pytest.mark.parametrize("proxy", PROXIES)
def test_application_lb_routes_by_host_and_path_first_match_wins(
    proxy: ProxyName, backends: Backends, make_dataplane: DataPlaneFactory
) -> None:
    app, api, img = backends.http("app"), backends.http("api"), backends.http("img")
    http_port, https_port = free_port(), free_port()
    document = {
        "name": "web",
        "type": "application",
        "vpcId": "vpc-0123456789abcdef0",
        "subnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
        "proxy": proxy,
        "capacity": {"min": 1, "max": 2},
        "listeners": [
            {
                "protocol": "HTTP",
                "port": http_port,
                "defaultBackend": "app",
                "rules": [
                    {"host": "*.img.example.com", "pathPrefix": "/i/", "backend": "img"},
                    {"pathPrefix": "/i/", "backend": "api"},
                    {"host": "api.example.com", "backend": "api"},
                ],
            },
            {
                "protocol": "HTTPS",
                "port": https_port,
                "certificateArn": CERT_ARN,
                "defaultBackend": "app",
                "rules": [{"pathPrefix": "/api/", "backend": "api"}],
            },
        ],
        "backends": [backend("app", port_of(app)), backend("api", port_of(api)), backend("img", port_of(img))],
    }
    dataplane = make_dataplane(proxy)
    dataplane.apply(agent_config(document))

    def route(path: str, host: str, *, tls: bool = False) -> str:
        answer = get(https_port if tls else http_port, path, host=host, tls=tls)
        assert answer.status == 200, answer
        assert answer.body["path"] == path and answer.body["host"] == host  # the client's Host reaches the target
        backend_name: str = answer.body["backend"]
        return backend_name

    assert route("/i/cat.png", "a.img.example.com") == "img"  # rule 0
    assert route("/i/cat.png", "deep.a.img.example.com") == "img"  # a wildcard covers every level below
    assert route("/i/cat.png", "img.example.com") == "api"  # not below img.example.com: rule 1 matches
    assert route("/i/cat.png", "www.example.com") == "api"  # rule 1
    assert route("/x", "API.Example.com:8080") == "api"  # rule 2: case and port do not matter
    assert route("/x", "www.example.com") == "app"  # default
    assert route("/ix", "a.img.example.com") == "app"  # a prefix is a prefix of the raw path
    assert route("/api/v1", "any.example.com", tls=True) == "api"
    assert route("/", "any.example.com", tls=True) == "app"

    plain = get(http_port, "/", host="www.example.com").body
    secure = get(https_port, "/", host="www.example.com", tls=True).body
    assert (plain["forwardedProto"], secure["forwardedProto"]) == ("http", "https")
    assert "127.0.0.1" in plain["forwardedFor"]

    # TLS is terminated with the certificate fetched for the listener, and HTTP/2 is offered.
    context = unverified_tls()
    context.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", https_port)) as raw, context.wrap_socket(raw) as tls:
        assert tls.selected_alpn_protocol() == "h2"
        assert _common_name(tls) == "lb.test"


@pytest.mark.parametrize("proxy", PROXIES)
def test_classic_lb_passes_tcp_through_and_terminates_tls_at_l4(
    proxy: ProxyName, backends: Backends, make_dataplane: DataPlaneFactory
) -> None:
    db, web = backends.tcp("db"), backends.http("web")
    tcp_port, tls_port, http_port = free_port(), free_port(), free_port()
    document: dict[str, Any] = {
        "name": "legacy",
        "type": "classic",
        "vpcId": "vpc-0123456789abcdef0",
        "subnetIds": ["subnet-0123456789abcdef0"],
        "proxy": proxy,
        "capacity": {"min": 1, "max": 2},
        "listeners": [
            {"protocol": "TCP", "port": tcp_port, "defaultBackend": "db"},
            {"protocol": "TLS", "port": tls_port, "certificateArn": OTHER_CERT_ARN, "defaultBackend": "db"},
            {"protocol": "HTTP", "port": http_port, "defaultBackend": "web"},
        ],
        "backends": [backend("db", port_of(db), health={"protocol": "TCP"}), backend("web", port_of(web))],
    }
    make_dataplane(proxy).apply(agent_config(document))

    with tcp_connection(tcp_port) as sock:
        assert read_line(sock) == b"db\n"
        sock.sendall(b"SELECT 1;\n")
        assert read_line(sock) == b"SELECT 1;\n"
    with tcp_connection(tls_port, tls=True) as sock:
        assert isinstance(sock, ssl.SSLSocket) and _common_name(sock) == "other.test"
        assert read_line(sock) == b"db\n"  # the backend speaks plain TCP behind the TLS listener
        sock.sendall(b"over tls\n")
        assert read_line(sock) == b"over tls\n"
    assert get(http_port, "/").body["backend"] == "web"


@pytest.mark.parametrize("proxy", PROXIES)
def test_a_target_that_refuses_connections_costs_no_client_a_request(
    proxy: ProxyName, backends: Backends, make_dataplane: DataPlaneFactory
) -> None:
    alive, dead_port = backends.http("alive"), free_port()
    port = free_port()
    document = {
        "name": "web",
        "type": "application",
        "vpcId": "vpc-0123456789abcdef0",
        "subnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
        "proxy": proxy,
        "capacity": {"min": 1, "max": 2},
        "listeners": [{"protocol": "HTTP", "port": port, "defaultBackend": "app"}],
        "backends": [backend("app", dead_port, port_of(alive))],
    }
    make_dataplane(proxy).apply(agent_config(document))
    answers = [get(port, f"/{i}") for i in range(10)]
    assert [a.status for a in answers] == [200] * 10
    assert {a.body["backend"] for a in answers} == {"alive"}


def test_haproxy_health_checks_take_a_failing_target_out(backends: Backends, make_dataplane: DataPlaneFactory) -> None:
    healthy, sick = backends.http("healthy"), backends.http("sick", health_status=500)
    port = free_port()
    health = {
        "protocol": "HTTP",
        "path": "/healthz",
        "intervalSeconds": 2,
        "timeoutSeconds": 1,
        "unhealthyThreshold": 1,
    }
    document: dict[str, Any] = {
        "name": "web",
        "type": "application",
        "vpcId": "vpc-0123456789abcdef0",
        "subnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
        "capacity": {"min": 1, "max": 2},
        "listeners": [{"protocol": "HTTP", "port": port, "defaultBackend": "app"}],
        "backends": [backend("app", port_of(healthy), port_of(sick), health=health)],
    }
    dataplane = make_dataplane("haproxy")
    dataplane.apply(agent_config(document))
    driver = dataplane.driver
    assert isinstance(driver, HaproxyDriver)

    def sick_is_down() -> bool:
        table = driver.table()
        stats = driver.cli.command(f"@!{table.current[0]} show stat b_app_http 4 -1")
        sick_server = f"b_app_http,127.0.0.1:{port_of(sick)},"
        return any(line.startswith(sick_server) and ",DOWN," in line for line in stats.splitlines())

    assert wait_until(sick_is_down, timeout=6.0), "HAProxy never marked the target failing /healthz down"
    assert {get(port, f"/{i}").body["backend"] for i in range(8)} == {"healthy"}

    # A reload keeps what the checks learned: the new worker does not try the sick target again.
    document["listeners"][0]["idleTimeoutSeconds"] = 30
    dataplane.apply(agent_config(document, version=2))
    assert sick_is_down()
    assert {get(port, f"/{i}").body["backend"] for i in range(8)} == {"healthy"}


def test_haproxy_checks_a_plain_tcp_target_with_a_connect_unless_told_otherwise(
    backends: Backends, make_dataplane: DataPlaneFactory
) -> None:
    # The db target speaks first and no HTTP: an HTTP check would mark it DOWN.
    db = backends.tcp("db")
    port = free_port()
    document: dict[str, Any] = {
        "name": "legacy",
        "type": "classic",
        "vpcId": "vpc-0123456789abcdef0",
        "subnetIds": ["subnet-0123456789abcdef0"],
        "capacity": {"min": 1, "max": 2},
        "listeners": [{"protocol": "TCP", "port": port, "defaultBackend": "db"}],
        "backends": [backend("db", port_of(db), health={"intervalSeconds": 2, "timeoutSeconds": 1})],
    }
    dataplane = make_dataplane("haproxy")
    dataplane.apply(agent_config(document))
    driver = dataplane.driver
    assert isinstance(driver, HaproxyDriver)

    def check_of_db() -> tuple[str, str]:
        table = driver.table()
        lines = driver.cli.command(f"@!{table.current[0]} show stat b_db_tcp 4 -1").splitlines()
        header = lines[0].lstrip("# ").split(",")
        row = next(line.split(",") for line in lines[1:] if line.startswith(f"b_db_tcp,127.0.0.1:{port_of(db)},"))
        return row[header.index("status")], row[header.index("check_status")]

    assert wait_until(lambda: check_of_db()[1] not in ("", "INI", "* INI"), timeout=6.0), check_of_db()
    assert check_of_db() == ("UP", "L4OK")
    with tcp_connection(port) as sock:
        assert read_line(sock) == b"db\n"

    # Told to check with HTTP, HAProxy does, and the target fails it.
    document["backends"][0]["healthCheck"]["protocol"] = "HTTP"
    document["backends"][0]["healthCheck"]["unhealthyThreshold"] = 1
    dataplane.apply(agent_config(document, version=2))
    assert wait_until(lambda: check_of_db()[0] == "DOWN", timeout=8.0), check_of_db()


def _common_name(sock: ssl.SSLSocket) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    der = sock.getpeercert(binary_form=True)
    assert der is not None
    name = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    return str(name)


@pytest.mark.parametrize("proxy", PROXIES)
def test_two_lbvms_on_one_host_each_listen_where_their_options_say(
    proxy: ProxyName, backends: Backends, make_dataplane: DataPlaneFactory
) -> None:
    """The local runtime runs every LBVM on one machine: the spec's ports are remapped per LBVM."""
    app = backends.http("app")
    document = {
        "name": "web",
        "type": "application",
        "vpcId": "vpc-0123456789abcdef0",
        "subnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
        "proxy": proxy,
        "capacity": {"min": 1, "max": 2},
        "listeners": [
            {"protocol": "HTTP", "port": 80, "defaultBackend": "app"},
            {"protocol": "HTTPS", "port": 443, "certificateArn": CERT_ARN, "defaultBackend": "app"},
        ],
        "backends": [backend("app", port_of(app))],
    }
    ports = {name: {80: free_port(), 443: free_port()} for name in ("one", "two")}
    for name, listen_ports in ports.items():
        make_dataplane(proxy, name=name, listen_ports=listen_ports).apply(agent_config(document))
    for listen_ports in ports.values():
        plain = get(listen_ports[80], "/")
        assert plain.status == 200 and plain.body["backend"] == "app"
        assert plain.body["forwardedPort"] == "80"  # the spec's port, as a client of the entry sees it
        secure = get(listen_ports[443], "/", tls=True)
        assert secure.status == 200 and secure.body["forwardedPort"] == "443"


def test_listeners_that_would_share_a_port_are_refused(make_dataplane: DataPlaneFactory) -> None:
    document = {
        "name": "web",
        "type": "application",
        "vpcId": "vpc-0123456789abcdef0",
        "subnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
        "capacity": {"min": 1, "max": 2},
        "listeners": [
            {"protocol": "HTTP", "port": 80, "defaultBackend": "app"},
            {"protocol": "HTTP", "port": 81, "defaultBackend": "app"},
        ],
        "backends": [backend("app", 8080)],
    }
    port = free_port()
    dataplane = make_dataplane("haproxy", listen_ports={80: port, 81: port})
    with pytest.raises(ApplyError, match="same port"):
        dataplane.apply(agent_config(document))


class _AnswerAtEndOfRequest(socketserver.BaseRequestHandler):
    """A protocol that half-closes: the client sends its request, then its FIN; the answer comes after."""

    def handle(self) -> None:
        received = 0
        while data := self.request.recv(4096):
            received += len(data)
        self.request.sendall(f"received {received}\n".encode())


@pytest.mark.parametrize("proxy", PROXIES)
def test_an_l4_client_that_half_closes_still_gets_its_answer(
    proxy: ProxyName, backends: Backends, make_dataplane: DataPlaneFactory
) -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _AnswerAtEndOfRequest)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = free_port()
        document = spec_document(
            type="classic",
            proxy=proxy,
            listeners=[{"protocol": "TCP", "port": port, "defaultBackend": "batch"}],
            backends=[backend("batch", server.server_address[1], health={"protocol": "TCP"})],
        )
        make_dataplane(proxy).apply(agent_config(document))
        with tcp_connection(port) as sock:
            sock.sendall(b"x" * 5000)
            sock.shutdown(socket.SHUT_WR)  # done sending; still reading
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        assert answer == b"received 5000\n"
    finally:
        server.shutdown()
        server.server_close()
