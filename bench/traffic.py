"""Requests lost while the control plane changes a fleet: real clients through the local entry.

The local runtime with real proxies (``make local``'s default): every LBVM a
real HAProxy or NGINX, the entry a real HAProxy standing in for the NLB (late
as an NLB is), the backends real HTTP servers. Clients of four kinds
(``lbcp_local.traffic``: new connection per request, keep-alive, slow
requests, streams) run through the entry while the control plane, in turn:

    converge   creates the load balancer (2 LBVMs) and starts routing
    kill       loses an instance (terminated in EC2) and replaces it
    scale-out  grows to 4 LBVMs
    scale-in   shrinks to 2
    rollout    replaces every LBVM (a new instance type)
    broken     a rollout onto the seeded broken image (its agent never gets healthy):
               rolled back by itself, the fleet serving throughout; then the image PATCHed back
    config     a new routing rule, applied in place
    waf        the WAF on (NGINX with ModSecurity: a rollout when the proxy changes)
    delete     tears it down

For each phase it prints requests sent, failed (and how), retried
keep-alive requests, 5xx, and p50/p99 latency, and for the killed instance
the requests in flight on it and the new ones sent to it before the entry
stopped routing there. Targets: no failure in scale-out, scale-in, rollout,
config and waf; on a killed instance new requests fail only until the entry
has had time to act (a reconcile tick, which in AWS is the EC2 state-change
event, plus the entry's deregistration delay); no 5xx at any time. Exits 1
when one is missed.

    .venv/bin/python bench/traffic.py [--proxy haproxy|nginx|both] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import boto3

from lbcp_local.ports import free_port
from lbcp_local.runtime import LocalRuntime
from lbcp_local.traffic import LossAtKill, PhaseStats, TrafficGenerator, loss_at_kill, summarize

ZERO_LOSS_PHASES = ("scale-out", "scale-in", "rollout", "broken", "config", "waf")
# Scheduling slack on top of the kill window's bound (2 cores, many processes).
KILL_WINDOW_SLACK_SECONDS = 2.0
PHASE_TIMEOUT_SECONDS = 180.0


class Api:
    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json" if method != "PATCH" else "application/merge-patch+json"}
            | (headers or {}),
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else {}
        except urllib.error.HTTPError as error:
            raw = error.read()
            return error.code, json.loads(raw) if raw else {}

    def read(self, lb_id: str) -> dict[str, Any] | None:
        status, body = self.call("GET", f"/v1/load-balancers/{lb_id}")
        return body if status == 200 else None

    def patch(self, lb_id: str, change: dict[str, Any]) -> dict[str, Any]:
        current = self.read(lb_id)
        assert current is not None
        status, body = self.call(
            "PATCH", f"/v1/load-balancers/{lb_id}", change, {"If-Match": str(current["generation"])}
        )
        assert status == 200, body
        return dict(body)


def wait_until(what: str, check: Callable[[], bool], timeout: float = PHASE_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.25)


def settled(lb: dict[str, Any] | None, count: int, generation: int | None = None) -> bool:
    """Active, ``count`` LBVMs all Routable on the current generation's config, nothing draining."""
    if lb is None or lb["status"]["phase"] != "Active":
        return False
    lbvms = lb["status"]["lbvms"]
    if generation is not None and lb["status"]["observedGeneration"] < generation:
        return False
    return len(lbvms) == count and all(lbvm["state"] == "Routable" for lbvm in lbvms)


