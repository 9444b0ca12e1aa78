"""Hot reload under load, and what happens when a config is bad: the working one keeps serving."""

from __future__ import annotations

import os
import signal
import socket
import time
from typing import Any

import pytest

from agent.certs import StaticCertificateSource
from agent.dataplane import ApplyError, ProxyDataPlane
from agent.render import ProxyName
from lbcp_local.ports import free_port
from tests.agent.conftest import DataPlaneFactory
from tests.agent.helpers import (
    CERT_ARN,
    Backends,
    LoadGenerator,
    agent_config,
    backend,
    certificate,
    get,
    port_of,
    spec_document,
)

pytestmark = pytest.mark.proxies
PROXIES: list[ProxyName] = ["haproxy", "nginx"]


def _document(proxy: str, port: int, backend_port: int, *, idle: int = 60, **extra: Any) -> dict[str, Any]:
    return spec_document(
        proxy=proxy,
        listeners=[{"protocol": "HTTP", "port": port, "defaultBackend": "app", "idleTimeoutSeconds": idle}],
        backends=[backend("app", backend_port)],
        **extra,
    )


def _serving_with_a_certificate_the_proxy_refuses(
    proxy: ProxyName, backends: Backends, make_dataplane: DataPlaneFactory, port: int, https_port: int
) -> tuple[ProxyDataPlane, dict[str, Any]]:
    """A data plane serving version 1 on ``port``, and a document adding an HTTPS listener whose certificate
    the proxy's check refuses (fetched fine, not a certificate)."""
    app = backends.http("app")
    garbage = certificate()
    garbage = type(garbage)(
        certificate=b"-----BEGIN CERTIFICATE-----\nnot a certificate\n", chain=b"", private_key=garbage.private_key
    )
    dataplane = make_dataplane(proxy, source=StaticCertificateSource({CERT_ARN: garbage}))
    dataplane.apply(agent_config(_document(proxy, port, port_of(app)), version=1))
    broken = _document(proxy, port, port_of(app))
    broken["listeners"].append(
        {"protocol": "HTTPS", "port": https_port, "certificateArn": CERT_ARN, "defaultBackend": "app"}
    )
    return dataplane, broken


@pytest.mark.parametrize("proxy", PROXIES)
def test_twenty_reloads_under_load_fail_no_request(
    proxy: ProxyName, backends: Backends, make_dataplane: DataPlaneFactory
) -> None:
    blue, green = backends.http("blue"), backends.http("green")
    port = free_port()
    dataplane = make_dataplane(proxy)
    dataplane.apply(agent_config(_document(proxy, port, port_of(blue)), version=1))
    reloads = []
    with LoadGenerator(port, clients=4) as load:
        for version in range(2, 22):
            # Every version really differs (a new target each time): no reload is skipped as a no-op.
            target = green if version % 2 else blue
            result = dataplane.apply(agent_config(_document(proxy, port, port_of(target), idle=version), version))
            assert result.changed
            reloads.append(result.reload_seconds)
            time.sleep(0.03)
        time.sleep(0.2)
    assert len(reloads) == 20
    assert load.failures == [], f"{len(load.failures)} of {load.ok + len(load.failures)} failed: {load.failures[:5]}"
    assert load.ok > 100  # the load was real
    assert dataplane.applied_version() == 21
    assert get(port).body["backend"] == "green"  # version 21 serves


@pytest.mark.parametrize("proxy", PROXIES)
def test_a_config_the_proxy_refuses_never_replaces_the_working_one(
    proxy: ProxyName, backends: Backends, make_dataplane: DataPlaneFactory
) -> None:
    port, https_port = free_port(), free_port()
    dataplane, broken = _serving_with_a_certificate_the_proxy_refuses(proxy, backends, make_dataplane, port, https_port)
    good = dataplane.good_link.resolve()

    with pytest.raises(ApplyError) as failure:
        dataplane.apply(agent_config(broken, version=2))

    assert failure.value.stage == "validate" and failure.value.version == 2
    assert dataplane.applied_version() == 1
    assert dataplane.current_link.resolve() == good == dataplane.good_link.resolve()
    assert not [path for path in dataplane.releases_dir.iterdir() if path.name.startswith("v2-")]
    assert get(port).status == 200  # still serving version 1
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", https_port), timeout=1).close()


