"""One load balancer's steady hour, measured on moto: what its heartbeats and its scaler runs consume.

One load balancer of 3 Routable LBVMs over 2 subnets, as the lifecycle leaves
them (each waits on its ``heartbeats`` callback with a Step Functions task
token). For one simulated hour, every LBVM's agent sends a heartbeat every
``heartbeatIntervalSeconds`` (the spec's default, with the agent's +-10 %
jitter) through the real ``HeartbeatService``, carrying its metrics sample once
per period, and the real scaler runs once a minute over the samples stored.
``capacity_units.CapacityMeter`` sizes every DynamoDB read and write.

The cost model (``reconcile_calls.py``) prices these counts.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from capacity_units import CapacityMeter  # type: ignore[import-not-found]  # a sibling script (sys.path)

LBVMS = 3
# A Step Functions task token as the lifecycle stores it on the LBVM record: opaque,
# about 700-1,000 characters in practice; the record carries it for its whole life.
TASK_TOKEN_LENGTH = 900
HOUR = timedelta(hours=1)


@dataclass
class _Beats:
    """Step Functions callbacks: SendTaskHeartbeat is not billed; counted here for the record."""

    heartbeats: int = 0
    completed: list[str] = field(default_factory=list)

    def complete(self, token: str, output: dict[str, object]) -> bool:
        self.completed.append(token)
        return True

    def heartbeat(self, token: str) -> bool:
        self.heartbeats += 1
        return True


@dataclass(frozen=True)
class SteadyHour:
    heartbeat_interval_seconds: int
    heartbeats: int  # all LBVMs
    heartbeat_read_units: float
    heartbeat_write_units: float  # base table
    heartbeat_index_write_units: float
    heartbeat_calls: dict[str, int]
    scaler_runs: int
    scaler_read_units: float
    scaler_write_units: float
    scaler_calls: dict[str, int]
    lbvm_item_bytes: int
    emf_samples: int


def measure(seed: int = 1) -> SteadyHour:  # noqa: PLR0915 (one scenario, read top to bottom)
    import boto3
    from capacity_units import item_size
    from moto import mock_aws

    from lbcp.adapters.metrics import LbvmMetricsReader
    from lbcp.dal.lbvms import LbvmRepository, lbvm_key
    from lbcp.dal.repository import LoadBalancerRepository, new_load_balancer_id
    from lbcp.dal.schema import create_table
    from lbcp.heartbeats import HeartbeatService
    from lbcp.models.agent import Heartbeat, MetricsSample
    from lbcp.models.events import Event
    from lbcp.models.lbvm import Lbvm
    from lbcp.models.metrics import PUBLISH_PERIOD_SECONDS
    from lbcp.models.resource import LoadBalancerRecord
    from lbcp.scaling.run import run_scaler
    from lbcp.service import initial_status
    from lbcp.validation import parse_spec
    from lbcp_local.seed import example_spec, seed_account

    rng = random.Random(seed)
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled", POWERTOOLS_METRICS_DISABLED="true",
    )  # fmt: skip
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        probe = session.client("dynamodb")
        create_table(probe, "bench")
        account = seed_account(session.client("ec2"), session.client("acm"), "us-east-1")
        meter = CapacityMeter(probe)
        dynamodb = meter.watch(session.client("dynamodb"))
        load_balancers = LoadBalancerRepository(dynamodb, "bench")
        lbvms = LbvmRepository(dynamodb, "bench")
        start = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
        spec = parse_spec({**example_spec(account, name="web"), "capacity": {"min": 3, "max": 6}})
        record = LoadBalancerRecord(
            id=new_load_balancer_id(), generation=1, spec=spec, status=initial_status(spec),
            created_at=start, updated_at=start, desired_capacity=3,
        )  # fmt: skip
        load_balancers.create(record, Event(time=start, type="Normal", reason="Created", message="bench"))
        members = []
        for slot in range(LBVMS):
            subnet = account.subnet_ids[slot % 2]
            member = Lbvm(
                lbvm_id=f"lbvm-{slot:012x}", load_balancer_id=record.id, subnet_id=subnet,
                availability_zone=account.availability_zones[slot % 2], state="Routable",
                state_since=start - timedelta(hours=1), version=1, launched_generation=1,
                created_at=start - timedelta(hours=1),
                launch_reason=f"launching an LBVM in {subnet} (us-east-1a) on c6i.large from the latest Amazon "
                "Linux 2023 running haproxy: 2 of 3 desired LBVMs are routable",
                instance_id=f"i-{slot:017x}", private_ip=f"10.20.{slot % 2 + 1}.{10 + slot}",
                execution_arn=f"arn:aws:states:us-east-1:123456789012:execution:lbcp-lifecycle:lbvm-{slot:012x}",
                callback_kind="heartbeats", callback_token="A" * TASK_TOKEN_LENGTH,
                last_heartbeat_at=start, applied_config_version=1, agent_state="ready",
            )  # fmt: skip
            lbvms.create(member)
            members.append(member)
        clock = [start]
        emitted: list[Any] = []
        service = HeartbeatService(load_balancers, lbvms, _Beats(), lambda: clock[0], emit_metrics=emitted.extend)
        interval = spec.lifecycle.heartbeat_interval_seconds
        reader = LbvmMetricsReader(lbvms)

        # The hour's events, in time order: each LBVM's beats (jittered as the agent does) and the scaler's runs.
        timeline: list[tuple[datetime, str, int]] = []
        for index in range(LBVMS):
            moment = start + timedelta(seconds=rng.uniform(0, interval))
            while moment < start + HOUR:
                timeline.append((moment, "beat", index))
                moment += timedelta(seconds=interval * rng.uniform(0.9, 1.1))
        timeline += [(start + timedelta(minutes=minute, seconds=5), "scale", -1) for minute in range(60)]
        timeline.sort()
        meter.reset()
        sequences = [0] * LBVMS
        pending: list[list[MetricsSample]] = [[] for _ in range(LBVMS)]
        last_period = [start] * LBVMS
        heartbeat_units = [0.0, 0.0, 0.0]
        heartbeat_calls: dict[str, int] = {}
        scaler_units = [0.0, 0.0]
        scaler_calls: dict[str, int] = {}
        beats = runs = 0
        for moment, kind, index in timeline:
            clock[0] = moment
            before = (meter.read_units, meter.write_units, meter.index_write_units, dict(meter.calls))
            if kind == "beat":
                member = members[index]
                period_end = last_period[index] + timedelta(seconds=PUBLISH_PERIOD_SECONDS)
                if moment >= period_end:  # the agent closes a metrics period and sends it with this beat
                    pending[index].append(
                        MetricsSample(period_end=period_end, cpu=rng.uniform(30, 40), memory=35.0,
                                      active_connections=rng.randint(80, 120))
                    )  # fmt: skip
                    last_period[index] = period_end
                sequences[index] += 1
                beat = Heartbeat.model_validate(
                    {
                        "lbvmId": member.lbvm_id, "instanceId": member.instance_id,
                        "loadBalancerId": record.id, "bootId": "boot-1", "sequence": sequences[index],
                        "sentAt": moment.isoformat(), "state": "ready", "activeConnections": rng.randint(80, 120),
                        "agentVersion": "bench", "appliedConfigVersion": 1, "capabilities": ["preload"],
                        "metrics": [s.model_dump(mode="json", by_alias=True) for s in pending[index]],
                    }
                )  # fmt: skip
                service.heartbeat(f"arn:aws:sts::123456789012:assumed-role/lbcp-lbvm/{member.instance_id}", beat)
                pending[index] = []
                beats += 1
                units, calls = heartbeat_units, heartbeat_calls
            else:
                run_scaler(load_balancers, reader, moment)
                runs += 1
                units, calls = scaler_units, scaler_calls
            units[0] += meter.read_units - before[0]
            units[1] += meter.write_units - before[1]
            if kind == "beat":
                units[2] += meter.index_write_units - before[2]
            else:
                units[1] += meter.index_write_units - before[2]
            for name, count in meter.calls.items():
                calls[name] = calls.get(name, 0) + count - before[3].get(name, 0)
        stored = probe.get_item(TableName="bench", Key=lbvm_key(record.id, members[0].lbvm_id))["Item"]
        return SteadyHour(
            heartbeat_interval_seconds=interval, heartbeats=beats,
            heartbeat_read_units=heartbeat_units[0], heartbeat_write_units=heartbeat_units[1],
            heartbeat_index_write_units=heartbeat_units[2], heartbeat_calls=heartbeat_calls,
            scaler_runs=runs, scaler_read_units=scaler_units[0], scaler_write_units=scaler_units[1],
            scaler_calls=scaler_calls, lbvm_item_bytes=item_size(stored), emf_samples=len(emitted),
        )  # fmt: skip


if __name__ == "__main__":
    import json
    import sys
    from dataclasses import asdict
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sys.path[:0] = [str(root / "functions"), str(root / "local"), str(root / "bench")]
    print(json.dumps(asdict(measure()), indent=2))
