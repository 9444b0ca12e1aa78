"""Real requests through the local entry while the control plane shrinks and rolls a fleet of real NGINX LBVMs.

Fails if a single request is lost (a connection error, a reset, a response
cut short, a 5xx) while the fleet scales in and rolls onto a new instance
type, and checks that the WAF, on in block mode, answers an SQL injection
sent through the entry with 403.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import pytest

from lbcp_local.backends import LocalBackends
from lbcp_local.seed import example_spec
from lbcp_local.traffic import RequestRecord, TrafficGenerator, TrafficShape
from tests.agent.helpers import get
from tests.conftest import LocalRuntimeProcess
from tests.local.test_fleet_e2e import call, create, reader, wait_for

pytestmark = pytest.mark.e2e

SQL_INJECTION = "/products?id=" + quote("1' OR '1'='1' --")


def _routed(runtime: LocalRuntimeProcess, lb_id: str, listener_port: int) -> set[str]:
    """What the local entry sends new connections to (it writes this beside the endpoints)."""
    try:
        endpoints = json.loads((runtime.state_dir / "entry" / "endpoints.json").read_text()).get(lb_id, [])
    except (OSError, ValueError):
        return set()
    return {instance for e in endpoints if e["listenerPort"] == listener_port for instance in e["routedInstances"]}


def _settled(runtime: LocalRuntimeProcess, lb: dict[str, Any], count: int, generation: int) -> bool:
    """Active on ``generation`` with ``count`` Routable LBVMs, every one of them routed to by the entry."""
    status = lb["status"]
    lbvms = {lbvm["instanceId"] for lbvm in status["lbvms"] if lbvm["state"] == "Routable"}
    return (
        status["phase"] == "Active"
        and status["observedGeneration"] >= generation
        and len(status["lbvms"]) == len(lbvms) == count
        and lbvms <= _routed(runtime, lb["id"], 80)
    )


def _patch(runtime: LocalRuntimeProcess, lb: dict[str, Any], change: dict[str, Any]) -> int:
    status, body = call(
        runtime, "PATCH", f"/v1/load-balancers/{lb['id']}", change, {"If-Match": f'"{lb["generation"]}"'}
    )
    assert status == 200, body
    generation: int = body["generation"]
    return generation


def _lost(records: list[RequestRecord], start: float, end: float) -> list[RequestRecord]:
    return [record for record in records if start <= record.started < end and record.failed]


def test_scale_in_and_a_rollout_lose_no_request_and_the_waf_blocks_through_the_entry(
    fleet_runtime: LocalRuntimeProcess,
) -> None:
    # Backends that also answer slowly and stream (lbcp_local.backends), as the traffic needs.
    backends = LocalBackends(("app",)).start()
    spec = example_spec(fleet_runtime.account, name="e2e-traffic")
    for backend in spec["backends"]:
        backend["targets"] = [{"host": "127.0.0.1", "port": backends.port("app")}]
        backend["healthCheck"] = {"protocol": "HTTP", "path": "/healthz"}
    spec.update(proxy="nginx", waf={"enabled": True, "mode": "block"})
    spec["capacity"] = {"min": 3, "max": 3}
    spec["lifecycle"] = {"pendingTimeoutSeconds": 60, "unhealthyTimeoutSeconds": 6, "heartbeatIntervalSeconds": 1}
    # The grace outlasts the local entry's deregistration delay (3 s), as the 30 s default does an NLB's.
    spec["drain"] = {"timeoutSeconds": 10, "deregistrationGraceSeconds": 4, "maxConnectionLifetimeSeconds": 5}
    spec["rollout"] = {"bakeSeconds": 5}  # a short bake: 300 s in production
    lb_id = create(fleet_runtime, spec)
    read = reader(fleet_runtime, lb_id)
    traffic: TrafficGenerator | None = None
    try:
        lb = wait_for(read, lambda lb: _settled(fleet_runtime, lb, 3, 1), 120)
        [endpoint] = [e for e in lb["status"]["entry"]["localEndpoints"] if e["listenerPort"] == 80]
        host, _, port = endpoint["address"].rpartition(":")
        # The WAF blocks an attack sent through the entry; the backend never sees it (counted before any
        # other traffic runs: the LBVMs' own health checks go to /healthz, which the count leaves out).
        answered = backends.requests("app")
        assert get(int(port), SQL_INJECTION).status == 403
        assert backends.requests("app") == answered

        shape = TrafficShape(fresh_clients=2, keepalive_clients=2, slow_clients=1, stream_clients=1, slow_ms=800)
        traffic = TrafficGenerator(host, int(port), shape).start()

        scale_in_started = time.monotonic()
        generation = _patch(fleet_runtime, lb, {"capacity": {"min": 2, "max": 2}})
        lb = wait_for(read, lambda lb: _settled(fleet_runtime, lb, 2, generation), 90)
        rollout_started = time.monotonic()
        generation = _patch(fleet_runtime, lb, {"instance": {"type": "c6i.xlarge"}})
        wait_for(read, lambda lb: _settled(fleet_runtime, lb, 2, generation), 120)
        ended = time.monotonic()
        traffic.stop()
        records = traffic.snapshot()

        sent = [record for record in records if scale_in_started <= record.started < ended]
        assert len(sent) > 200, len(sent)  # enough traffic to mean something
        assert {record.kind for record in sent} == {"fresh", "keepalive", "slow", "stream"}
        # Not a 4xx either: the WAF lets this traffic through.
        assert {record.outcome for record in sent} <= {"ok", "retried"}, {record.outcome for record in sent}
        assert _lost(records, scale_in_started, rollout_started) == []
        assert _lost(records, rollout_started, ended) == []
    finally:
        if traffic is not None:
            traffic.stop()
        call(fleet_runtime, "DELETE", f"/v1/load-balancers/{lb_id}")
        wait_for(lambda: call(fleet_runtime, "GET", f"/v1/load-balancers/{lb_id}")[0], lambda code: code == 404, 90)
        backends.stop()