class Scenario:
    """One load balancer's life, phase by phase, with traffic through its entry all along."""

    def __init__(self, runtime: LocalRuntime, proxy: str, log: Callable[[str], None]) -> None:
        self.runtime = runtime
        self.api = Api(runtime.api_url)
        self.proxy = proxy
        self.log = log
        self.marks: list[tuple[str, float]] = []
        self.lb_id = ""
        self.killed_at: float | None = None

    def phase(self, name: str) -> None:
        self.marks.append((name, time.monotonic()))
        self.log(f"[{self.proxy}] {name}")

    def current(self) -> dict[str, Any]:
        lb = self.api.read(self.lb_id)
        assert lb is not None, f"{self.lb_id} is gone"
        return lb

    def converged(self, count: int, generation: int | None = None) -> bool:
        lb = self.api.read(self.lb_id)
        entry = self.runtime.entry
        assert entry is not None
        return lb is not None and settled(lb, count, generation) and entry.routes_to_every_routable(lb)

    def change(self, what: str, change: dict[str, Any], count: int, *, config: bool = False) -> None:
        generation = self.api.patch(self.lb_id, change)["generation"]
        wait_until(what, lambda: self.converged(count, generation) and (not config or _config_applied(self.current())))

    def create(self, spec: dict[str, Any]) -> TrafficGenerator:
        self.phase("converge")
        status, created = self.api.call("POST", "/v1/load-balancers", spec)
        assert status == 201, created
        self.lb_id = created["id"]
        wait_until("endpoints", lambda: bool(self.current()["status"]["entry"].get("localEndpoints")))
        endpoint = next(e for e in self.current()["status"]["entry"]["localEndpoints"] if e["listenerPort"] == 80)
        host, _, port = endpoint["address"].rpartition(":")
        traffic = TrafficGenerator(host, int(port)).start()
        wait_until("converge", lambda: self.converged(2))
        return traffic

    def kill(self) -> None:
        self.phase("kill")
        victim = self.current()["status"]["lbvms"][0]["instanceId"]
        self.killed_at = time.monotonic()
        boto3.client("ec2").terminate_instances(InstanceIds=[victim])
        wait_until(
            "replacement",
            lambda: (
                self.converged(2) and victim not in {lbvm["instanceId"] for lbvm in self.current()["status"]["lbvms"]}
            ),
        )

    def broken_image(self) -> BrokenRollout:
        """PATCH onto the broken image, wait for the rollback, PATCH the image back."""
        self.phase("broken")
        account = self.runtime.account
        assert account is not None
        started = time.monotonic()
        seen: list[int] = []

        def rolled_back() -> bool:
            lb = self.current()
            seen.append(sum(1 for lbvm in lb["status"]["lbvms"] if lbvm["state"] == "Routable"))
            return (lb["status"].get("rollout") or {}).get("state") == "RolledBack" and self.converged(2)

        self.api.patch(self.lb_id, {"instance": {"imageId": account.broken_image_id}})
        wait_until("broken image rolled back", rolled_back)
        took = time.monotonic() - started
        found = boto3.client("ec2").describe_instances(
            Filters=[
                {"Name": "image-id", "Values": [account.broken_image_id]},
                {"Name": "tag:lbcp:load-balancer-id", "Values": [self.lb_id]},
            ]
        )
        launches = sum(len(reservation["Instances"]) for reservation in found["Reservations"])
        self.change("image back", {"instance": {"imageId": None}}, 2)
        return BrokenRollout(launches, round(took, 1), min(seen))

    def delete(self) -> None:
        self.phase("delete")
        status, _ = self.api.call("DELETE", f"/v1/load-balancers/{self.lb_id}")
        assert status == 202
        wait_until("delete", lambda: self.api.read(self.lb_id) is None)


@dataclass(frozen=True)
class BrokenRollout:
    launches: int  # instances of the broken image launched
    seconds: float  # from the PATCH to RolledBack with the fleet converged again
    min_routable: int


def kill_window_bound(runtime: LocalRuntime) -> float:
    """How long new connections may still reach a killed instance: the control plane notices it (a
    reconcile tick; in AWS the EC2 state-change event), then the entry takes its deregistration delay."""
    return runtime.reconcile_seconds + runtime.entry_delays.deregistration_seconds + KILL_WINDOW_SLACK_SECONDS


@dataclass(frozen=True)
class Outcome:
    stats: list[PhaseStats]
    kill: LossAtKill
    kill_bound: float
    broken: BrokenRollout
    # Each failed request outside converge and delete: (phase, client kind, outcome, seconds into the phase).
    failed: list[tuple[str, str, str, float]]


def run(proxy: str, log: Callable[[str], None]) -> Outcome:
    state_dir = Path(tempfile.mkdtemp(prefix="lbcp-traffic-"))
    with LocalRuntime(api_port=free_port(), aws_port=free_port(), state_dir=state_dir, quiet=True) as runtime:
        spec = runtime.example_spec(name=f"traffic-{proxy}")
        spec["proxy"] = proxy
        spec["capacity"] = {"min": 2, "max": 2}
        spec["lifecycle"] = {
            "pendingTimeoutSeconds": 20,  # a real local LBVM sends its first heartbeat within seconds
            "unhealthyTimeoutSeconds": 6,
            "heartbeatIntervalSeconds": 1,
            "recoveryTimeoutSeconds": 10,
        }
        # A grace above the local entry's deregistration delay (3 s), as 30 s is above an NLB's.
        spec["drain"] = {"timeoutSeconds": 20, "maxConnectionLifetimeSeconds": 10, "deregistrationGraceSeconds": 5}
        spec["rollout"] = {"bakeSeconds": 5}  # a short bake: 300 s in production
        scenario = Scenario(runtime, proxy, log)
        traffic = scenario.create(spec)
        scenario.phase("steady")
        time.sleep(5)
        scenario.kill()
        scenario.phase("scale-out")
        scenario.change("scale-out", {"capacity": {"min": 4, "max": 4}}, 4)
        scenario.phase("scale-in")
        scenario.change("scale-in", {"capacity": {"min": 2, "max": 2}}, 2)
        scenario.phase("rollout")
        scenario.change("rollout", {"instance": {"type": "c6i.xlarge"}}, 2)
        broken = scenario.broken_image()
        scenario.phase("config")
        rules = [{"pathPrefix": "/v2", "backend": "api"}]
        scenario.change("config", {"listeners": _with_rules(scenario.current(), rules)}, 2, config=True)
        scenario.phase("waf")
        scenario.change("waf", {"proxy": "nginx", "waf": {"enabled": True, "mode": "block"}}, 2, config=True)
        time.sleep(3)
        scenario.delete()
        end = time.monotonic()
        traffic.stop()
    records = traffic.snapshot()
    bounds = [*scenario.marks, ("", end)]
    stats = [summarize(name, records, start, bounds[i + 1][1]) for i, (name, start) in enumerate(scenario.marks)]
    assert scenario.killed_at is not None
    kill_end = next(start for name, start in scenario.marks if name == "scale-out")
    failed: list[tuple[str, str, str, float]] = [
        (name, str(record.kind), record.outcome, round(record.started - start, 2))
        for i, (name, start) in enumerate(scenario.marks)
        if name not in ("converge", "delete")
        for record in records
        if record.failed and start <= record.started < bounds[i + 1][1]
    ]
    kill = loss_at_kill(records, scenario.killed_at, kill_end)
    return Outcome(stats, kill, kill_window_bound(runtime), broken, failed)


