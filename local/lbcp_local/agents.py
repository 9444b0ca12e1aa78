"""LBVM agents: the real agent code, one per booted instance, over a real proxy or a simulated one.

In AWS, every LBVM instance boots with user data that starts the agent. Here
no instance really boots, so this watches the emulated EC2 for running
instances that carry our tags and starts, for each, a machine
(``lbcp_local.machines``: the real proxy on loopback ports of its own, or a
simulated data plane) and the real agent loop (``agent.loop.Agent``) with the
real HTTP control-plane client talking to the agent endpoint its user data
names (``--agent-endpoint``: the local runtime's stand-in for the function
URL), whose heartbeats carry the agent's metrics samples to the LBVM records,
where the scaler reads them, as in AWS. The agent presents its instance's role
session as its principal (the local adapter's stand-in for SigV4). When the instance
stops or is terminated, its machine powers off: the proxy dies at once, and
the agent with it, exactly what a dead VM does.

``set_load`` changes the simulated traffic (connections, CPU) of a load
balancer's simulated LBVMs, which the demo uses to make the fleet scale.
"""

from __future__ import annotations

import base64
import logging
import random
import threading
from dataclasses import dataclass, field
from typing import Any

from agent.clock import SystemClock
from agent.control import HttpControlPlaneClient
from agent.identity import Identity
from agent.loop import Agent, AgentSettings
from lbcp import LB_ID_TAG_KEY, LBVM_ID_TAG_KEY, PRODUCT_TAG_KEY, PRODUCT_TAG_VALUE
from lbcp_local.events import LOCAL_ACCOUNT_ID
from lbcp_local.http_adapter import LOCAL_PRINCIPAL_HEADER
from lbcp_local.machines import DataPlaneKind, Machine, MachineFactory, SimulatedMachine, agent_endpoint_of

log = logging.getLogger("lbcp.local.agents")
LBVM_ROLE_NAME = "lbcp-local-lbvm"


@dataclass
class _Running:
    agent: Agent
    machine: Machine
    stop: threading.Event
    thread: threading.Thread

    def power_off(self) -> None:
        self.stop.set()  # the agent goes with its machine
        self.machine.power_off()


