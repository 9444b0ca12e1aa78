"""End to end over HTTP on the local runtime: an operator pauses a config rollout, then aborts it.

A config-only PATCH stages version 2 on one canary LBVM with a long bake. Paused, the fleet holds (the canary
keeps version 2, nobody else is told it); aborted, every LBVM is told version 1 again, version 2 is rejected,
and the rollout history lists the config rollout as RolledBack. The runtime runs in this process with a
simulated data plane (no proxies): it is quick, and what is judged here is the control plane's.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from lbcp_local import lambda_bridge
from lbcp_local.ports import free_port
from lbcp_local.runtime import LocalRuntime

pytestmark = pytest.mark.e2e


@pytest.fixture
def runtime() -> Iterator[LocalRuntime]:
    saved = dict(os.environ)
    local = LocalRuntime(api_port=free_port(), aws_port=free_port(), state_dir=None, quiet=True, dataplane="simulated")
    try:
        yield local.start()
    finally:
        local.stop()
        if lambda_bridge.installed():
            lambda_bridge.uninstall()
        os.environ.clear()
        os.environ.update(saved)


def versions(lb: dict[str, Any]) -> Counter[str]:
    """How many routable LBVMs run each config version."""
    return Counter(str(vm.get("configVersion")) for vm in lb["status"]["lbvms"] if vm["state"] == "Routable")


def routable(lb: dict[str, Any]) -> int:
    return sum(1 for vm in lb["status"]["lbvms"] if vm["state"] == "Routable")


@dataclass
class Fleet:
    """One load balancer of the runtime, watched over HTTP: every routable count seen goes to ``seen``."""

    api: str
    lb_id: str
    seen: list[int] = field(default_factory=list)

    def read(self) -> dict[str, Any]:
        lb: dict[str, Any] = requests.get(f"{self.api}/load-balancers/{self.lb_id}", timeout=30).json()
        self.seen.append(routable(lb))
        return lb

    def watch(self, done: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            lb = self.read()
            if done(lb):
                return lb
            assert time.monotonic() < deadline, f"not reached within {timeout} s: {lb['status']}"
            time.sleep(0.3)

    def post(self, path: str) -> requests.Response:
        return requests.post(f"{self.api}/load-balancers/{self.lb_id}{path}", timeout=30)


def config_rollout(lb: dict[str, Any]) -> dict[str, Any]:
    return lb["status"].get("configRollout") or {}


def staged(runtime: LocalRuntime) -> tuple[Fleet, dict[str, Any]]:
    """A fleet of 3 on version 1, then a config-only PATCH: version 2 on one canary, baking for 600 s."""
    api = runtime.api_url + "/v1"
    spec = runtime.example_spec("cfg-control")
    spec["capacity"] = {"min": 3, "max": 4}
    spec["lifecycle"] = {"pendingTimeoutSeconds": 8, "heartbeatIntervalSeconds": 1, "unhealthyTimeoutSeconds": 3}
    spec["drain"] = {"timeoutSeconds": 2, "deregistrationGraceSeconds": 1}
    spec["rollout"] = {"canary": 1, "bakeSeconds": 600, "progressDeadlineSeconds": 60}
    created = requests.post(f"{api}/load-balancers", json=spec, timeout=30)
    assert created.status_code == 201, created.text
    fleet = Fleet(api, created.json()["id"])
    active = fleet.watch(lambda lb: lb["status"]["phase"] == "Active" and versions(lb) == {"1": 3}, 60)
    fleet.seen.clear()  # from here on, the fleet must keep serving
    patched = requests.patch(
        f"{api}/load-balancers/{fleet.lb_id}",
        json={"drain": {"timeoutSeconds": 3, "deregistrationGraceSeconds": 1}},
        headers={"Content-Type": "application/merge-patch+json", "If-Match": f'"{active["generation"]}"'},
        timeout=30,
    )
    assert patched.status_code == 200, patched.text
    fleet.watch(lambda lb: config_rollout(lb).get("step") == "Bake" and versions(lb) == {"1": 2, "2": 1}, 30)
    return fleet, active


def test_a_paused_config_rollout_holds_and_an_abort_returns_the_fleet_to_the_previous_version(
    runtime: LocalRuntime,
) -> None:
    fleet, active = staged(runtime)
    [canary] = config_rollout(fleet.read())["canaryLbvms"]

    paused = fleet.post("/rollout/pause")
    assert paused.status_code == 200, paused.text
    assert (paused.json()["kind"], paused.json()["state"]) == ("config", "Paused")
    held = fleet.watch(lambda lb: config_rollout(lb).get("pausedLbvms") == [canary], 10)
    assert config_rollout(held)["waitingFor"].startswith("a resume")
    # Held for several reconciler ticks and heartbeats: the canary on version 2, nobody else told it.
    until = time.monotonic() + 4
    while time.monotonic() < until:
        lb = fleet.read()
        assert config_rollout(lb)["state"] == "Paused" and versions(lb) == {"1": 2, "2": 1}
        assert {vm["lbvmId"] for vm in lb["status"]["lbvms"] if vm.get("configVersion") == "2"} == {canary}
        time.sleep(0.5)

    aborted_at = time.monotonic()
    aborted = fleet.post("/rollout/abort")
    assert aborted.status_code == 200, aborted.text
    assert (aborted.json()["step"], aborted.json()["rejected"]) == ("Rollback", True)
    back = fleet.watch(lambda lb: config_rollout(lb).get("state") == "RolledBack" and versions(lb) == {"1": 3}, 30)
    print(
        f"config rollout aborted: RolledBack {time.monotonic() - aborted_at:.1f} s after the abort, "
        f"min routable {min(fleet.seen)}"
    )
    assert config_rollout(back)["rejected"] and back["drain"]["timeoutSeconds"] == 3  # the spec is not rewritten
    instances = {vm["instanceId"] for vm in active["status"]["lbvms"]}
    assert {vm["instanceId"] for vm in back["status"]["lbvms"]} == instances  # nobody replaced
    assert min(fleet.seen) >= 3

    first = requests.get(f"{fleet.api}/load-balancers/{fleet.lb_id}/rollouts", timeout=30).json()["items"][0]
    assert (first["kind"], first["state"], first["rejected"]) == ("config", "RolledBack", True)
    assert (first["fromVersion"], first["toVersion"]) == (1, 2) and "aborted by" in first["message"]
    events = requests.get(f"{fleet.api}/load-balancers/{fleet.lb_id}/events", timeout=30).json()["items"]
    assert {"RolloutPauseRequested", "RolloutPaused", "RolloutAbortRequested", "RolledBack"} <= {
        e["reason"] for e in events
    }
    # Held back on version 1 while the spec asks for the rejected config: a pause now has nothing to act on.
    nothing = fleet.post("/rollout/pause")
    assert nothing.status_code == 409 and nothing.json()["type"].endswith("no-rollout")
