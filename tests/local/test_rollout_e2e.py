"""End to end over HTTP on the local runtime: a rollout onto the seeded broken image rolls back, a good one succeeds.

The broken image's instances boot, but their agent never becomes healthy
(``brokenImageId`` in ``.local/account.json``). The spec's timeouts are seconds,
so the canary's pending timeout, the bake and the rollback take well under a
minute. Throughout, the routable LBVMs never fall below desired - maxUnavailable.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from lbcp_local.seed import BROKEN_IMAGE_DESCRIPTION, example_spec
from tests.agent.helpers import Backends, port_of
from tests.conftest import LocalRuntimeProcess
from tests.local.test_fleet_e2e import aws, call, create, reader

pytestmark = pytest.mark.e2e


def routable(lb: dict[str, Any]) -> int:
    return sum(1 for lbvm in lb["status"]["lbvms"] if lbvm["state"] == "Routable")


def watch(read: Any, done: Any, timeout: float, seen: list[int]) -> dict[str, Any]:
    """Poll until ``done``; every routable count seen goes to ``seen``."""
    deadline = time.monotonic() + timeout
    while True:
        lb: dict[str, Any] = read()
        seen.append(routable(lb))
        if done(lb):
            return lb
        assert time.monotonic() < deadline, f"not reached within {timeout} s; rollout: {lb['status'].get('rollout')}"
        time.sleep(0.3)


def patch(runtime: LocalRuntimeProcess, lb: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    status, patched = call(
        runtime, "PATCH", f"/v1/load-balancers/{lb['id']}", body, {"If-Match": f'"{lb["generation"]}"'}
    )
    assert status == 200, patched
    return patched  # type: ignore[no-any-return]


def test_a_rollout_onto_the_broken_image_rolls_back_and_a_good_one_succeeds(fleet_runtime: LocalRuntimeProcess) -> None:
    account = fleet_runtime.account
    images = aws(fleet_runtime, "ec2").describe_images(ImageIds=[account.broken_image_id])["Images"]
    assert images[0]["Description"] == BROKEN_IMAGE_DESCRIPTION
    backends = Backends()
    app = backends.http("app")
    try:
        spec = example_spec(account, name="e2e-rollout")
        for backend in spec["backends"]:
            backend["targets"] = [{"host": "127.0.0.1", "port": port_of(app)}]
        spec["capacity"] = {"min": 2, "max": 4}
        spec["lifecycle"] = {"pendingTimeoutSeconds": 8, "heartbeatIntervalSeconds": 1, "unhealthyTimeoutSeconds": 3}
        spec["drain"] = {"timeoutSeconds": 2, "deregistrationGraceSeconds": 1}
        spec["rollout"] = {"canary": 1, "bakeSeconds": 4, "progressDeadlineSeconds": 60, "maxFailedLaunches": 2}
        lb_id = create(fleet_runtime, spec)
        read = reader(fleet_runtime, lb_id)
        seen: list[int] = []
        active = watch(read, lambda lb: lb["status"]["phase"] == "Active", 90, [])
        desired = active["status"]["desiredCapacity"]

        # PATCH onto the broken image: the canary never gets healthy, twice; the fleet rolls back.
        started = time.monotonic()
        patched = patch(fleet_runtime, active, {"instance": {"imageId": account.broken_image_id}})
        rolled_back = watch(
            read, lambda lb: (lb["status"].get("rollout") or {}).get("state") == "RolledBack", 150, seen
        )
        took = time.monotonic() - started
        rollout = rolled_back["status"]["rollout"]
        broken = aws(fleet_runtime, "ec2").describe_instances(
            Filters=[
                {"Name": "image-id", "Values": [account.broken_image_id]},
                {"Name": "tag:lbcp:load-balancer-id", "Values": [lb_id]},
            ]
        )
        launches = sum(len(r["Instances"]) for r in broken["Reservations"])
        print(f"broken image: {launches} launches, RolledBack {took:.1f} s after the PATCH, min routable {min(seen)}")
        assert launches <= 1 * (1 + 1)  # canary x (1 + retries): maxFailedLaunches 2 with a canary of 1
        assert min(seen) >= desired  # maxUnavailable 0: the fleet served throughout
        assert rollout["rejected"] and rollout["toTemplate"]["imageId"] == account.broken_image_id
        assert "never sent a healthy heartbeat within 8 s" in rollout["message"]
        assert "the spec keeps asking for" in rollout["message"]
        assert rolled_back["instance"]["imageId"] == account.broken_image_id  # the spec is not rewritten
        reasons = [e["reason"] for e in call(fleet_runtime, "GET", f"/v1/load-balancers/{lb_id}/events")[1]["items"]]
        assert {"RolloutStarted", "RolloutFailed", "RolledBack"} <= set(reasons)
        assert patched["generation"] == rolled_back["generation"]

        # A good image: canary, bake, then the rest; Succeeded.
        seen = []
        started = time.monotonic()
        patch(fleet_runtime, rolled_back, {"instance": {"imageId": account.image_id}})
        succeeded = watch(
            read,
            lambda lb: (
                (lb["status"].get("rollout") or {}).get("state") == "Succeeded" and lb["status"]["phase"] == "Active"
            ),
            150,
            seen,
        )
        print(f"good image: Succeeded {time.monotonic() - started:.1f} s after the PATCH, min routable {min(seen)}")
        assert min(seen) >= desired
        good = succeeded["status"]["rollout"]
        assert good["toTemplate"]["imageId"] == account.image_id and good["replaced"] == desired
        history = call(fleet_runtime, "GET", f"/v1/load-balancers/{lb_id}/rollouts")[1]["items"]
        assert [item["state"] for item in history] == ["Succeeded", "RolledBack"]
        assert call(fleet_runtime, "DELETE", f"/v1/load-balancers/{lb_id}")[0] == 202
    finally:
        backends.close()
