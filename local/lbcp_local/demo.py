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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lbcp_local.aws import free_port
from lbcp_local.runtime import LocalRuntime
from lbcp_local.seed import example_spec

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


def run(runtime: LocalRuntime) -> None:
    account = runtime.account
    assert account is not None
    http = Http(runtime.api_url)
    started = time.monotonic()

    step(1, "An AWS account on this machine")
    say(
        f"moto serves the AWS APIs on {runtime.aws_url}; the API handler (the same code as the Lambda "
        f"function) answers on {runtime.api_url}. The account is seeded with VPC {account.vpc_id} and "
        f"subnets {', '.join(account.subnet_ids)} in {' and '.join(account.availability_zones)}, "
        "plus an issued ACM certificate."
    )

    step(2, "Declare an application load balancer")
    spec = example_spec(account)
    say("HTTP on 80, HTTPS on 443 routing /api/ to its own backend, 2 to 6 LBVMs over two AZs:")
    reply = http("POST", "/v1/load-balancers", spec, {"Idempotency-Key": "demo-create-web"})
    show_lb(reply)
    assert reply.status == 201, reply.body
    lb_id = reply.body["id"]
    say(
        f"Location: {reply.headers.get('Location')}. Production defaults were filled in and returned, e.g. "
        f"drain {json.dumps(reply.body['drain'])}."
    )

    step(3, "Retry the same create (same Idempotency-Key): the first result comes back, nothing new is made")
    reply = http("POST", "/v1/load-balancers", spec, {"Idempotency-Key": "demo-create-web"})
    show_lb(reply)
    print(f"   Idempotent-Replayed: {reply.headers.get('Idempotent-Replayed')}")
    assert reply.status == 201 and reply.body["id"] == lb_id

    step(4, "Bad input gets a clear error naming each field, and changes nothing")
    broken = json.loads(json.dumps(spec))
    broken["name"] = "Web_Front"
    broken["listeners"][0]["port"] = 70000
    broken["capacity"] = {"min": "2", "max": 4}
    broken["colour"] = "blue"
    reply = http("POST", "/v1/load-balancers", broken)
    show_problem(reply)
    assert reply.status == 400
    say("Well-formed fields that contradict each other are reported together too:")
    contradictory = json.loads(json.dumps(spec))
    contradictory["listeners"][0]["port"] = 443
    contradictory["listeners"][1]["rules"][0]["backend"] = "payments"
    contradictory["capacity"] = {"min": 8, "max": 4}
    reply = http("POST", "/v1/load-balancers", contradictory)
    show_problem(reply)
    assert reply.status == 400
    impossible = dict(spec, name="web-elsewhere", subnetIds=[account.subnet_ids[0], account.other_vpc_subnet_id])
    say("Well-formed but impossible: a subnet from another VPC.")
    reply = http("POST", "/v1/load-balancers", impossible)
    show_problem(reply)
    assert reply.status == 422

    step(5, "Read it back, by name or by id")
    reply = http("GET", "/v1/load-balancers/web")
    show_lb(reply)
    say("Phase Pending: the reconciler has not acted on it yet (observedGeneration 0).")

    step(6, "Change it: JSON Merge Patch with If-Match (optimistic concurrency)")
    reply = http(
        "PATCH",
        "/v1/load-balancers/web",
        {"capacity": {"max": 10}, "waf": None, "drain": {"timeoutSeconds": 120}},
        {"If-Match": '"1"', "Content-Type": "application/merge-patch+json"},
    )
    show_lb(reply)
    assert reply.status == 200

    step(7, "A writer holding the old generation is refused instead of overwriting")
    reply = http(
        "PATCH",
        "/v1/load-balancers/web",
        {"capacity": {"max": 3}},
        {"If-Match": '"1"', "Content-Type": "application/merge-patch+json"},
    )
    show_problem(reply)
    assert reply.status == 412

    step(8, "A second load balancer: classic TCP/TLS in one subnet, DNS entry")
    classic = {
        "name": "db-proxy",
        "type": "classic",
        "vpcId": account.vpc_id,
        "subnetIds": [account.subnet_ids[1]],
        "listeners": [
            {"protocol": "TCP", "port": 5432, "defaultBackend": "postgres"},
            {
                "protocol": "TLS",
                "port": 5433,
                "defaultBackend": "postgres",
                "certificateArn": account.certificate_arn,
            },
        ],
        "backends": [
            {
                "name": "postgres",
                "targets": [{"host": "10.20.2.30", "port": 5432}],
                "healthCheck": {"protocol": "TCP"},
            }
        ],
        "capacity": {"min": 1, "max": 3},
        "entry": {"mode": "dns", "dnsTtlSeconds": 15},
    }
    show_lb(http("POST", "/v1/load-balancers", classic))

    step(9, "List them")
    reply = http("GET", "/v1/load-balancers?limit=10")
    print()
    for item in reply.body["items"]:
        phase = item["status"]["phase"]
        print(f"     {item['name']:<10} {item['id']}  {item['type']:<12} {phase:<9} gen {item['generation']}")

    step(10, "Delete the first one")
    reply = http("DELETE", f"/v1/load-balancers/{lb_id}")
    show_lb(reply)
    assert reply.status == 202 and reply.body["status"]["phase"] == "Deleting"
    say(
        "202 Accepted: the load balancer shows phase Deleting until its ordered teardown (drain, terminate, "
        "ENIs, DNS, entry) has finished; the reconciler runs that teardown and then removes the record."
    )

    step(11, "Its events tell the story, newest first")
    reply = http("GET", f"/v1/load-balancers/{lb_id}/events")
    print()
    for event in reply.body["items"]:
        print(f"     {event['time'][11:23]}  {event['reason']:<18} {event['message']}")

    print(
        f"\n{BOLD}Done in {time.monotonic() - started:.1f} s.{RESET} "
        "Run `make local` to keep the runtime up and try it yourself (see README)."
    )


def main() -> int:
    state_dir = Path(".local") / "demo"
    state_dir.parent.mkdir(exist_ok=True)
    # Free ports, so the demo runs beside a `make local` that is already up.
    with LocalRuntime(api_port=free_port(), aws_port=free_port(), state_dir=state_dir, quiet=True) as runtime:
        run(runtime)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
