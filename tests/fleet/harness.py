"""A driver for the LBVM state machines running in moto: launch, simulated agents, drains, reads.

The state machines, the tasks function and the entry adapter are the real
ones; only the agent is simulated, by doing what the heartbeat handler does
(store the heartbeat on the record, then drive the callback with
``lbcp.lifecycle.callbacks.on_heartbeat``), and the reconciler's drain request
(``drainRequestedAt`` on the record, then complete the stored token).
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from lbcp import LB_ID_TAG_KEY, PRODUCT_TAG_KEY, PRODUCT_TAG_VALUE
from lbcp.dal.lbvms import LbvmRepository
from lbcp.dal.repository import LoadBalancerRepository
from lbcp.entry import EntryAdapter
from lbcp.lifecycle import callbacks
from lbcp.lifecycle.executions import start_lifecycle
from lbcp.lifecycle.protocol import LBVM_ID_TAG_KEY, drain_output
from lbcp.models.events import Event
from lbcp.models.lbvm import DrainReason, Lbvm, LbvmConflict
from lbcp.models.lifecycle import DrainSettings, LaunchSettings, LifecycleInput, Tag, Timeouts
from lbcp.models.spec import LoadBalancerSpec
from lbcp_local.machinery import FleetMachinery
from tests.conftest import Api, Cloud

T = TypeVar("T")
ALIVE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]


# Liveness guards: they fail only when something never happens, and end as soon as it
# does (a drain to its timeout takes about 3 s here). Generous, because moto's interpreter
# threads slow down a lot on a loaded 2-core CI machine: a 20 s guard timed out once.
LIVENESS_TIMEOUT = 60.0


def wait_until(check: Callable[[], T | None], timeout: float = LIVENESS_TIMEOUT, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


@dataclass
class Fleet:
    cloud: Cloud
    api: Api
    sfn: Any
    elbv2: Any
    route53: Any
    machinery: FleetMachinery
    hosted_zone_id: str
    dns_domain: str
    image_id: str
    lbvms: LbvmRepository = field(init=False)
    load_balancers: LoadBalancerRepository = field(init=False)
    entry: EntryAdapter = field(init=False)

    def __post_init__(self) -> None:
        self.lbvms = LbvmRepository(self.cloud.dynamodb, self.cloud.table)
        self.load_balancers = LoadBalancerRepository(self.cloud.dynamodb, self.cloud.table)
        self.entry = EntryAdapter(
            ec2=self.cloud.ec2,
            elbv2=self.elbv2,
            route53=self.route53,
            hosted_zone_id=self.hosted_zone_id,
            dns_domain=self.dns_domain,
        )

    # --- load balancers --------------------------------------------------------------

    def create_load_balancer(self, spec: dict[str, Any]) -> tuple[str, LoadBalancerSpec]:
        """Through the real API (as a user would), then its entry (as the reconciler would)."""
        response = self.api.create(spec)
        assert response.status == 201, response.body
        lb_id = str(response.json()["id"])
        record = self.load_balancers.get(lb_id)
        assert record is not None
        self.entry.ensure_entry(record.spec, lb_id)
        return lb_id, record.spec

    # --- LBVMs -------------------------------------------------------------------------

    def lifecycle_input(
        self,
        lb_id: str,
        spec: LoadBalancerSpec,
        *,
        pending: int = 5,
        unhealthy: int = 2,
        recovery: int = 2,
        drain_timeout: int = 30,
        threshold: int = 1,
        poll: int = 5,
        grace: int = 0,
        instance_profile: bool = True,
        subnet_index: int = 0,
    ) -> LifecycleInput:
        """What the reconciler passes, with short timeouts (the pending marker is written here too)."""
        now = datetime.now(UTC)
        lbvm_id = "lbvm-" + secrets.token_hex(6)
        subnet_id = spec.subnet_ids[subnet_index]
        self.lbvms.create(
            Lbvm(
                lbvm_id=lbvm_id,
                load_balancer_id=lb_id,
                subnet_id=subnet_id,
                state="Launching",
                state_since=now,
                version=1,
                launched_generation=1,
                launch_reason="test",
                created_at=now,
            )
        )
        group = self.entry.ensure_entry(spec, lb_id).security_group_id
        assert group is not None
        return LifecycleInput(
            lbvm_id=lbvm_id,
            load_balancer_id=lb_id,
            table_name=self.cloud.table,
            subnet_id=subnet_id,
            security_group_ids=[group],
            launch=LaunchSettings(
                image_id=self.image_id,
                instance_type=spec.instance.type,
                user_data=base64.b64encode(b"#!/bin/sh\necho lbcp agent\n").decode(),
                instance_profile_arn=self.machinery.instance_profile_arn if instance_profile else None,
                tags=[
                    Tag(key=PRODUCT_TAG_KEY, value=PRODUCT_TAG_VALUE),
                    Tag(key=LB_ID_TAG_KEY, value=lb_id),
                    Tag(key=LBVM_ID_TAG_KEY, value=lbvm_id),
                    Tag(key="Name", value=f"{spec.name}/{lbvm_id}"),
                ],
            ),
            timeouts=Timeouts(pending_seconds=pending, unhealthy_seconds=unhealthy, recovery_seconds=recovery),
            drain=DrainSettings(
                connection_threshold=threshold, timeout_seconds=drain_timeout, poll_seconds=poll, grace_seconds=grace
            ),
            tasks_function_arn=self.machinery.tasks_function_arn,
            drain_state_machine_arn=self.machinery.drain_state_machine_arn,
        )

    def start(self, lifecycle_input: LifecycleInput) -> str:
        return start_lifecycle(self.sfn, self.machinery.lifecycle_state_machine_arn, lifecycle_input)

    def lbvm(self, lb_id: str, lbvm_id: str) -> Lbvm:
        found = self.lbvms.get(lb_id, lbvm_id)
        assert found is not None
        return found

    def wait_for_state(self, lb_id: str, lbvm_id: str, state: str, timeout: float = LIVENESS_TIMEOUT) -> Lbvm:
        return wait_until(
            lambda: lbvm if (lbvm := self.lbvm(lb_id, lbvm_id)).state == state else None,
            timeout,
            f"{lbvm_id} to be {state} (it is {self.lbvm(lb_id, lbvm_id).state})",
        )

    def wait_for_callback(self, lb_id: str, lbvm_id: str, kind: str, timeout: float = LIVENESS_TIMEOUT) -> Lbvm:
        return wait_until(
            lambda: lbvm if (lbvm := self.lbvm(lb_id, lbvm_id)).callback_kind == kind else None,
            timeout,
            f"{lbvm_id} to wait for callback {kind}",
        )

    def wait_for_execution(self, arn: str, timeout: float = LIVENESS_TIMEOUT) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            described: dict[str, Any] = self.sfn.describe_execution(executionArn=arn)
            return described if described["status"] != "RUNNING" else None

        return wait_until(done, timeout, f"execution {arn} to end")

    # --- the simulated agent and reconciler ------------------------------------------

    def heartbeat(self, lb_id: str, lbvm_id: str, *, state: str = "ready", connections: int = 0) -> str:
        """What the heartbeat handler does: store the report, then drive the callback."""
        for _ in range(10):
            current = self.lbvm(lb_id, lbvm_id)
            try:
                stored = self.lbvms.update(
                    current,
                    last_heartbeat_at=datetime.now(UTC),
                    agent_state=state,
                    active_connections=connections,
                )
            except LbvmConflict:
                continue
            return callbacks.on_heartbeat(self.sfn, stored)
        raise AssertionError("heartbeat kept conflicting")

    def set_connections(self, lb_id: str, lbvm_id: str, connections: int) -> None:
        for _ in range(10):
            try:
                self.lbvms.update(self.lbvm(lb_id, lbvm_id), active_connections=connections)
                return
            except LbvmConflict:
                continue
        raise AssertionError("update kept conflicting")

    @contextmanager
    def agent(self, lb_id: str, lbvm_id: str, interval: float = 0.2, connections: int = 0) -> Iterator[Agent]:
        """A ready agent heartbeating in the background until the block ends (or ``stop()``)."""
        agent = Agent(self, lb_id, lbvm_id, interval, connections)
        agent.start()
        try:
            yield agent
        finally:
            agent.stop()

    def request_drain(self, lb_id: str, lbvm_id: str, reason: DrainReason = "scale-in") -> bool:
        """What the reconciler does: record the request, then wake the waiting callback (if any)."""
        for _ in range(10):
            current = self.lbvm(lb_id, lbvm_id)
            try:
                stored = self.lbvms.update(current, drain_requested_at=datetime.now(UTC), drain_reason=reason)
            except LbvmConflict:
                continue
            if stored.callback_token is None:
                return False
            return callbacks.complete(self.sfn, stored.callback_token, drain_output(reason))
        raise AssertionError("drain request kept conflicting")

    # --- what exists -------------------------------------------------------------------

    def events(self, lb_id: str) -> list[Event]:
        return list(reversed(self.load_balancers.list_events(lb_id, 100, None).items))

    def event_reasons(self, lb_id: str) -> list[str]:
        return [event.reason for event in self.events(lb_id)]

    def instances(self, lbvm_id: str, states: list[str] | None = None) -> list[dict[str, Any]]:
        filters = [{"Name": f"tag:{LBVM_ID_TAG_KEY}", "Values": [lbvm_id]}]
        filters.append({"Name": "instance-state-name", "Values": states or ALIVE_STATES})
        reservations = self.cloud.ec2.describe_instances(Filters=filters)["Reservations"]
        return [instance for reservation in reservations for instance in reservation["Instances"]]

    def all_instances(self, lbvm_id: str) -> list[dict[str, Any]]:
        return self.instances(lbvm_id, [*ALIVE_STATES, "terminated"])

    def interfaces(self, lbvm_id: str) -> list[dict[str, Any]]:
        return list(
            self.cloud.ec2.describe_network_interfaces(
                Filters=[{"Name": f"tag:{LBVM_ID_TAG_KEY}", "Values": [lbvm_id]}]
            )["NetworkInterfaces"]
        )

    def registered(self, lb_id: str, spec: LoadBalancerSpec) -> frozenset[str] | None:
        view = self.entry.observe_entries([(lb_id, spec)], verify=[lb_id])[lb_id]
        return view.registered_instance_ids

    def dns_records(self, lb_id: str, spec: LoadBalancerSpec) -> dict[str, str]:
        view = self.entry.observe_entries([(lb_id, spec)], verify=[lb_id])[lb_id]
        return dict(view.dns_record_ips or {})


class Agent:
    """A simulated LBVM agent: heartbeats every ``interval`` seconds from a thread."""

    def __init__(self, fleet: Fleet, lb_id: str, lbvm_id: str, interval: float, connections: int) -> None:
        self._fleet = fleet
        self._lb_id = lb_id
        self._lbvm_id = lbvm_id
        self._interval = interval
        self.connections = connections
        self.state = "ready"
        self.last_sent: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"agent-{lbvm_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._fleet.heartbeat(self._lb_id, self._lbvm_id, state=self.state, connections=self.connections)
            self.last_sent = time.monotonic()
            self._stop.wait(self._interval)

    def stop(self) -> float | None:
        """Stop heartbeating; returns when the last heartbeat was sent (``time.monotonic()``)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        return self.last_sent
