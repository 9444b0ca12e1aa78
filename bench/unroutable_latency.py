"""Time from an agent's last heartbeat to its LBVM's deregistration, against the unhealthy timeout.

The local runtime's pieces, with real waits (nothing fast-forwarded): moto's
server on loopback executing the real state machines, the lifecycle tasks
function in-process (``lbcp_local.lambda_bridge``), the real entry adapter on
moto's ELBv2. Each run launches one LBVM, heartbeats like a ready agent until
it is Routable and a little longer, stops, and then watches the target group
until the instance is no longer registered:

    latency = deregistered_at - last_heartbeat_sent_at
    ratio   = latency / unhealthy timeout        (close to 1 is the goal)

The heartbeat path is the heartbeat handler's: store the report on the LBVM
record, then ``lbcp.lifecycle.callbacks.on_heartbeat`` (SendTaskHeartbeat).

    .venv/bin/python bench/unroutable_latency.py [--runs 5] [--timeouts 2 5] [--interval 0.5] [--json]

``--interval 10 --timeouts 30`` is the spec's default (heartbeatIntervalSeconds
10, unhealthyTimeoutSeconds 30): slow (about 45 s a run), but the real numbers.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import secrets
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import boto3

from lbcp import LB_ID_TAG_KEY, LBVM_ID_TAG_KEY, PRODUCT_TAG_KEY, PRODUCT_TAG_VALUE
from lbcp.dal.lbvms import LbvmRepository
from lbcp.dal.repository import LoadBalancerRepository
from lbcp.dal.schema import create_table
from lbcp.entry import EntryAdapter
from lbcp.entry.names import target_group_name
from lbcp.lifecycle import callbacks
from lbcp.lifecycle.executions import start_lifecycle
from lbcp.models.lbvm import Lbvm, LbvmConflict
from lbcp.models.lifecycle import DrainSettings, LaunchSettings, LifecycleInput, Tag, Timeouts
from lbcp.models.spec import LoadBalancerSpec
from lbcp_local import lambda_bridge
from lbcp_local.aws import LOCAL_REGION, EmbeddedAws, point_boto3_at
from lbcp_local.machinery import FleetMachinery, deploy_fleet_machinery
from lbcp_local.ports import free_port
from lbcp_local.seed import example_spec, seed_account

TABLE = "lbcp-bench"
HEARTBEAT_INTERVAL = 0.5  # seconds between a simulated agent's heartbeats
ROUTABLE_FOR = 1.5  # seconds of heartbeats after the LBVM is Routable, before the agent goes silent
POLL = 0.01  # seconds between target health reads while waiting for deregistration


@dataclass(frozen=True)
class Run:
    unhealthy_seconds: int
    latency_seconds: float

    @property
    def ratio(self) -> float:
        return self.latency_seconds / self.unhealthy_seconds


class Bench:
    def __init__(
        self,
        machinery: FleetMachinery,
        spec: LoadBalancerSpec,
        lb_id: str,
        image_id: str,
        interval: float = HEARTBEAT_INTERVAL,
    ) -> None:
        self.machinery = machinery
        self.interval = interval
        self.spec = spec
        self.lb_id = lb_id
        self.image_id = image_id
        dynamodb = boto3.client("dynamodb")
        self.lbvms = LbvmRepository(dynamodb, TABLE)
        self.sfn = boto3.client("stepfunctions")
        self.elbv2 = boto3.client("elbv2")
        self.entry = EntryAdapter(
            ec2=boto3.client("ec2"),
            elbv2=self.elbv2,
            route53=boto3.client("route53"),
            hosted_zone_id=None,
            dns_domain=None,
        )
        self.security_group = self.entry.ensure_entry(spec, lb_id).security_group_id
        self.target_group_arn = self.elbv2.describe_target_groups(
            Names=[target_group_name(lb_id, spec.listeners[0].port)]
        )["TargetGroups"][0]["TargetGroupArn"]

    def heartbeat(self, lbvm_id: str) -> None:
        for _ in range(20):
            current = self.lbvms.get(self.lb_id, lbvm_id)
            assert current is not None
            try:
                stored = self.lbvms.update(
                    current, last_heartbeat_at=datetime.now(UTC), agent_state="ready", active_connections=0
                )
            except LbvmConflict:
                continue
            callbacks.on_heartbeat(self.sfn, stored)
            return
        raise RuntimeError("heartbeat kept conflicting")

    def registered(self, instance_id: str) -> bool:
        health = self.elbv2.describe_target_health(TargetGroupArn=self.target_group_arn)["TargetHealthDescriptions"]
        return any(
            d["Target"]["Id"] == instance_id and d["TargetHealth"]["State"] not in ("unused", "draining")
            for d in health
        )

    def launch(self, unhealthy: int) -> LifecycleInput:
        now = datetime.now(UTC)
        lbvm_id = "lbvm-" + secrets.token_hex(6)
        subnet = self.spec.subnet_ids[0]
        self.lbvms.create(
            Lbvm(
                lbvm_id=lbvm_id,
                load_balancer_id=self.lb_id,
                subnet_id=subnet,
                state="Launching",
                state_since=now,
                version=1,
                launched_generation=1,
                launch_reason="bench",
                created_at=now,
            )
        )
        assert self.security_group is not None
        return LifecycleInput(
            lbvm_id=lbvm_id,
            load_balancer_id=self.lb_id,
            table_name=TABLE,
            subnet_id=subnet,
            security_group_ids=[self.security_group],
            launch=LaunchSettings(
                image_id=self.image_id,
                instance_type="c6i.large",
                user_data=base64.b64encode(b"#!/bin/sh\n").decode(),
                instance_profile_arn=self.machinery.instance_profile_arn,
                tags=[
                    Tag(key=PRODUCT_TAG_KEY, value=PRODUCT_TAG_VALUE),
                    Tag(key=LB_ID_TAG_KEY, value=self.lb_id),
                    Tag(key=LBVM_ID_TAG_KEY, value=lbvm_id),
                ],
            ),
            timeouts=Timeouts(pending_seconds=60, unhealthy_seconds=unhealthy, recovery_seconds=1),
            drain=DrainSettings(connection_threshold=1, timeout_seconds=5, poll_seconds=1),
            tasks_function_arn=self.machinery.tasks_function_arn,
            drain_state_machine_arn=self.machinery.drain_state_machine_arn,
        )

    def run(self, unhealthy: int) -> Run:
        lifecycle_input = self.launch(unhealthy)
        lbvm_id = lifecycle_input.lbvm_id
        start_lifecycle(self.sfn, self.machinery.lifecycle_state_machine_arn, lifecycle_input)
        last_sent = 0.0
        stop = threading.Event()

        def agent() -> None:
            nonlocal last_sent
            while not stop.is_set():
                self.heartbeat(lbvm_id)
                last_sent = time.monotonic()
                stop.wait(self.interval)

        thread = threading.Thread(target=agent, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while (lbvm := self.lbvms.get(self.lb_id, lbvm_id)) is None or lbvm.callback_kind != "heartbeats":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{lbvm_id} did not become Routable")
            time.sleep(0.05)
        instance_id = lbvm.instance_id
        assert instance_id is not None and self.registered(instance_id)
        time.sleep(ROUTABLE_FOR)
        stop.set()
        thread.join()
        while self.registered(instance_id):
            if time.monotonic() - last_sent > 10 * unhealthy + 30:
                raise RuntimeError(f"{lbvm_id} was never deregistered")
            time.sleep(POLL)
        return Run(unhealthy, time.monotonic() - last_sent)


def start_local_aws() -> EmbeddedAws:
    aws = EmbeddedAws("127.0.0.1", free_port())
    aws.start()
    point_boto3_at(aws.endpoint_url)
    os.environ["LBCP_TABLE_NAME"] = TABLE
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    return aws


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs per timeout")
    parser.add_argument("--timeouts", type=int, nargs="+", default=[2, 5], help="unhealthy timeouts (seconds)")
    parser.add_argument(
        "--interval", type=float, default=HEARTBEAT_INTERVAL, help="seconds between the simulated agent's heartbeats"
    )
    parser.add_argument("--json", action="store_true", help="print the runs as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    lambda_bridge.install()
    aws = start_local_aws()
    try:
        create_table(boto3.client("dynamodb"), TABLE)
        account = seed_account(boto3.client("ec2"), boto3.client("acm"), LOCAL_REGION)
        machinery = deploy_fleet_machinery(
            iam=boto3.client("iam"), lambda_client=boto3.client("lambda"), sfn=boto3.client("stepfunctions")
        )
        for name, value in machinery.environment().items():
            os.environ[name] = value
        spec = LoadBalancerSpec.model_validate(example_spec(account))
        lb_id = "lb-" + secrets.token_hex(9)[:17]
        # The tasks function reads the load balancer's spec: store it as the API would have.
        LoadBalancerRepository(boto3.client("dynamodb"), TABLE).create(*_record(lb_id, spec))
        image_id = boto3.client("ec2").register_image(Name="lbcp-bench", RootDeviceName="/dev/xvda")["ImageId"]
        bench = Bench(machinery, spec, lb_id, image_id, args.interval)
        runs = [bench.run(timeout) for timeout in args.timeouts for _ in range(args.runs)]
    finally:
        aws.stop()
        lambda_bridge.uninstall()

    if args.json:
        print(json.dumps([{**asdict(run), "ratio": run.ratio} for run in runs], indent=2))
        return 0
    print(f"{'unhealthy':>10} {'runs':>5} {'latency min/median/max (s)':>28} {'ratio median':>13} {'ratio max':>10}")
    for timeout in args.timeouts:
        mine = [run for run in runs if run.unhealthy_seconds == timeout]
        latencies = [run.latency_seconds for run in mine]
        ratios = [run.ratio for run in mine]
        spread = f"{min(latencies):.3f} / {statistics.median(latencies):.3f} / {max(latencies):.3f}"
        print(f"{timeout:>9}s {len(mine):>5} {spread:>28} {statistics.median(ratios):>13.3f} {max(ratios):>10.3f}")
    return 0


def _record(lb_id: str, spec: LoadBalancerSpec) -> tuple[Any, Any]:
    from lbcp.models.events import Event
    from lbcp.models.resource import LoadBalancerRecord
    from lbcp.models.status import EntryStatus, LoadBalancerStatus

    now = datetime.now(UTC)
    record = LoadBalancerRecord(
        id=lb_id,
        generation=1,
        spec=spec,
        status=LoadBalancerStatus(
            phase="Active", observed_generation=1, desired_capacity=1, entry=EntryStatus(mode="pool")
        ),
        created_at=now,
        updated_at=now,
        desired_capacity=1,
    )
    return record, Event(time=now, type="Normal", reason="Created", message="bench")


if __name__ == "__main__":
    sys.exit(main())
