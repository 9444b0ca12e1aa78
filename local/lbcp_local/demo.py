"""``make demo``: the control plane on an embedded AWS, driven over HTTP, step by step.

Every step is a real HTTP request to the local API, which runs the same
Lambda handler as a deployment, against moto standing in for AWS.
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from lbcp_local.aws import free_port
from lbcp_local.runtime import LocalRuntime

BOLD, DIM, GREEN, RED, RESET = (
    ("\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[0m") if sys.stdout.isatty() else ("",) * 5
)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


class Http:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def __call__(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
        data = None
        all_headers = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=all_headers)
        shown = " ".join(f"-H '{k}: {v}'" for k, v in all_headers.items() if k != "Content-Type")
        print(f"{DIM}  $ curl -X {method} {path} {shown}{' -d @body.json' if body is not None else ''}{RESET}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                reply = Reply(response.status, dict(response.headers), json.loads(response.read() or b"null"))
        except urllib.error.HTTPError as error:
            reply = Reply(error.code, dict(error.headers), json.loads(error.read() or b"null"))
        colour = GREEN if reply.status < 400 else RED
        print(f"  {colour}{reply.status}{RESET}", end="")
        return reply


def step(number: int, title: str) -> None:
    print(f"\n{BOLD}{number}. {title}{RESET}")


def say(text: str) -> None:
    print(textwrap.indent(textwrap.fill(text, 100), "   "))


def show_problem(reply: Reply) -> None:
    problem = reply.body
    print(f" {problem['title']}: {problem['detail']}")
    for error in problem["errors"]:
        print(f"     - {error['field']} ({error['in']}): {error['message']}")


def show_lb(reply: Reply) -> None:
    lb = reply.body
    status = lb["status"]
    print(
        f" {lb['name']} ({lb['id']}) generation {lb['generation']}, ETag {reply.headers.get('ETag')}, "
        f"phase {status['phase']}, desired capacity {status['desiredCapacity']}, "
        f"capacity {lb['capacity']['min']}-{lb['capacity']['max']}"
    )


class Watcher:
    """Polls a load balancer and prints what changed, with the time since the watch began."""

    def __init__(self, http: Http, lb_id: str) -> None:
        self.http = http
        self.lb_id = lb_id
        self.seen_events: set[tuple[str, str, str]] = set()
        self.last_line = ""

    def status(self) -> dict[str, Any]:
        request = urllib.request.Request(f"{self.http.base_url}/v1/load-balancers/{self.lb_id}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body: dict[str, Any] = json.loads(response.read())
                return body
        except urllib.error.HTTPError as error:
            return {"httpStatus": error.code}

    def events(self, reasons: set[str]) -> list[dict[str, Any]]:
        url = f"{self.http.base_url}/v1/load-balancers/{self.lb_id}/events?limit=50"
        with urllib.request.urlopen(url, timeout=30) as response:
            items: list[dict[str, Any]] = json.loads(response.read())["items"]
        fresh = []
        for event in reversed(items):
            key = (event["time"], event["reason"], event["message"])
            if event["reason"] in reasons and key not in self.seen_events:
                self.seen_events.add(key)
                fresh.append(event)
        return fresh

    def until(
        self, done: Callable[[dict[str, Any]], bool], timeout: float, reasons: frozenset[str] = frozenset()
    ) -> tuple[dict[str, Any], float]:
        started = time.monotonic()
        while True:
            current = self.status()
            elapsed = time.monotonic() - started
            if "httpStatus" in current:
                line = f"HTTP {current['httpStatus']}"
            else:
                states = Counter(lbvm["state"] for lbvm in current["status"]["lbvms"])
                summary = ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
                line = f"{current['status']['phase']}: {current['status']['message'] or ''} [{summary}]"
            if reasons:
                for event in self.events(set(reasons)):
                    print(f"   {elapsed:5.1f} s  {event['reason']}: {event['message']}")
            if line != self.last_line:
                print(f"   {elapsed:5.1f} s  {line}")
                self.last_line = line
            if done(current):
                return current, elapsed
            if elapsed > timeout:
                raise TimeoutError(f"still not there after {timeout:.0f} s: {line}")
            time.sleep(0.5)


def _active(current: dict[str, Any]) -> bool:
    return bool(current.get("status", {}).get("phase") == "Active")


def run(runtime: LocalRuntime) -> None:
    account = runtime.account
    agents = runtime.agents
    assert account is not None and agents is not None
    http = Http(runtime.api_url)
    started = time.monotonic()

    step(1, "An AWS account on this machine")
    say(
        f"moto serves the AWS APIs on {runtime.aws_url}; the API handler (the same code as the Lambda "
        f"function) answers on {runtime.api_url}; the lifecycle and drain state machines run in moto's "
        "Step Functions interpreter, the reconciler and the scaler tick as the schedules would, and every "
        "instance that boots gets a simulated LBVM (the real agent code over a simulated proxy; `make local` runs "
        "real proxies). The account "
        f"has VPC {account.vpc_id} with subnets in {' and '.join(account.availability_zones)}."
    )

    step(2, "Declare an application load balancer: 3 LBVMs over two Availability Zones")
    spec = runtime.example_spec()
    spec["capacity"] = {"min": 3, "max": 6}
    # Seconds here where production uses minutes: timeouts come from the spec.
    spec["lifecycle"] = {
        "pendingTimeoutSeconds": 60,
        # Six missed heartbeats: a busy machine can delay a few, and must not empty the fleet.
        "unhealthyTimeoutSeconds": 6,
        "heartbeatIntervalSeconds": 1,
        "recoveryTimeoutSeconds": 10,
    }
    spec["drain"] = {"timeoutSeconds": 5, "deregistrationGraceSeconds": 4}
    spec["scaling"] = {"cooldownSeconds": 15, "scaleInStabilizationSeconds": 15}
    reply = http("POST", "/v1/load-balancers", spec, {"Idempotency-Key": "demo-create-web"})
    show_lb(reply)
    assert reply.status == 201, reply.body
    lb_id = reply.body["id"]
    say("A retry with the same Idempotency-Key returns the first result and creates nothing:")
    again = http("POST", "/v1/load-balancers", spec, {"Idempotency-Key": "demo-create-web"})
    print(f" same id: {again.body['id'] == lb_id}, Idempotent-Replayed: {again.headers.get('Idempotent-Replayed')}")

    step(3, "Bad input gets a clear error naming each field, and changes nothing")
    broken = json.loads(json.dumps(spec))
    broken["name"] = "Web_Front"
    broken["listeners"][0]["port"] = 70000
    broken["colour"] = "blue"
    show_problem(http("POST", "/v1/load-balancers", broken))
    impossible = json.loads(json.dumps(spec))
    impossible["name"] = "web-elsewhere"
    impossible["subnetIds"] = [account.subnet_ids[0], account.other_vpc_subnet_id]
    impossible["listeners"][1]["certificateArn"] = account.imported_certificate_arn
    show_problem(http("POST", "/v1/load-balancers", impossible))

    watch = Watcher(http, lb_id)
    lifecycle = frozenset(
        {
            "EnsuringEntry",
            "Launching",
            "LaunchFailed",
            "Pending",
            "Routable",
            "DrainRequested",
            "Draining",
            "Terminated",
            "Unroutable",
            "Recovered",
        }
    )
    step(4, "Watch it converge: entry built, LBVMs launched, first heartbeats, registered")
    current, took = watch.until(_active, 120, lifecycle)
    zones = Counter(lbvm["availabilityZone"] for lbvm in current["status"]["lbvms"])
    say(f"Active in {took:.1f} s: {dict(zones)} per Availability Zone, entry {current['status']['entry']['dnsName']}.")

    step(5, "Kill an LBVM's instance behind the control plane's back")
    victim = current["status"]["lbvms"][0]["instanceId"]
    ec2 = boto3.client("ec2")
    ec2.terminate_instances(InstanceIds=[victim])
    say(f"terminated {victim} directly in EC2; its agent dies with it.")

    def replaced(now: dict[str, Any]) -> bool:
        return _active(now) and victim not in {lbvm["instanceId"] for lbvm in now["status"]["lbvms"]}

    _, took = watch.until(replaced, 120, lifecycle)
    say(f"Detected, taken out of the entry and replaced: Active again {took:.1f} s after the kill.")

    step(6, "Change the spec: at least 4 LBVMs (JSON Merge Patch with If-Match)")
    reply = http(
        "PATCH",
        f"/v1/load-balancers/{lb_id}",
        {"capacity": {"min": 4}},
        {"If-Match": f'"{current["generation"]}"', "Content-Type": "application/merge-patch+json"},
    )
    show_lb(reply)
    stale = http(
        "PATCH",
        f"/v1/load-balancers/{lb_id}",
        {"capacity": {"min": 5}},
        {"If-Match": f'"{current["generation"]}"', "Content-Type": "application/merge-patch+json"},
    )
    show_problem(stale)
    watch.until(lambda now: _active(now) and len(now["status"]["lbvms"]) == 4, 120, lifecycle)

    step(7, "Traffic ramps up: the scaler adds LBVMs, then removes them when it falls")
    say("The simulated agents now report 92% CPU and 1800 connections each (the targets are 70% and 1500).")
    agents.set_load(lb_id, 1800, 92.0)
    scaling = frozenset({"ScaledOut", "ScaledIn", "ScalingHeld"}) | lifecycle
    watch.until(lambda now: _active(now) and now["status"]["desiredCapacity"] >= 6, 180, scaling)
    say("Traffic falls back to 8% CPU and 100 connections.")
    agents.set_load(lb_id, 100, 8.0)
    watch.until(lambda now: _active(now) and now["status"]["desiredCapacity"] == 4, 180, scaling)

    step(8, "Roll the fleet onto a bigger instance type: replacements first, capacity kept")
    current = watch.status()
    before = {lbvm["instanceId"] for lbvm in current["status"]["lbvms"]}
    reply = http(
        "PATCH",
        f"/v1/load-balancers/{lb_id}",
        {"instance": {"type": "c6i.xlarge"}},
        {"If-Match": f'"{current["generation"]}"', "Content-Type": "application/merge-patch+json"},
    )
    show_lb(reply)
    lowest = [len(before)]

    def rolled(now: dict[str, Any]) -> bool:
        lbvms = now["status"]["lbvms"]
        lowest[0] = min(lowest[0], sum(1 for lbvm in lbvms if lbvm["state"] == "Routable"))
        return _active(now) and not before & {lbvm["instanceId"] for lbvm in lbvms}

    current, took = watch.until(rolled, 180, lifecycle)
    types = Counter(
        instance["InstanceType"]
        for reservation in ec2.describe_instances(
            InstanceIds=[lbvm["instanceId"] for lbvm in current["status"]["lbvms"]]
        )["Reservations"]
        for instance in reservation["Instances"]
    )
    say(
        f"Rolled: {', '.join(f'{count} LBVMs on {kind}' for kind, count in types.items())} after {took:.1f} s; "
        f"routable LBVMs never fell below {lowest[0]} (desired {current['status']['desiredCapacity']}, "
        "maxUnavailable 0)."
    )

    step(9, "Delete it: ordered teardown, then 404, and nothing left behind")
    reply = http("DELETE", f"/v1/load-balancers/{lb_id}")
    show_lb(reply)
    teardown = lifecycle | {"TearingDownEntry", "Deleted"}
    _, took = watch.until(lambda now: now.get("httpStatus") == 404, 120, teardown)
    instances = [
        instance["InstanceId"]
        for reservation in ec2.describe_instances()["Reservations"]
        for instance in reservation["Instances"]
        if instance["State"]["Name"] != "terminated"
    ]
    interfaces = ec2.describe_network_interfaces(Filters=[{"Name": "tag:lbcp:product", "Values": ["lbcp"]}])
    elbv2 = boto3.client("elbv2")
    say(
        f"Gone {took:.1f} s after the request. Left in the account: {len(instances)} running instances, "
        f"{len(interfaces['NetworkInterfaces'])} of our network interfaces, "
        f"{len(elbv2.describe_load_balancers()['LoadBalancers'])} NLBs, "
        f"{len(elbv2.describe_target_groups()['TargetGroups'])} target groups."
    )
    assert not instances and not interfaces["NetworkInterfaces"]

    step(10, "Its events tell the whole story, newest first (they outlive the load balancer)")
    reply = http("GET", f"/v1/load-balancers/{lb_id}/events?limit=12")
    print()
    for event in reply.body["items"]:
        print(f"     {event['time'][11:23]}  {event['reason']:<18} {event['message'][:150]}")

    print(
        f"\n{BOLD}Done in {time.monotonic() - started:.1f} s.{RESET} "
        "Run `make local` to keep the runtime up and try it yourself (see README)."
    )


def main() -> int:
    import logging

    # The agents' own warnings (a drain deadline passing, say) are events the story already tells.
    logging.getLogger("lbcp.agent").setLevel(logging.ERROR)
    state_dir = Path(".local") / "demo"
    state_dir.parent.mkdir(exist_ok=True)
    # Free ports, so the demo runs beside a `make local` that is already up.
    # Simulated LBVMs until the demo drives real traffic: its scaling step sets their load.
    with LocalRuntime(
        api_port=free_port(), aws_port=free_port(), state_dir=state_dir, quiet=True, dataplane="simulated"
    ) as runtime:
        run(runtime)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
