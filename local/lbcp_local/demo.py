"""``make demo``: the control plane on an embedded AWS, driven over HTTP, step by step.

Every step is a real HTTP request to the local API, which runs the same
Lambda handler as a deployment, against moto standing in for AWS. Every LBVM
is a real HAProxy, the entry a real HAProxy standing in for the NLB, and real
clients send requests through it from the moment the fleet is up: each step
says how many were served and how many failed, and the end draws them
(``.local/demo/traffic.png``).
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from lbcp_local.ports import free_port
from lbcp_local.runtime import LocalRuntime
from lbcp_local.traffic import HeldConnections, PhaseStats, TrafficGenerator, summarize
from lbctl.describe import render as render_describe
from lbctl.why import answer as why_answer

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
        self.routable: list[tuple[float, int]] = []  # (monotonic time, routable LBVMs), for the picture

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
                self.routable.append((time.monotonic(), states.get("Routable", 0)))
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


def explained(lb: dict[str, Any], events: list[dict[str, Any]], now: datetime) -> str:
    """What ``lbctl describe`` and ``lbctl why NAME capacity`` print for it: the same functions, on the same answers."""
    name = lb["name"]
    return "\n".join(
        [
            f"$ lbctl describe {name}",
            render_describe(lb, events, now=now),
            "",
            f"$ lbctl why {name} capacity",
            why_answer("capacity", lb, events=events, now=now),
        ]
    )


def _active(current: dict[str, Any]) -> bool:
    return bool(current.get("status", {}).get("phase") == "Active")


MAX_FAILURES_SHOWN = 5


class TrafficStory:
    """Real clients through the local entry; each step's requests, told when the step ends."""

    def __init__(self, runtime: LocalRuntime, lb_id: str, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.runtime = runtime
        self.lb_id = lb_id
        self.host, self.port = host, int(port)
        self.generator = TrafficGenerator(self.host, self.port).start()
        self.started = time.monotonic()
        self.phases: list[PhaseStats] = []
        self._since = self.started

    def told(self, what: str, label: str) -> PhaseStats:
        """Say what the requests since the last step met; ``label`` names the step in the picture."""
        now = time.monotonic()
        records = self.generator.snapshot()
        stats = summarize(label, records, self._since, now)
        failed = [r for r in records if self._since <= r.started < now and r.failed]
        step_began = self._since
        self._since = now
        self.phases.append(stats)
        failures = ", ".join(f"{count} {kind}" for kind, count in sorted(stats.failures.items()))
        colour = GREEN if not stats.failed else RED
        print(
            f"   {colour}traffic during {what}: {stats.sent} requests, {stats.failed} failed"
            f"{f' ({failures})' if failures else ''}, p99 {stats.p99_ms} ms{RESET}"
        )
        # Each loss, so that one can be matched with the step's events (which client, when, how long it waited).
        for record in failed[:MAX_FAILURES_SHOWN]:
            print(
                f"     {RED}{record.kind} client: {record.outcome} after {record.latency_ms:.0f} ms, "
                f"sent {record.started - step_began:.1f} s into the step{RESET}"
            )
        if len(failed) > MAX_FAILURES_SHOWN:
            print(f"     {RED}... and {len(failed) - MAX_FAILURES_SHOWN} more{RESET}")
        return stats

    def stop(self) -> None:
        self.generator.stop()

    def draw(self, routable: list[tuple[float, int]], path: Path) -> None:
        """Requests per second (served, failed) and routable LBVMs over time, as a PNG."""
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt

        records = self.generator.snapshot()
        end = max((record.ended for record in records), default=self.started)
        seconds = int(end - self.started) + 1
        served, failed = [0] * seconds, [0] * seconds
        for record in records:
            second = int(record.started - self.started)
            if 0 <= second < seconds:
                (failed if record.failed else served)[second] += 1
        figure, requests = plt.subplots(figsize=(11, 4.5))
        requests.plot(range(seconds), served, color="tab:green", label="requests served / s")
        requests.bar(range(seconds), failed, color="tab:red", label="failed / s")
        requests.set_xlabel("seconds since traffic began")
        requests.set_ylabel("requests per second")
        lbvms = requests.twinx()
        points = [(t - self.started, count) for t, count in routable if t >= self.started]
        lbvms.step([t for t, _ in points], [c for _, c in points], where="post", color="tab:blue", label="routable")
        lbvms.set_ylabel("routable LBVMs")
        lbvms.set_ylim(0, max((c for _, c in points), default=1) + 1)
        at = 0.0
        for phase in self.phases:
            requests.axvline(at, color="grey", linewidth=0.5)
            requests.text(at + 0.5, max(served or [1]) * 1.02, phase.phase, fontsize=7, rotation=90, va="top")
            at += phase.seconds
        figure.legend(loc="upper right", fontsize=8)
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)


