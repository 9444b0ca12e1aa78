"""End to end over HTTP: a declared load balancer comes into existence, heals itself and goes away cleanly.

Against the real local runtime in a subprocess (`make local`): the API, the
reconciler and scaler ticks, the state machines in moto, and on every
instance the real agent with a real HAProxy, which forwards requests to a
backend server that the test runs on loopback. The test reaches the
runtime's emulated AWS over HTTP to kill an instance behind the control
plane's back and to check that nothing is left.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from lbcp.entry.names import target_group_name
from lbcp_local.seed import example_spec
from tests.agent.helpers import Backends, get, port_of
from tests.conftest import LocalRuntimeProcess

pytestmark = pytest.mark.e2e


def call(
    runtime: LocalRuntimeProcess, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(runtime.api_url + path, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_for(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"not reached within {timeout} s; last: {value}"
        time.sleep(0.5)


def aws(runtime: LocalRuntimeProcess, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=runtime.aws_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def create(runtime: LocalRuntimeProcess, spec: dict[str, Any]) -> str:
    status, created = call(runtime, "POST", "/v1/load-balancers", spec)
    assert status == 201, created
    lb_id: str = created["id"]
    return lb_id


def reader(runtime: LocalRuntimeProcess, lb_id: str) -> Callable[[], dict[str, Any]]:
    def read() -> dict[str, Any]:
        body: dict[str, Any] = call(runtime, "GET", f"/v1/load-balancers/{lb_id}")[1]
        return body

    return read


def lbvm_address(runtime: LocalRuntimeProcess, instance_id: str, listener_port: int) -> int:
    """The loopback port where the LBVM on ``instance_id`` listens for ``listener_port`` (the runtime writes it)."""
    path = runtime.state_dir / "lbvms" / instance_id / "listen.json"
    host, _, port = json.loads(path.read_text())[str(listener_port)].rpartition(":")
    assert host == "127.0.0.1"
    return int(port)


def answers(port: int) -> Any:
    try:
        return get(port, "/", timeout=2)
    except OSError:
        return None


def refuses(port: int) -> bool:
    try:
        get(port, "/", timeout=2)
    except OSError:
        return True
    return False


def test_create_heal_and_delete(fleet_runtime: LocalRuntimeProcess) -> None:
    backends = Backends()
    app = backends.http("app")
    try:
        _create_heal_and_delete(fleet_runtime, port_of(app))
    finally:
        backends.close()


def _assert_served(fleet_runtime: LocalRuntimeProcess, active: dict[str, Any], instance_ids: set[str]) -> None:
    # Each LBVM's real proxy carries a request to the real backend, on HTTP and on HTTPS.
    for instance_id in instance_ids:
        plain = get(lbvm_address(fleet_runtime, instance_id, 80), "/hello")
        assert plain.status == 200 and plain.body["backend"] == "app" and plain.body["path"] == "/hello"
        secure = get(lbvm_address(fleet_runtime, instance_id, 443), "/api/x", tls=True)
        assert secure.status == 200 and secure.body["forwardedProto"] == "https"
    # And through the local entry, where the status says a client connects, once it routes (after
    # its registration delay).
    endpoints = {
        endpoint["listenerPort"]: endpoint["address"] for endpoint in active["status"]["entry"]["localEndpoints"]
    }
    assert set(endpoints) == {80, 443}
    host, _, entry_port = endpoints[80].rpartition(":")
    assert host == "127.0.0.1"
    through_entry = wait_for(lambda: answers(int(entry_port)), bool, 30)
    assert through_entry.status == 200 and through_entry.body["backend"] == "app"


def _create_heal_and_delete(fleet_runtime: LocalRuntimeProcess, app_port: int) -> None:
    spec = example_spec(fleet_runtime.account, name="e2e-fleet")
    for backend in spec["backends"]:  # every backend is the test's server, dialed as declared
        backend["targets"] = [{"host": "127.0.0.1", "port": app_port}]
    spec["capacity"] = {"min": 3, "max": 4}
    spec["lifecycle"] = {
        "pendingTimeoutSeconds": 60,
        "unhealthyTimeoutSeconds": 3,
        "heartbeatIntervalSeconds": 1,
        "recoveryTimeoutSeconds": 10,
    }
    spec["drain"] = {"timeoutSeconds": 5, "deregistrationGraceSeconds": 4}
    lb_id = create(fleet_runtime, spec)
    read = reader(fleet_runtime, lb_id)

    # create -> 3 Routable LBVMs over both zones, registered with the entry
    active = wait_for(read, lambda lb: lb["status"]["phase"] == "Active", 90)
    lbvms = active["status"]["lbvms"]
    assert [lbvm["state"] for lbvm in lbvms] == ["Routable"] * 3
    assert sorted(Counter(lbvm["availabilityZone"] for lbvm in lbvms).values()) == [1, 2]
    assert active["status"]["observedGeneration"] == 1
    instance_ids = {lbvm["instanceId"] for lbvm in lbvms}
    _assert_served(fleet_runtime, active, instance_ids)
    # Each LBVM's proxy (HAProxy) says what its health checks see of every backend: its one target passes.
    checked = wait_for(read, lambda lb: all("backends" in lbvm for lbvm in lb["status"]["lbvms"]), 30)
    for lbvm in checked["status"]["lbvms"]:
        assert lbvm["backends"] == [
            {"name": name, "healthyTargets": 1, "targets": 1} for name in sorted(b["name"] for b in spec["backends"])
        ], lbvm
    elbv2 = aws(fleet_runtime, "elbv2")
    # This load balancer's target groups (the runtime is shared with other tests).
    names = {target_group_name(lb_id, listener["port"]) for listener in spec["listeners"]}
    groups = [g for g in elbv2.describe_target_groups()["TargetGroups"] if g["TargetGroupName"] in names]
    assert len(groups) == len(names)
    for group in groups:
        health = elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])["TargetHealthDescriptions"]
        assert {target["Target"]["Id"] for target in health} == instance_ids

    # external termination -> detected, deregistered, replaced
    ec2 = aws(fleet_runtime, "ec2")
    victim = lbvms[0]["instanceId"]
    victim_port = lbvm_address(fleet_runtime, victim, 80)
    ec2.terminate_instances(InstanceIds=[victim])
    # Its proxy dies with it, as a dead VM's would.
    wait_for(lambda: refuses(victim_port), bool, 10)
    healed = wait_for(
        read,
        lambda lb: lb["status"]["phase"] == "Active" and victim not in {v["instanceId"] for v in lb["status"]["lbvms"]},
        60,
    )
    assert [lbvm["state"] for lbvm in healed["status"]["lbvms"]].count("Routable") == 3
    for replacement in {lbvm["instanceId"] for lbvm in healed["status"]["lbvms"]} - instance_ids:
        assert get(lbvm_address(fleet_runtime, replacement, 80), "/").status == 200
    for group in groups:
        health = elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])["TargetHealthDescriptions"]
        assert victim not in {target["Target"]["Id"] for target in health}
    _, events = call(fleet_runtime, "GET", f"/v1/load-balancers/{lb_id}/events?limit=100")
    reasons = [event["reason"] for event in events["items"]]
    assert "Draining" in reasons and "Terminated" in reasons

    # delete -> 404, and no live instance, interface, registration or entry left
    status, _ = call(fleet_runtime, "DELETE", f"/v1/load-balancers/{lb_id}")
    assert status == 202
    wait_for(lambda: call(fleet_runtime, "GET", f"/v1/load-balancers/{lb_id}")[0], lambda code: code == 404, 90)
    alive = [
        instance["InstanceId"]
        for reservation in ec2.describe_instances(Filters=[{"Name": "tag:lbcp:load-balancer-id", "Values": [lb_id]}])[
            "Reservations"
        ]
        for instance in reservation["Instances"]
        if instance["State"]["Name"] != "terminated"
    ]
    assert alive == []
    interfaces = ec2.describe_network_interfaces(Filters=[{"Name": "tag:lbcp:load-balancer-id", "Values": [lb_id]}])[
        "NetworkInterfaces"
    ]
    assert interfaces == []
    remaining = {g["TargetGroupArn"] for g in elbv2.describe_target_groups()["TargetGroups"]}
    assert not remaining & {g["TargetGroupArn"] for g in groups}
    _, events = call(fleet_runtime, "GET", f"/v1/load-balancers/{lb_id}/events?limit=5")
    assert events["items"][0]["reason"] == "Deleted"


def test_a_new_instance_type_rolls_the_fleet_without_losing_capacity(fleet_runtime: LocalRuntimeProcess) -> None:
    spec = example_spec(fleet_runtime.account, name="e2e-rollout")
    spec["capacity"] = {"min": 2, "max": 2}
    spec["instance"] = {"type": "c6i.large"}
    spec["lifecycle"] = {"pendingTimeoutSeconds": 60, "unhealthyTimeoutSeconds": 3, "heartbeatIntervalSeconds": 1}
    spec["rollout"] = {"bakeSeconds": 5}  # a short bake: 300 s in production
    spec["drain"] = {"timeoutSeconds": 5, "deregistrationGraceSeconds": 4}
    lb_id = create(fleet_runtime, spec)
    read = reader(fleet_runtime, lb_id)

    try:
        active = wait_for(read, lambda lb: lb["status"]["phase"] == "Active", 90)
        before = {lbvm["instanceId"] for lbvm in active["status"]["lbvms"]}
        status, patched = call(
            fleet_runtime,
            "PATCH",
            f"/v1/load-balancers/{lb_id}",
            {"instance": {"type": "c6i.xlarge"}},
            {"If-Match": f'"{active["generation"]}"'},
        )
        assert status == 200, patched

        # Sampled every half second until the fleet is Active on the new generation:
        # never fewer than 2 Routable LBVMs (maxSurge 1, maxUnavailable 0).
        routable_seen: list[int] = []

        def rolled(lb: dict[str, Any]) -> bool:
            routable_seen.append(sum(1 for lbvm in lb["status"]["lbvms"] if lbvm["state"] == "Routable"))
            now = {lbvm["instanceId"] for lbvm in lb["status"]["lbvms"]}
            return lb["status"]["phase"] == "Active" and lb["status"]["observedGeneration"] == 2 and not now & before

        done = wait_for(read, rolled, 120)
        assert min(routable_seen) >= 2, routable_seen
        after = [lbvm["instanceId"] for lbvm in done["status"]["lbvms"]]
        ec2 = aws(fleet_runtime, "ec2")
        described = ec2.describe_instances(InstanceIds=after)["Reservations"]
        assert {i["InstanceType"] for r in described for i in r["Instances"]} == {"c6i.xlarge"}
        _, events = call(fleet_runtime, "GET", f"/v1/load-balancers/{lb_id}/events?limit=100")
        rollout = [e["message"] for e in events["items"] if "the spec now asks for c6i.xlarge" in e["message"]]
        assert len(rollout) >= 2, [e["message"] for e in events["items"]]
    finally:
        call(fleet_runtime, "DELETE", f"/v1/load-balancers/{lb_id}")
        wait_for(lambda: call(fleet_runtime, "GET", f"/v1/load-balancers/{lb_id}")[0], lambda code: code == 404, 90)