def _with_rules(lb: dict[str, Any] | None, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert lb is not None
    listeners = [dict(listener) for listener in lb["listeners"]]
    for listener in listeners:
        if listener["protocol"] in ("HTTP", "HTTPS"):
            listener["rules"] = [*listener.get("rules", []), *rules]
    return listeners


def _config_applied(lb: dict[str, Any] | None) -> bool:
    if lb is None:
        return False
    versions = {lbvm.get("configVersion") for lbvm in lb["status"]["lbvms"]}
    return len(versions) == 1 and None not in versions


def verdicts(stats: list[PhaseStats], kill: LossAtKill, kill_bound: float) -> list[str]:
    misses = []
    if kill.window_seconds is not None and kill.window_seconds > kill_bound:
        misses.append(
            f"kill: new requests still failed {kill.window_seconds:.1f} s after the kill (bound {kill_bound:.1f} s)"
        )
    for phase in stats:
        if phase.phase in ZERO_LOSS_PHASES and phase.failed:
            misses.append(f"{phase.phase}: {phase.failed} failed requests {phase.failures}")
        if phase.server_errors and phase.phase != "delete":
            misses.append(f"{phase.phase}: {phase.server_errors} 5xx")
        if phase.client_errors:
            misses.append(f"{phase.phase}: {phase.client_errors} 4xx (the WAF blocking real traffic?)")
    return misses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--proxy", choices=["haproxy", "nginx", "both"], default="both")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    proxies = ["haproxy", "nginx"] if args.proxy == "both" else [args.proxy]
    results: dict[str, Outcome] = {}
    for proxy in proxies:
        results[proxy] = run(proxy, lambda line: print(line, file=sys.stderr))
    if args.json:
        print(
            json.dumps(
                {
                    proxy: {
                        "phases": [asdict(s) for s in outcome.stats],
                        "kill": asdict(outcome.kill),
                        "killWindowBound": outcome.kill_bound,
                        "brokenImage": asdict(outcome.broken),
                        "failedRequests": outcome.failed,
                    }
                    for proxy, outcome in results.items()
                },
                indent=2,
            )
        )
    misses: list[str] = []
    for proxy, outcome in results.items():
        stats, kill, bound = outcome.stats, outcome.kill, outcome.kill_bound
        if not args.json:
            print(f"\n{proxy} LBVMs (through the local entry)")
            print(
                f"{'phase':<10} {'s':>6} {'sent':>6} {'failed':>6} {'retried':>7} {'5xx':>4} {'4xx':>4} {'p50 ms':>7} "
                f"{'p99 ms':>7}  failures"
            )
            for s in stats:
                print(
                    f"{s.phase:<10} {s.seconds:>6.1f} {s.sent:>6} {s.failed:>6} {s.retried:>7} {s.server_errors:>4} "
                    f"{s.client_errors:>4} "
                    f"{s.p50_ms if s.p50_ms is not None else '-':>7} {s.p99_ms if s.p99_ms is not None else '-':>7}  "
                    f"{s.failures or ''}"
                )
            window = f"{kill.window_seconds:.1f} s" if kill.window_seconds is not None else "-"
            print(
                f"kill: {kill.in_flight_failed} of {kill.in_flight} requests in flight at the kill failed; "
                f"{kill.started_after_failed} of {kill.started_after} sent after it failed, the last {window} after "
                f"the kill (bound {bound:.1f} s: a reconcile tick + the entry's deregistration delay)"
            )
            broken = outcome.broken
            print(
                f"broken image: {broken.launches} launches of it, RolledBack and converged {broken.seconds:.1f} s "
                f"after the PATCH, routable never below {broken.min_routable}"
            )
            for phase, kind, what, offset in outcome.failed:
                print(f"  failed in {phase}: a {kind} request, {what}, sent {offset:.2f} s into the phase")
        misses += [f"{proxy} {miss}" for miss in verdicts(stats, kill, bound)]
    for miss in misses:
        print(f"MISSED {miss}")
    if not misses:
        print("\nall targets met: no failed request while scaling, rolling or changing config; no 5xx")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