@pytest.mark.parametrize("proxy", PROXIES)
def test_a_reload_that_fails_rolls_back_and_the_next_good_version_still_applies(
    proxy: ProxyName, backends: Backends, make_dataplane: DataPlaneFactory
) -> None:
    app = backends.http("app")
    port, taken = free_port(), free_port()
    dataplane = make_dataplane(proxy)
    dataplane.apply(agent_config(_document(proxy, port, port_of(app)), version=1))
    process = dataplane.process
    assert process is not None

    # The config is valid (the check does not bind), but its new port is held by someone else.
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", taken))
    squatter.listen()
    try:
        grown = _document(proxy, port, port_of(app))
        grown["listeners"].append({"protocol": "HTTP", "port": taken, "defaultBackend": "app"})
        with pytest.raises(ApplyError) as failure:
            dataplane.apply(agent_config(grown, version=2))
        assert failure.value.stage == "reload"
        assert dataplane.applied_version() == 1
        assert dataplane.current_link.resolve() == dataplane.good_link.resolve()
        assert get(port).status == 200
        assert dataplane.process is process and process.alive()  # rolled back by a reload, not a restart
    finally:
        squatter.close()

    dataplane.apply(agent_config(_document(proxy, port, port_of(app), idle=30), version=3))
    assert dataplane.applied_version() == 3 and get(port).status == 200


@pytest.mark.parametrize("proxy", PROXIES)
def test_an_agent_restart_adopts_the_running_proxy(
    proxy: ProxyName, backends: Backends, make_dataplane: DataPlaneFactory
) -> None:
    app = backends.http("app")
    port = free_port()
    first = make_dataplane(proxy)
    first.apply(agent_config(_document(proxy, port, port_of(app)), version=4))
    assert first.process is not None
    pid = first.process.pid

    # A new agent on the same directories (what systemd starts after a crash or an upgrade).
    second = type(first)(proxy, first.state_dir, first.options, first.certificates)
    try:
        assert second.process is not None and second.process.pid == pid
        assert second.applied_version() == 4 and second.serving()
        assert second.apply(agent_config(_document(proxy, port, port_of(app)), version=4)).changed is False
        assert second.active_connections() == 0
        assert get(port).status == 200
    finally:
        second.stop()


@pytest.mark.parametrize("proxy", PROXIES)
def test_a_proxy_that_died_is_restarted_on_the_last_good_release(
    proxy: ProxyName, backends: Backends, make_dataplane: DataPlaneFactory
) -> None:
    app = backends.http("app")
    port = free_port()
    dataplane = make_dataplane(proxy)
    dataplane.apply(agent_config(_document(proxy, port, port_of(app)), version=6))
    assert dataplane.ensure_running() is False  # running: nothing to do
    process = dataplane.process
    assert process is not None
    os.killpg(process.pid, signal.SIGKILL)  # the proxy and its workers, gone at once
    process.stop()  # reaps it
    assert not dataplane.serving()
    assert dataplane.ensure_running() is True
    assert dataplane.serving() and dataplane.applied_version() == 6
    assert get(port).status == 200


@pytest.mark.parametrize("proxy", PROXIES)
def test_a_preloaded_version_is_validated_beside_the_served_one_and_then_switched_to(
    proxy: ProxyName, backends: Backends, make_dataplane: DataPlaneFactory
) -> None:
    blue, green = backends.http("blue"), backends.http("green")
    port = free_port()
    dataplane = make_dataplane(proxy)
    dataplane.apply(agent_config(_document(proxy, port, port_of(blue)), version=1))
    serving = dataplane.current_link.resolve()

    dataplane.preload(agent_config(_document(proxy, port, port_of(green)), version=2))
    ready = dataplane.next_link.resolve()
    assert ready.name.startswith("v2-") and ready != serving
    assert dataplane.applied_version() == 1 and dataplane.current_link.resolve() == serving
    assert get(port).body["backend"] == "blue"  # preloading serves nothing new

    result = dataplane.apply(agent_config(_document(proxy, port, port_of(green)), version=2))
    assert result.changed and dataplane.current_link.resolve() == ready
    assert get(port).body["backend"] == "green"


@pytest.mark.parametrize("proxy", PROXIES)
def test_a_version_that_fails_its_preload_changes_nothing_served(
    proxy: ProxyName, backends: Backends, make_dataplane: DataPlaneFactory
) -> None:
    port, https_port = free_port(), free_port()
    dataplane, broken = _serving_with_a_certificate_the_proxy_refuses(proxy, backends, make_dataplane, port, https_port)
    with pytest.raises(ApplyError) as failure:
        dataplane.preload(agent_config(broken, version=2))
    assert failure.value.stage == "validate" and failure.value.version == 2
    assert dataplane.applied_version() == 1 and not dataplane.next_link.exists()
    assert not [path for path in dataplane.releases_dir.iterdir() if path.name.startswith("v2-")]
    assert get(port).status == 200
