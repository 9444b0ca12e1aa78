"""What the proxy's active health checks see of each backend, as the agent reports it in heartbeats."""

from __future__ import annotations

import pytest

from agent.proxy.haproxy import parse_backend_health
from lbcp.models.agent import BackendHealth, backend_health_text, parse_backend_health_text
from lbcp_local.ports import free_port
from tests.agent.conftest import DataPlaneFactory
from tests.agent.helpers import Backends, agent_config, backend, port_of, spec_document, wait_until

pytestmark = pytest.mark.proxies
FAST_CHECKS = {"intervalSeconds": 2, "timeoutSeconds": 1, "unhealthyThreshold": 1, "healthyThreshold": 1}


def test_haproxy_reports_the_targets_that_pass_each_backends_checks(
    backends: Backends, make_dataplane: DataPlaneFactory
) -> None:
    up, down = backends.http("app"), free_port()  # nothing listens on `down`
    web = free_port()
    document = spec_document(
        listeners=[
            {
                "protocol": "HTTP",
                "port": web,
                "defaultBackend": "app",
                "rules": [{"pathPrefix": "/db/", "backend": "db"}],
            }
        ],
        backends=[
            backend("app", port_of(up), down, health={"protocol": "HTTP", **FAST_CHECKS}),
            backend("db", down, health={"protocol": "TCP", **FAST_CHECKS}),
        ],
    )
    dataplane = make_dataplane("haproxy")
    dataplane.apply(agent_config(document))
    expected = [
        BackendHealth(name="app", healthy_targets=1, targets=2),
        BackendHealth(name="db", healthy_targets=0, targets=1),
    ]
    assert wait_until(lambda: dataplane.backend_health() == expected, timeout=10), dataplane.backend_health()
    dataplane.drain()
    assert dataplane.backend_health() is None  # out of rotation: what its checks see no longer matters


def test_nginx_cannot_tell(backends: Backends, make_dataplane: DataPlaneFactory) -> None:
    app = backends.http("app")
    document = spec_document(
        proxy="nginx",
        listeners=[{"protocol": "HTTP", "port": free_port(), "defaultBackend": "app"}],
        backends=[backend("app", port_of(app))],
    )
    dataplane = make_dataplane("nginx")
    dataplane.apply(agent_config(document))
    assert dataplane.backend_health() is None
    dataplane.active_connections()
    assert dataplane.http_responses() is None  # stub_status has no status codes


def test_a_backend_both_modes_use_counts_its_fewer_healthy_servers_and_the_text_round_trips() -> None:
    header = "# pxname,svname,qcur,qmax,scur,status"
    rows = [
        "l_80,FRONTEND,,,3,OPEN",
        "b_app_http,s0,0,0,0,UP",
        "b_app_http,s1,0,0,0,UP 1/3",  # failing, not yet down: still healthy
        "b_app_http,BACKEND,0,0,0,UP",
        "b_app_tcp,s0,0,0,0,UP",
        "b_app_tcp,s1,0,0,0,DOWN 1/2",  # recovering, not yet up
        "b_my-db_tcp,s0,0,0,0,no check",  # unchecked: traffic goes to it
        "b_my-db_tcp,s1,0,0,0,MAINT",
    ]
    health = parse_backend_health("\n".join([header, *rows]))
    assert health == [
        BackendHealth(name="app", healthy_targets=1, targets=2),
        BackendHealth(name="my-db", healthy_targets=1, targets=2),
    ]
    assert backend_health_text(health) == "app=1/2,my-db=1/2"
    assert parse_backend_health_text("app=1/2,db=0/1") == [
        BackendHealth(name="app", healthy_targets=1, targets=2),
        BackendHealth(name="db", healthy_targets=0, targets=1),
    ]
    assert parse_backend_health_text("") == []


def test_haproxy_counts_http_answers_and_their_5xx_across_a_reload(
    backends: Backends, make_dataplane: DataPlaneFactory
) -> None:
    from lbcp.models.agent import HttpResponses
    from tests.agent.helpers import get

    app = backends.http("app", health_status=500)  # /healthz answers 500: a backend's 5xx the proxy passes on
    web = free_port()
    listener = {"protocol": "HTTP", "port": web, "defaultBackend": "app"}
    document = spec_document(listeners=[listener], backends=[backend("app", port_of(app))])
    dataplane = make_dataplane("haproxy")
    dataplane.apply(agent_config(document))

    def answers() -> HttpResponses | None:
        dataplane.active_connections()  # as the agent's round does: one read gives both
        return dataplane.http_responses()

    assert answers() == HttpResponses(requests=0, server_errors=0)
    statuses = [get(web, path).status for path in ("/", "/", "/healthz", "/", "/healthz", "/healthz", "/")]
    assert statuses.count(500) == 3
    assert wait_until(lambda: answers() == HttpResponses(requests=7, server_errors=3), timeout=5), answers()
    # A reload starts a new worker that counts from zero: the totals go on from where they were.
    changed = spec_document(
        listeners=[{**listener, "rules": [{"pathPrefix": "/other/", "backend": "app"}]}],
        backends=[backend("app", port_of(app))],
    )
    dataplane.apply(agent_config(changed, version=2))
    assert dataplane.applied_version() == 2
    assert [get(web, path).status for path in ("/", "/healthz")] == [200, 500]
    assert wait_until(lambda: answers() == HttpResponses(requests=9, server_errors=4), timeout=5), answers()


def test_the_tally_sums_workers_that_come_and_go() -> None:
    from agent.dataplane import ResponseTally
    from lbcp.models.agent import HttpResponses

    def totals(requests: int, errors: int) -> HttpResponses:
        return HttpResponses(requests=requests, server_errors=errors)

    tally = ResponseTally()
    assert tally.add({10: (5, 1)}) == totals(5, 1)
    # Reload: the old worker finishes (7, 2) while the new one starts counting.
    assert tally.add({10: (7, 2), 11: (1, 0)}) == totals(8, 2)
    assert tally.add({11: (4, 1)}) == totals(11, 3)  # the old one exited
    assert tally.add({11: (2, 0)}) == totals(13, 3)  # a reused pid: another worker, from zero