def run(runtime: LocalRuntime) -> None:
    account = runtime.account
    assert account is not None
    http = Http(runtime.api_url)
    started = time.monotonic()

    step(1, "An AWS account on this machine")
    say(
        f"moto serves the AWS APIs on {runtime.aws_url}; the API handler (the same code as the Lambda "
        f"function) answers on {runtime.api_url}, the agent endpoint's (a Lambda function URL in AWS) on "
        f"{runtime.agent_url}; the lifecycle and drain state machines run in moto's "
        "Step Functions interpreter, the reconciler and the scaler tick as the schedules would, and every "
        "instance that boots gets an LBVM: the real agent with a real HAProxy on loopback ports of its own. A "
        "real HAProxy stands in for the NLB, and routes to what is registered as late as an NLB does. The account "
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
    # A short bake (300 s in production): the canary LBVM must stay healthy this long before the rest rolls.
    spec["rollout"] = {"bakeSeconds": 5}
    # Longer than a stream of the demo's traffic (5 s), which a drain must let finish.
    spec["drain"] = {"timeoutSeconds": 10, "deregistrationGraceSeconds": 4}
    # Target tracking on real connections, in seconds: the default (noise-aware) policy judges
    # demand over half an hour, too slow for a demo (README, "Scaling").
    spec["scaling"] = {
        "policy": "target-tracking",
        "cooldownSeconds": 15,
        "scaleInStabilizationSeconds": 15,
        "metrics": {
            "cpu": None,
            "memory": None,
            "activeConnections": {"scaleOutAbove": 40, "scaleInBelow": 10, "target": 30},
        },
    }
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
    entry = runtime.entry
    assert entry is not None
    current, took = watch.until(lambda now: "status" in now and entry.routes_to_every_routable(now), 60)
    [endpoint] = [e for e in current["status"]["entry"]["localEndpoints"] if e["listenerPort"] == 80]
    say(
        f"The entry routes to all {len(current['status']['lbvms'])} LBVMs {took:.1f} s later (its registration "
        f"delay). Clients connect where status.entry.localEndpoints says: {endpoint['address']} for port 80. From "
        "now on, real clients send requests through it without a pause: new connections, keep-alive, slow "
        "requests and streams."
    )
    traffic = TrafficStory(runtime, lb_id, endpoint["address"])

    step(5, "Kill an LBVM's instance behind the control plane's back")
    victim = current["status"]["lbvms"][0]["instanceId"]
    ec2 = boto3.client("ec2")
    ec2.terminate_instances(InstanceIds=[victim])
    say(f"terminated {victim} directly in EC2; its agent dies with it.")

    def replaced(now: dict[str, Any]) -> bool:
        return _active(now) and victim not in {lbvm["instanceId"] for lbvm in now["status"]["lbvms"]}

    _, took = watch.until(replaced, 120, lifecycle)
    say(f"Detected, taken out of the entry and replaced: Active again {took:.1f} s after the kill.")
    traffic.told("the kill (requests on the dead LBVM, and new ones the entry sent it before it knew, fail)", "kill")

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
    traffic.told("the scale-out to 4", "min 4")

    step(7, "Traffic ramps up: the scaler adds LBVMs, then removes them when it falls")
    held = HeldConnections(traffic.host, traffic.port, 240)
    say(
        f"{held.open} more clients open streams through the entry and keep them: about 60 connections per LBVM, "
        "which each proxy reports (the target is 30)."
    )
    scaling = frozenset({"ScaledOut", "ScaledIn", "ScalingHeld"}) | lifecycle
    watch.until(lambda now: _active(now) and now["status"]["desiredCapacity"] >= 6, 180, scaling)
    say("They hang up.")
    held.release()
    watch.until(lambda now: _active(now) and now["status"]["desiredCapacity"] == 4, 180, scaling)
    watch.until(lambda now: _active(now) and len(now["status"]["lbvms"]) == 4, 120, lifecycle)
    traffic.told("the scale-out to 6 and the scale-in to 4", "scaler 4-6-4")

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
    traffic.told("the rollout", "rollout")
    traffic.stop()
    picture = Path(".local") / "demo" / "traffic.png"
    traffic.draw(watch.routable, picture)
    say(f"Traffic stops here (a deleted load balancer serves no one). The picture of it: {picture}")

    step(9, "Ask it to explain itself: lbctl describe, and lbctl why")
    say(
        "Conditions say why the phase is what it is, each LBVM why it exists, the scaler what it decided last and "
        "what would move it next; why answers one question from the stored decisions."
    )
    with urllib.request.urlopen(f"{runtime.api_url}/v1/load-balancers/{lb_id}/events?limit=10", timeout=30) as r:
        recent = json.loads(r.read())["items"]
    print(textwrap.indent(explained(watch.status(), recent, datetime.now(UTC)), "   "))

    step(10, "Delete it: ordered teardown, then 404, and nothing left behind")
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

    step(11, "Its events tell the whole story, newest first (they outlive the load balancer)")
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
    with LocalRuntime(api_port=free_port(), aws_port=free_port(), state_dir=state_dir, quiet=True) as runtime:
        run(runtime)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
