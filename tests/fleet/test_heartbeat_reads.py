"""What a heartbeat costs in DynamoDB (moto): half-unit reads for a serving LBVM, one write a minute.

moto answers every read consistently, so these tests check what was asked: the
heartbeat of an LBVM waiting on its ``heartbeats`` callback reads both records
eventually consistent; an LBVM around a lifecycle transition (its first
heartbeat) is read again consistently, so its new task token is never missed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import boto3

from lbcp.dal.lbvms import LbvmRepository
from lbcp.dal.repository import LoadBalancerRepository
from lbcp.heartbeats import HeartbeatService
from lbcp.models.agent import Heartbeat, MetricsSample
from lbcp.models.lbvm import HEARTBEAT_PERSIST_INTERVAL
from lbcp.models.metrics import PUBLISH_PERIOD_SECONDS
from tests.conftest import Cloud
from tests.scaling.test_run import NOW, create, lbvm_in


class _Callbacks:
    def __init__(self) -> None:
        self.beats: list[str] = []
        self.completed: list[tuple[str, dict[str, object]]] = []

    def complete(self, token: str, output: dict[str, object]) -> bool:
        self.completed.append((token, output))
        return True

    def heartbeat(self, token: str) -> bool:
        self.beats.append(token)
        return True


class _Calls:
    """Every DynamoDB call of one client: operation and whether it asked for a consistent read."""

    def __init__(self, client: Any) -> None:
        self.seen: list[tuple[str, bool]] = []
        client.meta.events.register("before-parameter-build.dynamodb.*", self._record)

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.seen.append((model.name, bool(params.get("ConsistentRead"))))

    def reset(self) -> None:
        self.seen.clear()


def _world(
    cloud: Cloud, spec: dict[str, Any], **lbvm: Any
) -> tuple[HeartbeatService, _Calls, _Callbacks, Any, list[Any]]:
    client = boto3.session.Session(region_name=cloud.dynamodb.meta.region_name).client("dynamodb")
    calls = _Calls(client)
    load_balancers = LoadBalancerRepository(client, cloud.table)
    lbvms = LbvmRepository(client, cloud.table)
    record = create(load_balancers, spec, 1)
    member = lbvm_in(record, 0, record.spec.subnet_ids[0]).model_copy(update=lbvm)
    lbvms.create(member)
    clock = [NOW]
    callbacks = _Callbacks()
    service = HeartbeatService(load_balancers, lbvms, callbacks, lambda: clock[0], emit_metrics=lambda sets: None)
    calls.reset()
    return service, calls, callbacks, member, clock


def _beat(service: HeartbeatService, member: Any, sequence: int, moment: Any, *samples: MetricsSample) -> None:
    document: dict[str, Any] = {
        "lbvmId": member.lbvm_id, "instanceId": member.instance_id, "loadBalancerId": member.load_balancer_id,
        "bootId": "boot-1", "sequence": sequence, "sentAt": moment.isoformat(), "state": "ready",
        "activeConnections": 7 + sequence, "agentVersion": "test", "appliedConfigVersion": 1,
    }  # fmt: skip
    if samples:
        document["metrics"] = [s.model_dump(mode="json", by_alias=True) for s in samples]
    role = f"arn:aws:sts::123456789012:assumed-role/lbcp-lbvm/{member.instance_id}"
    service.heartbeat(role, Heartbeat.model_validate(document))


def test_a_serving_lbvm_s_heartbeat_reads_both_records_eventually_consistent(
    cloud: Cloud, spec: dict[str, Any]
) -> None:
    service, calls, callbacks, member, _ = _world(
        cloud, spec, callback_kind="heartbeats", callback_token="token-of-the-heartbeats-callback"
    )
    _beat(service, member, 1, NOW)
    reads = [consistent for operation, consistent in calls.seen if operation == "GetItem"]
    assert reads == [False, False]
    assert callbacks.beats == ["token-of-the-heartbeats-callback"]


def test_a_first_heartbeat_reads_the_lbvm_again_consistently_so_its_token_is_not_missed(
    cloud: Cloud, spec: dict[str, Any]
) -> None:
    service, calls, callbacks, member, _ = _world(
        cloud, spec, state="Pending", callback_kind="first-heartbeat", callback_token="token-of-the-first-heartbeat"
    )
    _beat(service, member, 1, NOW)
    reads = [consistent for operation, consistent in calls.seen if operation == "GetItem"]
    assert reads == [False, False, True]
    assert [token for token, _ in callbacks.completed] == ["token-of-the-first-heartbeat"]


def test_the_config_route_reads_consistently(cloud: Cloud, spec: dict[str, Any]) -> None:
    service, calls, _, member, _ = _world(cloud, spec, callback_kind="heartbeats", callback_token="t")
    role = f"arn:aws:sts::123456789012:assumed-role/lbcp-lbvm/{member.instance_id}"
    service.config(role, member.load_balancer_id, member.lbvm_id)
    reads = [consistent for operation, consistent in calls.seen if operation == "GetItem"]
    assert reads[:2] == [True, True]


def test_a_serving_lbvm_is_written_once_a_minute_by_its_metrics_sample(cloud: Cloud, spec: dict[str, Any]) -> None:
    assert timedelta(seconds=PUBLISH_PERIOD_SECONDS) == HEARTBEAT_PERSIST_INTERVAL
    service, calls, _, member, clock = _world(cloud, spec, callback_kind="heartbeats", callback_token="t")
    interval = 10
    for sequence, second in enumerate(range(0, 600, interval), start=1):  # ten minutes, a heartbeat every 10 s
        clock[0] = NOW + timedelta(seconds=second)
        samples = []
        if second % PUBLISH_PERIOD_SECONDS == 0:
            samples.append(MetricsSample(period_end=clock[0], cpu=35.0, memory=40.0, active_connections=sequence))
        _beat(service, member, sequence, clock[0], *samples)
    writes = [operation for operation, _ in calls.seen if operation not in ("GetItem", "Query")]
    assert len(writes) == 10, writes  # one per minute: the sample's, which also stores the report