@dataclass
class LocalAgents:
    ec2: Any
    region: str
    machines: MachineFactory
    poll_seconds: float = 0.5
    # Agents measure metrics this often here (a minute in AWS), so the scaler sees load soon; the
    # samples ride on their heartbeats to the LBVM records, where the scaler reads them, as deployed.
    publish_seconds: float = 10.0
    # Images whose instances boot without a working agent (the seeded brokenImageId).
    broken_image_ids: frozenset[str] = frozenset()
    _agents: dict[str, _Running] = field(default_factory=dict)
    _duds: set[str] = field(default_factory=set)  # running instances of a broken image: no agent, ever
    _loads: dict[str, tuple[int, float]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="lbcp-local-agents", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            for running in self._agents.values():
                running.power_off()
            for running in self._agents.values():
                running.thread.join(timeout=5)
            self._agents.clear()

    @property
    def kind(self) -> DataPlaneKind:
        return self.machines.kind

    def running_instances(self) -> set[str]:
        with self._lock:
            return set(self._agents)

    def listen_addresses(self, instance_id: str) -> dict[int, str]:
        """Where the LBVM on this instance listens for each of its spec's ports ({} if none or simulated)."""
        with self._lock:
            running = self._agents.get(instance_id)
        return running.machine.listen_addresses() if running is not None else {}

    def set_load(self, load_balancer_id: str, connections_per_lbvm: int, cpu_percent: float) -> None:
        """Simulated traffic for every agent of a load balancer (now and for agents that start later)."""
        with self._lock:
            self._loads[load_balancer_id] = (connections_per_lbvm, cpu_percent)
            for running in self._agents.values():
                if running.agent.identity.load_balancer_id == load_balancer_id:
                    self._apply_load(running, connections_per_lbvm, cpu_percent)

    @staticmethod
    def _apply_load(running: _Running, connections: int, cpu: float) -> None:
        if isinstance(running.machine, SimulatedMachine):
            running.machine.set_load(connections, cpu)

    # --- the watch loop ---------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync()
            except Exception:  # the emulator may be busy: look again next round
                log.exception("could not list instances")
            self._stop.wait(self.poll_seconds)

    def _sync(self) -> None:
        running: dict[str, dict[str, Any]] = {}
        paginator = self.ec2.get_paginator("describe_instances")
        filters = [
            {"Name": f"tag:{PRODUCT_TAG_KEY}", "Values": [PRODUCT_TAG_VALUE]},
            {"Name": "instance-state-name", "Values": ["running"]},
        ]
        for page in paginator.paginate(Filters=filters):
            for reservation in page.get("Reservations", []):
                for instance in reservation.get("Instances", []):
                    running[instance["InstanceId"]] = instance
        with self._lock:
            for instance_id in set(self._agents) - set(running):
                self._agents.pop(instance_id).power_off()
            self._duds &= set(running)
            for instance_id, instance in running.items():
                if instance.get("ImageId") in self.broken_image_ids and instance_id not in self._duds:
                    # It boots; its agent never starts: no heartbeat, and its pending timeout replaces it.
                    log.warning("instance %s runs the broken image %s: no agent", instance_id, instance["ImageId"])
                    self._duds.add(instance_id)
                if instance_id not in self._agents and instance_id not in self._duds:
                    started = self._boot(instance)
                    if started is not None:
                        self._agents[instance_id] = started

    def _boot(self, instance: dict[str, Any]) -> _Running | None:
        tags = {tag["Key"]: tag["Value"] for tag in instance.get("Tags") or []}
        if LB_ID_TAG_KEY not in tags or LBVM_ID_TAG_KEY not in tags:
            return None
        identity = Identity(
            load_balancer_id=tags[LB_ID_TAG_KEY],
            lbvm_id=tags[LBVM_ID_TAG_KEY],
            instance_id=instance["InstanceId"],
            subnet_id=instance.get("SubnetId", ""),
        )
        principal = f"arn:aws:sts::{LOCAL_ACCOUNT_ID}:assumed-role/{LBVM_ROLE_NAME}/{identity.instance_id}"
        try:
            user_data = self._user_data(identity.instance_id)
            control = HttpControlPlaneClient(
                agent_endpoint_of(user_data), self.region, None, timeout=10, headers={LOCAL_PRINCIPAL_HEADER: principal}
            )
            machine = self.machines.boot(identity.instance_id, user_data)
        except (ValueError, OSError) as exc:
            # As an instance whose agent never starts: no heartbeat, and the lifecycle's pending timeout replaces it.
            log.error("instance %s cannot boot an LBVM: %s", identity.instance_id, exc)
            return None
        stop = threading.Event()
        agent = Agent(
            identity,
            control,
            machine.dataplane,
            clock=SystemClock(wake=stop),
            rng=random.Random(identity.instance_id),
            sampler=machine.sampler,
            settings=AgentSettings(heartbeat_interval_seconds=1.0, publish_period_seconds=self.publish_seconds),
        )
        running = _Running(agent, machine, stop, threading.Thread())
        if identity.load_balancer_id in self._loads:
            self._apply_load(running, *self._loads[identity.load_balancer_id])
        running.thread = threading.Thread(
            target=agent.run, args=(stop.is_set,), name=f"agent-{identity.instance_id}", daemon=True
        )
        running.thread.start()
        log.info("agent started on %s (%s of %s)", identity.instance_id, identity.lbvm_id, identity.load_balancer_id)
        return running

    def _user_data(self, instance_id: str) -> str:
        attribute = self.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
        encoded = attribute.get("UserData", {}).get("Value", "")
        return base64.b64decode(encoded).decode(errors="replace") if encoded else ""
