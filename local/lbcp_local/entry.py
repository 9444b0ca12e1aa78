"""The local entry: a real TCP load balancer on loopback for every NLB the control plane creates.

For each network load balancer in the emulator that carries our owner tags,
one HAProxy process (master-worker, as on an LBVM) listens on a free loopback
port per NLB listener and forwards to the LBVMs registered in that listener's
target group, as the control plane left the registrations, with the delays a
real NLB has (``lbcp_local.entry_routing``). A target is dialed where its
LBVM listens for the listener's port on this machine (``listen.json``).
Health checks are the target group's (TCP, its interval and thresholds).

Where clients connect is written to ``endpoints.json`` ({load balancer id:
[{"listenerPort": 80, "address": "127.0.0.1:PORT", "routedInstances": [...]}]}),
which the API reads for ``status.entry.localEndpoints`` (without the routed
instances, which are for tests and benchmarks watching from outside). Deleting the NLB in the emulator stops
its stand-in at once, cutting its connections, as a deleted NLB does.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from agent.model import RenderOptions
from agent.platform import Platform
from agent.proxy.haproxy import HaproxyDriver, MasterCli
from agent.proxy.process import ProxyFailed, ProxyProcess
from lbcp import LB_ID_TAG_KEY, PRODUCT_TAG_KEY, PRODUCT_TAG_VALUE
from lbcp.entry.pool import DESCRIBE_BATCH, NOT_REGISTERED_STATES
from lbcp_local.entry_routing import (
    EntryConfig,
    EntryDelays,
    EntryListener,
    EntryServer,
    HealthCheck,
    Target,
    TargetRouting,
    plan_servers,
    render_entry_config,
)
from lbcp_local.ports import LOOPBACK, free_port

log = logging.getLogger("lbcp.local.entry")
ENDPOINTS_FILE = "endpoints.json"
# What the runtime API answers when a command worked.
_DONE = frozenset({"", "New server registered.", "Server deleted."})


@dataclass(frozen=True)
class _TargetGroup:
    arn: str
    health_check: HealthCheck
    deregistration_timeout_seconds: int


@dataclass
class _StandIn:
    """One NLB's HAProxy."""

    arn: str
    name: str
    load_balancer_id: str
    state_dir: Path
    delays: EntryDelays
    platform: Platform
    routing: TargetRouting = field(init=False)
    bind_ports: dict[int, int] = field(default_factory=dict)  # listener port -> loopback port
    run_dir: Path = field(init=False)
    driver: HaproxyDriver = field(init=False)
    process: ProxyProcess | None = None
    applied: str | None = None
    servers: dict[Target, EntryServer] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.routing = TargetRouting(self.delays)
        # Sockets in a short directory of its own: HAProxy takes socket paths of at most 97 characters.
        self.run_dir = Path(tempfile.mkdtemp(prefix="lbcp-nlb-"))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.driver = HaproxyDriver(RenderOptions(run_dir=self.run_dir, log_dir=self.state_dir, platform=self.platform))

    @property
    def config_file(self) -> Path:
        return self.state_dir / "haproxy.cfg"

    def configure(self, text: str) -> None:
        """Serve these listeners from now on (a start the first time, a seamless reload after)."""
        if text == self.applied and self.process is not None and self.process.alive():
            return
        candidate = self.state_dir / "haproxy.cfg.next"
        candidate.write_text(text)
        self.driver.validate(candidate)
        os.replace(candidate, self.config_file)
        if self.process is None or not self.process.alive():
            self.process = self.driver.start(self.config_file)
        else:
            self.driver.reload(self.process)
        self.applied = text
        self.servers = {}  # the new worker starts with none: every target is added again

    def route(self, commands: list[str], after: dict[Target, EntryServer]) -> None:
        api = MasterCli(self.run_dir / "haproxy.sock")
        for command in commands:
            try:
                answer = api.command(command).strip()
            except OSError as exc:
                answer = str(exc)
            if answer not in _DONE:
                self.applied = None  # start over from a fresh worker on the next round
                raise ProxyFailed(f"{command!r}: {answer}")
        self.servers = after

    def routed(self, listener_port: int) -> list[str]:
        """The instances that get new connections on this listener now."""
        return sorted(
            target.instance_id
            for target, server in self.servers.items()
            if server.ready and target.listener_port == listener_port
        )

    def endpoints(self) -> list[dict[str, Any]]:
        # routedInstances is for whoever watches from outside (tests, benchmarks); the API shows the rest.
        return [
            {"listenerPort": port, "address": f"{LOOPBACK}:{bound}", "routedInstances": self.routed(port)}
            for port, bound in sorted(self.bind_ports.items())
        ]

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()  # a deleted NLB cuts its connections
            self.process = None
        shutil.rmtree(self.run_dir, ignore_errors=True)


