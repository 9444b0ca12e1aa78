"""End to end over HTTP on the local runtime: a config the proxy accepts but whose health check cannot pass rolls back.

The PATCH changes only the config (the app backend's health check goes HTTPS against a plain HTTP server:
HAProxy validates it, then marks the target down), so no instance is replaced: the new config version goes to
one canary LBVM, the canary sees ``app`` unavailable where the LBVMs on the previous version see it available,
and every LBVM is told the previous version again. The spec keeps asking for the rejected one.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from lbcp_local.seed import example_spec
from tests.agent.helpers import Backends, port_of
from tests.conftest import LocalRuntimeProcess
from tests.local.test_fleet_e2e import call, create, reader
from tests.local.test_rollout_e2e import patch, watch

pytestmark = pytest.mark.e2e


def config_versions(lb: dict[str, Any]) -> list[str]:
    return sorted(str(lbvm.get("configVersion")) for lbvm in lb["status"]["lbvms"] if lbvm["state"] == "Routable")


def app_available(lb: dict[str, Any]) -> bool:
    """Every LBVM's proxy sees the app backend healthy."""
    return all(
        {"name": "app", "healthyTargets": 1, "targets": 1} in (lbvm.get("backends") or [])
        for lbvm in lb["status"]["lbvms"]
    )


CHECK = {"protocol": "HTTP", "path": "/healthz", "intervalSeconds": 2, "unhealthyThreshold": 1}


def fleet_spec(runtime: LocalRuntimeProcess, app_port: int) -> dict[str, Any]:
    spec = example_spec(runtime.account, name="e2e-config-rollout")
    for backend in spec["backends"]:
        backend["targets"] = [{"host": "127.0.0.1", "port": app_port}]
    spec["backends"][0]["healthCheck"] = CHECK
    spec["capacity"] = {"min": 3, "max": 4}
    spec["lifecycle"] = {"pendingTimeoutSeconds": 8, "heartbeatIntervalSeconds": 1, "unhealthyTimeoutSeconds": 3}
    spec["drain"] = {"timeoutSeconds": 2, "deregistrationGraceSeconds": 1}
    # The shortest deadline allowed: a canary whose health check cannot pass is rolled back at it.
    spec["rollout"] = {"canary": 1, "bakeSeconds": 10, "progressDeadlineSeconds": 30}
    return spec


def with_check(spec: dict[str, Any], **check: Any) -> list[dict[str, Any]]:
    """The spec's backends, the app backend's health check changed."""
    return [dict(spec["backends"][0], healthCheck={**CHECK, **check}), spec["backends"][1]]


def bad_config_rolls_back(
    runtime: LocalRuntimeProcess, read: Any, active: dict[str, Any], spec: dict[str, Any]
) -> dict[str, Any]:
    desired = active["status"]["desiredCapacity"]
    instances = {lbvm["instanceId"] for lbvm in active["status"]["lbvms"]}
    started = time.monotonic()
    patched = patch(runtime, active, {"backends": with_check(spec, protocol="HTTPS")})
    most_on_new: list[int] = []

    def rolled_back(lb: dict[str, Any]) -> bool:
        most_on_new.append(config_versions(lb).count(str(patched["generation"])))
        return (lb["status"].get("configRollout") or {}).get("state") == "RolledBack"

    seen: list[int] = []
    done = watch(read, rolled_back, 120, seen)
    rollout = done["status"]["configRollout"]
    print(
        f"bad config: RolledBack {time.monotonic() - started:.1f} s after the PATCH; at most {max(most_on_new)} "
        f"LBVM(s) on it; min routable {min(seen)}; {rollout['message']}"
    )
    assert rollout["rejected"] and (rollout["fromVersion"], rollout["toVersion"]) == (1, patched["generation"])
    assert max(most_on_new) <= 1  # only the canary ever ran it
    assert "unavailable that LBVMs on version 1 see available: " in rollout["message"]
    assert "app 0/1 healthy (1/1 healthy on lbvm-" in rollout["message"]
    assert "the spec keeps asking for version 2's config" in rollout["message"]
    assert done["backends"][0]["healthCheck"]["protocol"] == "HTTPS"  # the spec is not rewritten
    assert min(seen) >= desired  # nobody was replaced for it
    assert {lbvm["instanceId"] for lbvm in done["status"]["lbvms"]} == instances
    # Everyone is back on version 1, and the status says the spec asks for the rejected one.
    back = watch(
        read,
        lambda lb: config_versions(lb) == ["1"] * desired and lb["status"]["phase"] == "Active" and app_available(lb),
        30,
        [],
    )
    assert f"config rollout {rollout['id']} rejected" in back["status"]["message"]
    return back


def good_config_succeeds(
    runtime: LocalRuntimeProcess, read: Any, back: dict[str, Any], spec: dict[str, Any]
) -> dict[str, Any]:
    desired = back["status"]["desiredCapacity"]
    started = time.monotonic()
    fixed = patch(runtime, back, {"backends": with_check(spec, path="/")})
    new = str(fixed["generation"])
    early: list[int] = []

    def succeeded(lb: dict[str, Any]) -> bool:
        rollout = lb["status"].get("configRollout") or {}
        if rollout.get("step") in ("Canary", "Bake"):
            early.append(config_versions(lb).count(new))
        return rollout.get("state") == "Succeeded" and rollout.get("toVersion") == fixed["generation"]

    seen: list[int] = []
    watch(read, succeeded, 120, seen)
    print(f"good config: Succeeded {time.monotonic() - started:.1f} s after the PATCH, min routable {min(seen)}")
    assert max(early) == 1  # the canary alone until the bake ended
    final = watch(read, lambda lb: config_versions(lb) == [new] * desired and app_available(lb), 30, seen)
    assert final["status"]["phase"] == "Active" and "rejected" not in final["status"]["message"]
    assert min(seen) >= desired
    return final


def test_a_config_whose_health_check_cannot_pass_reaches_one_canary_and_rolls_back(
    fleet_runtime: LocalRuntimeProcess,
) -> None:
    backends = Backends()
    app = backends.http("app")
    try:
        spec = fleet_spec(fleet_runtime, port_of(app))
        lb_id = create(fleet_runtime, spec)
        read = reader(fleet_runtime, lb_id)
        active = watch(read, lambda lb: lb["status"]["phase"] == "Active" and app_available(lb), 90, [])
        instances = {lbvm["instanceId"] for lbvm in active["status"]["lbvms"]}
        assert config_versions(active) == ["1"] * active["status"]["desiredCapacity"]
        back = bad_config_rolls_back(fleet_runtime, read, active, spec)
        reasons = [e["reason"] for e in call(fleet_runtime, "GET", f"/v1/load-balancers/{lb_id}/events")[1]["items"]]
        assert {"RolloutStarted", "RolloutFailed", "RolledBack"} <= set(reasons)
        final = good_config_succeeds(fleet_runtime, read, back, spec)
        assert {lbvm["instanceId"] for lbvm in final["status"]["lbvms"]} == instances  # no instance replaced
        assert call(fleet_runtime, "DELETE", f"/v1/load-balancers/{lb_id}")[0] == 202
    finally:
        backends.close()
