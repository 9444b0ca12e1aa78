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
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for part in ("functions", "local", "."):
    sys.path.insert(0, str(ROOT / part))

from bench.capacity_units import CapacityMeter  # noqa: E402

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


@dataclass
class _Tally:
    """What one kind of event (heartbeats, scaler runs) consumed over the hour."""

    events: int = 0
    read_units: float = 0.0
    write_units: float = 0.0
    index_write_units: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)

    @contextmanager
    def counting(self, meter: CapacityMeter) -> Iterator[None]:
        reads, writes, index_writes, calls = (
            meter.read_units, meter.write_units, meter.index_write_units, Counter(meter.calls)
        )  # fmt: skip
        yield
        self.events += 1
        self.read_units += meter.read_units - reads
        self.write_units += meter.write_units - writes
        self.index_write_units += meter.index_write_units - index_writes
        self.calls.update(meter.calls - calls)


class _Agent:
    """One LBVM's agent: a heartbeat each time it is asked, with the metrics period it closed since."""

    def __init__(self, member: Any, start: datetime, rng: random.Random) -> None:
        self.member, self.rng = member, rng
        self.sequence = 0
        self.period_end = start
        self.role = f"arn:aws:sts::123456789012:assumed-role/lbcp-lbvm/{member.instance_id}"

    def beat(self, service: Any, moment: datetime) -> None:
        from lbcp.models.agent import MetricsSample
        from lbcp.models.metrics import PUBLISH_PERIOD_SECONDS

        samples = []
        period_end = self.period_end + timedelta(seconds=PUBLISH_PERIOD_SECONDS)
        if moment >= period_end:  # the agent closed a metrics period: it rides on this heartbeat
            samples.append(
                MetricsSample(period_end=period_end, cpu=self.rng.uniform(30, 40), memory=35.0,
                              active_connections=self.rng.randint(80, 120))
            )  # fmt: skip
            self.period_end = period_end
        self.sequence += 1
        service.heartbeat(self.role, _heartbeat(self.member, self.sequence, moment, samples, self.rng))


def _seed_lbvm(lbvms: Any, load_balancer_id: str, account: Any, slot: int, start: datetime) -> Any:
    """A Routable LBVM as the lifecycle leaves it: waiting on its heartbeats callback, with its task token."""
    from lbcp.models.lbvm import Lbvm

    subnet = account.subnet_ids[slot % 2]
    member = Lbvm(
        lbvm_id=f"lbvm-{slot:012x}", load_balancer_id=load_balancer_id, subnet_id=subnet,
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
    return member


def _timeline(rng: random.Random, interval: int, start: datetime) -> list[tuple[datetime, str, int]]:
    """The hour's events in time order: each LBVM's beats (jittered as the agent does), the scaler's runs."""
    timeline: list[tuple[datetime, str, int]] = []
    for index in range(LBVMS):
        moment = start + timedelta(seconds=rng.uniform(0, interval))
        while moment < start + HOUR:
            timeline.append((moment, "beat", index))
            moment += timedelta(seconds=interval * rng.uniform(0.9, 1.1))
    timeline += [(start + timedelta(minutes=minute, seconds=5), "scale", -1) for minute in range(60)]
    return sorted(timeline)


def _heartbeat(member: Any, sequence: int, moment: datetime, samples: list[Any], rng: random.Random) -> Any:
    from lbcp.models.agent import Heartbeat

    return Heartbeat.model_validate(
        {
            "lbvmId": member.lbvm_id, "instanceId": member.instance_id,
            "loadBalancerId": member.load_balancer_id, "bootId": "boot-1", "sequence": sequence,
            "sentAt": moment.isoformat(), "state": "ready", "activeConnections": rng.randint(80, 120),
            "agentVersion": "bench", "appliedConfigVersion": 1, "capabilities": ["preload"],
            "metrics": [s.model_dump(mode="json", by_alias=True) for s in samples],
        }
    )  # fmt: skip


def measure(seed: int = 1) -> SteadyHour:
    import boto3
    from moto import mock_aws

    from bench.capacity_units import item_size
    from lbcp.adapters.metrics import LbvmMetricsReader
    from lbcp.dal.lbvms import LbvmRepository, lbvm_key
    from lbcp.dal.repository import LoadBalancerRepository, new_load_balancer_id
    from lbcp.dal.schema import create_table
    from lbcp.heartbeats import HeartbeatService
    from lbcp.models.events import Event
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
        members = [_seed_lbvm(lbvms, record.id, account, slot, start) for slot in range(LBVMS)]
        clock = [start]
        emitted: list[Any] = []
        service = HeartbeatService(load_balancers, lbvms, _Beats(), lambda: clock[0], emit_metrics=emitted.extend)
        interval = spec.lifecycle.heartbeat_interval_seconds
        reader = LbvmMetricsReader(lbvms)

        agents = [_Agent(member, start, rng) for member in members]
        tallies = {"beat": _Tally(), "scale": _Tally()}
        meter.reset()
        for moment, kind, index in _timeline(rng, interval, start):
            clock[0] = moment
            with tallies[kind].counting(meter):
                if kind == "beat":
                    agents[index].beat(service, moment)
                else:
                    run_scaler(load_balancers, reader, moment)
        stored = probe.get_item(TableName="bench", Key=lbvm_key(record.id, members[0].lbvm_id))["Item"]
        beats, runs = tallies["beat"], tallies["scale"]
        return SteadyHour(
            heartbeat_interval_seconds=interval, heartbeats=beats.events,
            heartbeat_read_units=beats.read_units, heartbeat_write_units=beats.write_units,
            heartbeat_index_write_units=beats.index_write_units, heartbeat_calls=dict(beats.calls),
            scaler_runs=runs.events, scaler_read_units=runs.read_units,
            scaler_write_units=runs.write_units + runs.index_write_units, scaler_calls=dict(runs.calls),
            lbvm_item_bytes=item_size(stored), emf_samples=len(emitted),
        )  # fmt: skip


if __name__ == "__main__":
    import json
    from dataclasses import asdict

    print(json.dumps(asdict(measure()), indent=2))
