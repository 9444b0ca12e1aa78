"""End to end on the local runtime: planted orphans and drift are reported, kept until a sweep, then gone.

The runtime runs in this process (simulated data plane: no proxies, so it is
quick), because the test pauses the reconciler's ticker: the reconciler
repairs a hand-added security-group rule within a second, and the report must
be read while the drift is there. ``lbctl`` runs in-process against the
runtime's API; the test reaches the emulated AWS directly to plant
resources behind the control plane's back and to look at what is left.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
import requests

from lbcp_local import lambda_bridge
from lbcp_local.ports import free_port
from lbcp_local.runtime import LocalRuntime
from lbctl.main import main
from tests.consistency.plant import add_ssh_rule, plant_orphans, still_there

pytestmark = pytest.mark.e2e

GHOST = "lb-0000000000000fade"


@pytest.fixture
def runtime() -> Iterator[LocalRuntime]:
    saved = dict(os.environ)
    local = LocalRuntime(
        api_port=free_port(), aws_port=free_port(), state_dir=None, quiet=True, dataplane="simulated",
        consistency_seconds=2.0,
    )  # fmt: skip
    try:
        yield local.start()
    finally:
        local.stop()
        if lambda_bridge.installed():
            lambda_bridge.uninstall()
        os.environ.clear()
        os.environ.update(saved)


def wait_for(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"not reached within {timeout} s; last: {value}"
        time.sleep(0.3)


def lbctl(capsys: pytest.CaptureFixture[str], runtime: LocalRuntime, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["--endpoint", runtime.api_url, *args])
    return code, capsys.readouterr().out


def aws(runtime: LocalRuntime, service: str) -> Any:
    return boto3.client(
        service, endpoint_url=runtime.aws_url, region_name="us-east-1",
        aws_access_key_id="local", aws_secret_access_key="local",
    )  # fmt: skip


def test_gc_reports_then_sweeps_exactly_the_planted_orphans(
    runtime: LocalRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    api = runtime.api_url + "/v1"
    spec = {**runtime.example_spec("gc-live"), "capacity": {"min": 1, "max": 1}}
    created = requests.post(f"{api}/load-balancers", json=spec, timeout=30)
    assert created.status_code == 201, created.text
    lb_id = created.json()["id"]
    # The scheduled checker runs on its own (its ticker), before anything is planted.
    wait_for(lambda: requests.get(f"{api}/consistency", timeout=10).json(), lambda r: r["generatedAt"], 30)
    wait_for(
        lambda: requests.get(f"{api}/load-balancers/{lb_id}", timeout=10).json()["status"],
        lambda status: [vm["state"] for vm in status["lbvms"]] == ["Routable"],
        120,
    )
    ec2, elbv2 = aws(runtime, "ec2"), aws(runtime, "elbv2")
    (group,) = ec2.describe_security_groups(Filters=[{"Name": "tag:lbcp:load-balancer-id", "Values": [lb_id]}])[
        "SecurityGroups"
    ]
    runtime.ticker("reconciler").pause()  # it would repair the rule below at once
    assert runtime.account is not None
    planted = plant_orphans(
        ec2, elbv2, vpc_id=runtime.account.vpc_id, subnet_id=runtime.account.subnet_ids[0],
        image_id=runtime.account.image_id, ghost=GHOST,
    )  # fmt: skip
    add_ssh_rule(ec2, group["GroupId"])

    code, out = lbctl(capsys, runtime, "gc", "report", "--refresh", "--json")
    assert code == 0
    report = json.loads(out)
    expected = {("orphan", kind, resource, GHOST) for kind, resource in planted.orphans.items()}
    expected.add(("drift", "security-group-rule", f"{group['GroupId']}:tcp/22:0.0.0.0/0", lb_id))
    assert {
        (f["kind"], f["resourceType"], f["resourceId"], f["loadBalancerId"]) for f in report["findings"]
    } == expected
    code, table = lbctl(capsys, runtime, "gc", "report")
    assert code == 0 and "5 orphan, 1 drift" in table and "tcp/22 0.0.0.0/0" in table

    # Reporting and a dry run delete nothing.
    code, dry = lbctl(capsys, runtime, "gc", "sweep")
    assert code == 0 and "A sweep would remove 5 orphans" in dry
    assert all(still_there(ec2, elbv2, kind, resource) for kind, resource in planted.orphans.items())

    code, out = lbctl(capsys, runtime, "gc", "sweep", "--apply", "--json")
    assert code == 0
    results = json.loads(out)["results"]
    assert sorted((r["resourceType"], r["resourceId"], r["outcome"]) for r in results) == sorted(
        (kind, resource, "deleted") for kind, resource in planted.orphans.items()
    )
    assert not any(still_there(ec2, elbv2, kind, resource) for kind, resource in planted.orphans.items())
    assert all(still_there(ec2, elbv2, kind, resource) for kind, resource in planted.lookalikes.items())
    assert still_there(ec2, elbv2, "security-group", group["GroupId"])
    code, out = lbctl(capsys, runtime, "gc", "audit", "--json")
    assert sorted(e["resourceId"] for e in json.loads(out)["items"]) == sorted(planted.orphans.values())

    # The drift is the reconciler's: once it runs again, the rule goes, with an event naming it.
    runtime.ticker("reconciler").resume()
    wait_for(
        lambda: requests.get(f"{api}/load-balancers/{lb_id}/events?limit=100", timeout=10).json()["items"],
        lambda items: any(e["reason"] == "EntryDriftRepaired" and "tcp/22 0.0.0.0/0" in e["message"] for e in items),
        30,
    )
    code, out = lbctl(capsys, runtime, "gc", "report", "--refresh", "--json")
    assert json.loads(out)["findings"] == []
    for kind in ("instance",):
        ec2.terminate_instances(InstanceIds=[planted.lookalikes[kind]])


def a_records(route53: Any, zone_id: str, name: str) -> list[tuple[str, str]]:
    found = []
    for record in route53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]:
        if record["Type"] == "A" and record["Name"].rstrip(".") == name:
            value = record.get("AliasTarget", {}).get("DNSName") or record["ResourceRecords"][0]["Value"]
            found.append((record.get("SetIdentifier", "alias"), value.rstrip(".")))
    return sorted(found)


def test_switching_the_entry_mode_moves_the_name_without_a_gap_and_leaves_nothing_behind(
    runtime: LocalRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    api = runtime.api_url + "/v1"
    spec = {**runtime.example_spec("switch"), "capacity": {"min": 2, "max": 2}}
    created = requests.post(f"{api}/load-balancers", json=spec, timeout=30)
    assert created.status_code == 201, created.text
    lb_id = created.json()["id"]

    def lb() -> dict[str, Any]:
        return dict(requests.get(f"{api}/load-balancers/{lb_id}", timeout=10).json())

    wait_for(lb, lambda got: [vm["state"] for vm in got["status"]["lbvms"]] == ["Routable"] * 2, 120)
    route53, elbv2 = aws(runtime, "route53"), aws(runtime, "elbv2")
    zone_id = os.environ["LBCP_HOSTED_ZONE_ID"]
    name = lb()["status"]["entry"]["dnsName"]
    nlb_dns = a_records(route53, zone_id, name)
    assert [kind for kind, _ in nlb_dns] == ["alias"]
    answers_seen: list[int] = []

    def switch(mode: str, done: Callable[[list[tuple[str, str]]], bool]) -> list[tuple[str, str]]:
        current = lb()
        patched = requests.patch(
            f"{api}/load-balancers/{lb_id}", json={"entry": {"mode": mode}},
            headers={"If-Match": f'"{current["generation"]}"'}, timeout=30,
        )  # fmt: skip
        assert patched.status_code == 200, patched.text

        def records() -> list[tuple[str, str]]:
            found = a_records(route53, zone_id, name)
            answers_seen.append(len(found))
            return found

        return list(wait_for(records, done, 60))

    by_instance = {vm["instanceId"]: vm["lbvmId"] for vm in lb()["status"]["lbvms"]}
    reservations = aws(runtime, "ec2").describe_instances(InstanceIds=sorted(by_instance))["Reservations"]
    lbvm_ips = {by_instance[i["InstanceId"]]: i["PrivateIpAddress"] for r in reservations for i in r["Instances"]}
    to_dns = switch("dns", lambda found: [kind for kind, _ in found] == sorted(lbvm_ips))
    assert to_dns == sorted(lbvm_ips.items())
    assert 0 not in answers_seen  # the name always answered
    wait_for(
        lambda: [n["LoadBalancerName"] for n in elbv2.describe_load_balancers()["LoadBalancers"]],
        lambda names: not any(lb_id[-8:] in n for n in names),
        30,
    )
    events = requests.get(f"{api}/load-balancers/{lb_id}/events?limit=100", timeout=10).json()["items"]
    assert any(e["reason"] == "EntryDriftRepaired" and "left from pool mode" in e["message"] for e in events)
    code, out = lbctl(capsys, runtime, "gc", "report", "--refresh", "--json")
    assert code == 0 and json.loads(out)["findings"] == []

    answers_seen.clear()
    to_pool = switch("pool", lambda found: [kind for kind, _ in found] == ["alias"])
    assert 0 not in answers_seen
    (nlb,) = [n for n in elbv2.describe_load_balancers()["LoadBalancers"] if n["DNSName"] == to_pool[0][1]]
    wait_for(lb, lambda got: got["status"]["phase"] == "Active", 60)
    code, out = lbctl(capsys, runtime, "gc", "report", "--refresh", "--json")
    assert code == 0 and json.loads(out)["findings"] == [], out
    groups = elbv2.describe_target_groups(LoadBalancerArn=nlb["LoadBalancerArn"])["TargetGroups"]
    for group in groups:
        health = elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])["TargetHealthDescriptions"]
        assert len(health) == 2, group["TargetGroupName"]