@dataclass
class LocalEntry:
    elbv2: Any
    # instance id -> {listener port: "host:port"} where its LBVM listens ({} while it has none).
    lbvm_addresses: Callable[[str], Mapping[int, str]]
    state_dir: Path
    delays: EntryDelays = field(default_factory=EntryDelays)
    platform: Platform = field(default_factory=Platform.detect)
    poll_seconds: float = 0.5
    clock: Callable[[], float] = time.monotonic
    _stand_ins: dict[str, _StandIn] = field(default_factory=dict, init=False)
    _groups: dict[str, _TargetGroup] = field(default_factory=dict, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    @property
    def endpoints_file(self) -> Path:
        return self.state_dir / ENDPOINTS_FILE

    def start(self) -> LocalEntry:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._write_endpoints()
        self._thread = threading.Thread(target=self._run, name="local-entry", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            for stand_in in self._stand_ins.values():
                stand_in.stop()
            self._stand_ins.clear()

    def endpoints(self, load_balancer_id: str) -> list[dict[str, Any]]:
        with self._lock:
            for stand_in in self._stand_ins.values():
                if stand_in.load_balancer_id == load_balancer_id:
                    return stand_in.endpoints()
        return []

    def routed_instances(self, load_balancer_id: str, listener_port: int) -> set[str]:
        """The instances the entry sends new connections to on this listener now."""
        with self._lock:
            for stand_in in self._stand_ins.values():
                if stand_in.load_balancer_id == load_balancer_id:
                    return set(stand_in.routed(listener_port))
        return set()

    def routes_to_every_routable(self, load_balancer: Mapping[str, Any], listener_port: int = 80) -> bool:
        """Whether new connections reach every LBVM the API shows as Routable (at least one)."""
        routable = {lbvm["instanceId"] for lbvm in load_balancer["status"]["lbvms"] if lbvm["state"] == "Routable"}
        return bool(routable) and routable <= self.routed_instances(load_balancer["id"], listener_port)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception:  # the emulator restarting, a call timing out: try again next round
                log.exception("local entry sync failed")
            self._stop.wait(self.poll_seconds)

    # --- one round -------------------------------------------------------------------

    def sync(self) -> None:
        """Make every stand-in route as its NLB would now."""
        nlbs = dict(self._our_nlbs())
        with self._lock:
            for arn in set(self._stand_ins) - set(nlbs):
                if not self._deleted(arn):
                    continue  # missing from a listing only: keep serving
                gone = self._stand_ins.pop(arn)
                log.info("NLB %s is gone: its stand-in stops", gone.name)
                gone.stop()
            for arn, (name, lb_id) in nlbs.items():
                if arn not in self._stand_ins:
                    self._stand_ins[arn] = _StandIn(arn, name, lb_id, self.state_dir / name, self.delays, self.platform)
                stand_in = self._stand_ins[arn]
                try:
                    self._sync_one(stand_in)
                except ProxyFailed as exc:
                    log.error("the stand-in for NLB %s cannot serve: %s", name, exc)
            self._write_endpoints()

    def _sync_one(self, stand_in: _StandIn) -> None:
        listeners = self.elbv2.describe_listeners(LoadBalancerArn=stand_in.arn).get("Listeners", [])
        groups: dict[int, _TargetGroup] = {}
        for listener in listeners:
            forward = [action["TargetGroupArn"] for action in listener.get("DefaultActions", [])]
            if forward:
                groups[listener["Port"]] = self._group(forward[0])
        for port in set(stand_in.bind_ports) - set(groups):
            del stand_in.bind_ports[port]
            stand_in.routing.forget_port(port)
        now = self.clock()
        registered = [
            Target(port, instance_id) for port, group in groups.items() for instance_id in self._registered(group)
        ]
        stand_in.routing.observe(registered, now)
        wanted: dict[Target, str] = {}
        for target in stand_in.routing.routed(now):
            address = self.lbvm_addresses(target.instance_id).get(target.listener_port)
            if address is not None:  # an LBVM that listens nowhere yet would fail its checks anyway
                wanted[target] = address
        listeners = tuple(
            EntryListener(port, stand_in.bind_ports.setdefault(port, free_port()), group.health_check)
            for port, group in sorted(groups.items())
        )
        timeout = max((group.deregistration_timeout_seconds for group in groups.values()), default=300)
        stand_in.configure(render_entry_config(EntryConfig(stand_in.name, str(stand_in.run_dir), listeners, timeout)))
        checks = {port: group.health_check for port, group in groups.items()}
        stand_in.route(*plan_servers(stand_in.servers, wanted, checks, now, timeout))

    # --- the emulator ----------------------------------------------------------------

    def _our_nlbs(self) -> Iterator[tuple[str, tuple[str, str]]]:
        """(arn, (name, load balancer id)) of every network load balancer with our owner tags."""
        nlbs = {
            raw["LoadBalancerArn"]: raw["LoadBalancerName"]
            for page in self.elbv2.get_paginator("describe_load_balancers").paginate()
            for raw in page.get("LoadBalancers", [])
            if raw.get("Type") == "network"
        }
        arns = list(nlbs)
        for start in range(0, len(arns), DESCRIBE_BATCH):
            described = self.elbv2.describe_tags(ResourceArns=arns[start : start + DESCRIBE_BATCH])
            for description in described.get("TagDescriptions", []):
                tags = {tag["Key"]: tag["Value"] for tag in description.get("Tags", [])}
                if tags.get(PRODUCT_TAG_KEY) == PRODUCT_TAG_VALUE and LB_ID_TAG_KEY in tags:
                    arn = description["ResourceArn"]
                    yield arn, (nlbs[arn], tags[LB_ID_TAG_KEY])

    def _deleted(self, arn: str) -> bool:
        try:
            self.elbv2.describe_load_balancers(LoadBalancerArns=[arn])
        except ClientError as exc:
            return bool(exc.response.get("Error", {}).get("Code") == "LoadBalancerNotFound")
        return False

    def _group(self, arn: str) -> _TargetGroup:
        """A target group's health check and deregistration timeout (read once: the pool sets them at creation)."""
        known = self._groups.get(arn)
        if known is None:
            [raw] = self.elbv2.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"]
            attributes = {
                attribute["Key"]: attribute["Value"]
                for attribute in self.elbv2.describe_target_group_attributes(TargetGroupArn=arn).get("Attributes", [])
            }
            known = _TargetGroup(
                arn,
                HealthCheck(
                    interval_seconds=int(raw.get("HealthCheckIntervalSeconds", 10)),
                    healthy=int(raw.get("HealthyThresholdCount", 3)),
                    unhealthy=int(raw.get("UnhealthyThresholdCount", 3)),
                ),
                int(attributes.get("deregistration_delay.timeout_seconds", "300")),
            )
            self._groups[arn] = known
        return known

    def _registered(self, group: _TargetGroup) -> list[str]:
        descriptions = self.elbv2.describe_target_health(TargetGroupArn=group.arn).get("TargetHealthDescriptions", [])
        return [
            description["Target"]["Id"]
            for description in descriptions
            if description.get("TargetHealth", {}).get("State") not in NOT_REGISTERED_STATES
        ]

    def _write_endpoints(self) -> None:
        endpoints = {stand_in.load_balancer_id: stand_in.endpoints() for stand_in in self._stand_ins.values()}
        temporary = self.endpoints_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(endpoints, indent=2, sort_keys=True) + "\n")
        os.replace(temporary, self.endpoints_file)
