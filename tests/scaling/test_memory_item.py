"""The scaler's per-period memory in its own item (moto): what a steady hour writes, races, deletion, upgrade."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from bench.capacity_units import CapacityMeter, item_size
from lbcp.adapters.metrics import LbvmMetricsReader
from lbcp.dal.lbvms import LbvmRepository
from lbcp.dal.repository import LoadBalancerRepository
from lbcp.dal.scaler_memory import SCALER_SORT_KEY, StoredMemory, decode, encode, memory_item, scaler_key
from lbcp.models.events import Event
from lbcp.models.resource import LoadBalancerRecord
from lbcp.models.scaling import DemandSample, Recommendation, ScalerMemory, ScalingState
from lbcp.models.status import LbvmStatus
from lbcp.scaling.run import run_scaler
from tests.conftest import Cloud
from tests.scaling.test_run import METRIC_TIME, NOW, create, events, publish

STEADY = {"cpu": 60.0, "memory": 35.0, "activeConnections": 100.0}
HOT = {"cpu": 95.0, "memory": 35.0, "activeConnections": 100.0}


@pytest.fixture
def meter(cloud: Cloud) -> CapacityMeter:
    return CapacityMeter(cloud.dynamodb)


@pytest.fixture
def repository(cloud: Cloud, meter: CapacityMeter) -> LoadBalancerRepository:
    """The scaler's repository on a client of its own, watched by the meter (the tests' own writes are not)."""
    client = boto3.client("dynamodb", region_name=cloud.dynamodb.meta.region_name)
    return LoadBalancerRepository(meter.watch(client), cloud.table)


@pytest.fixture
def lbvms(cloud: Cloud) -> LbvmRepository:
    return LbvmRepository(cloud.dynamodb, cloud.table)


@pytest.fixture
def reader(cloud: Cloud) -> LbvmMetricsReader:
    return LbvmMetricsReader(LbvmRepository(cloud.dynamodb, cloud.table))


def noise_aware(repository: LoadBalancerRepository, spec: dict[str, Any], index: int = 1) -> LoadBalancerRecord:
    return create(repository, spec, index, policy="noise-aware")


def minute(  # noqa: PLR0917 (the test's fixtures, then the minute)
    repository: LoadBalancerRepository, lbvms: LbvmRepository, reader: LbvmMetricsReader, record: LoadBalancerRecord,
    m: int, values: dict[str, float] = STEADY,
) -> Any:  # fmt: skip
    publish(lbvms, record, values, METRIC_TIME + timedelta(minutes=m))
    return run_scaler(repository, reader, NOW + timedelta(minutes=m))


def reported(repository: LoadBalancerRepository, record: LoadBalancerRecord) -> None:
    """The reconciler reports one Routable LBVM per subnet (policies size demand on the LBVMs that served)."""
    lbvms = [
        LbvmStatus(lbvm_id=f"lbvm-{index:012x}", subnet_id=subnet, state="Routable", since=record.created_at)
        for index, subnet in enumerate(record.spec.subnet_ids)
    ]
    repository.write_status(record.id, record.status.model_copy(update={"lbvms": lbvms}), [])


def stored_memory(repository: LoadBalancerRepository, lb_id: str) -> StoredMemory:
    stored = repository.get_scaler_memory(lb_id)
    assert stored is not None
    return stored


def test_a_steady_hour_writes_the_memory_item_once_a_run_and_the_record_never(
    repository: LoadBalancerRepository,
    lbvms: LbvmRepository,
    reader: LbvmMetricsReader,
    meter: CapacityMeter,
    spec: dict[str, Any],
) -> None:
    record = noise_aware(repository, spec)
    for m in range(3):
        minute(repository, lbvms, reader, record, m)
    settled = repository.get(record.id)
    assert settled is not None
    meter.reset()
    for m in range(3, 60):
        report = minute(repository, lbvms, reader, record, m)
        assert [o.result for o in report.outcomes] == ["unchanged"]
        assert report.memory_calls == 1
    runs = 57
    # The record: not one write (no UpdateItem, no transaction, no index write); the memory: one PutItem a run.
    assert meter.calls["UpdateItem"] == meter.calls["TransactWriteItems"] == 0
    assert meter.calls["PutItem"] == runs and meter.calls["BatchGetItem"] == runs
    assert meter.write_units == runs  # one unit each: the item stays under 1 KB
    assert meter.index_write_units == 0
    after = repository.get(record.id)
    assert after is not None and after.scaling_version == settled.scaling_version
    assert after.scaling.demand == [] and after.scaling.recommendations == []
    # The memory: the noise window's 30 periods, one each, newest last; bumped once a run.
    stored = stored_memory(repository, record.id)
    times = [sample.time for sample in stored.memory.demand]
    assert len(times) == 30 and times == sorted(set(times))
    assert times[-1] == METRIC_TIME + timedelta(minutes=59)
    assert stored.version == 60
    assert [e.reason for e in events(repository, record.id)] == ["Created"]


def test_a_scale_out_writes_the_record_with_its_event_and_the_memory(
    repository: LoadBalancerRepository,
    lbvms: LbvmRepository,
    reader: LbvmMetricsReader,
    meter: CapacityMeter,
    spec: dict[str, Any],
) -> None:
    record = noise_aware(repository, spec)
    for m in range(3):
        minute(repository, lbvms, reader, record, m)
    meter.reset()
    report = minute(repository, lbvms, reader, record, 3, HOT)
    [outcome] = report.outcomes
    assert outcome.result == "scaled-out" and outcome.written
    assert meter.calls["TransactWriteItems"] == 1 and meter.calls["PutItem"] == 1
    stored = repository.get(record.id)
    assert stored is not None and stored.desired_capacity == outcome.desired > 2
    assert stored.scaling.last_scale_out_at == NOW + timedelta(minutes=3)
    assert stored.scaling.demand == []
    assert events(repository, record.id)[0].reason == "ScaledOut"
    assert len(stored_memory(repository, record.id).memory.demand) == 4


class StaleReads(LoadBalancerRepository):
    """Its batch read returns what the table held earlier (an eventually consistent read behind a write)."""

    stale: dict[str, StoredMemory]

    def get_scaler_memories(self, lb_ids: Any) -> tuple[dict[str, StoredMemory], int]:
        return self.stale, 1


def test_a_stale_read_loses_no_period(
    cloud: Cloud, repository: LoadBalancerRepository, lbvms: LbvmRepository, reader: LbvmMetricsReader, spec: Any
) -> None:
    record = noise_aware(repository, spec)
    minute(repository, lbvms, reader, record, 0)
    old = stored_memory(repository, record.id)
    minute(repository, lbvms, reader, record, 1)
    behind = StaleReads(cloud.dynamodb, cloud.table)
    behind.stale = {record.id: old}
    minute(behind, lbvms, reader, record, 2)
    stored = stored_memory(repository, record.id)
    assert [s.time for s in stored.memory.demand] == [METRIC_TIME + timedelta(minutes=m) for m in range(3)]
    assert stored.version == 3


class OverlappingRun(LoadBalancerRepository):
    """Another run of the same minute completes between our read and our memory write."""

    other: LoadBalancerRepository
    reader: LbvmMetricsReader
    now: datetime
    raced = False

    def put_scaler_memory(self, lb_id: str, memory: ScalerMemory, expected_version: int, now: datetime) -> None:
        if not self.raced:
            self.raced = True
            run_scaler(self.other, self.reader, self.now)
        super().put_scaler_memory(lb_id, memory, expected_version, now)


def test_an_overlapping_run_is_neither_overwritten_nor_counted_twice(
    cloud: Cloud, repository: LoadBalancerRepository, lbvms: LbvmRepository, reader: LbvmMetricsReader, spec: Any
) -> None:
    record = noise_aware(repository, spec)
    reported(repository, record)
    minute(repository, lbvms, reader, record, 0)
    minute(repository, lbvms, reader, record, 1)
    before = repository.get(record.id)
    assert before is not None
    racing = OverlappingRun(cloud.dynamodb, cloud.table)
    racing.other, racing.reader, racing.now = repository, reader, NOW + timedelta(minutes=2)
    report = minute(racing, lbvms, reader, record, 2, HOT)
    assert racing.raced
    stored = stored_memory(repository, record.id)
    # Both runs remembered the same period: once, and ours, deciding again on the other's, wrote nothing more.
    assert [s.time for s in stored.memory.demand] == [METRIC_TIME + timedelta(minutes=m) for m in range(3)]
    assert stored.version == 3
    # The other run scaled out; ours decided again on its record and memory: no second scale-out (it holds:
    # the new LBVMs are not serving yet, which the policy sees, as it did before the memory had its own item).
    current = repository.get(record.id)
    assert current is not None and current.desired_capacity > before.desired_capacity
    assert [(o.result, o.previous, o.desired) for o in report.outcomes] == [
        ("held", current.desired_capacity, current.desired_capacity)
    ]
    assert [e.reason for e in events(repository, record.id)].count("ScaledOut") == 1


class RacedRecord(LoadBalancerRepository):
    """Someone decides on the record just before our record write (after our memory write)."""

    raced = False

    def set_desired_capacity(
        self, lb_id: str, expected: int, desired: int, scaling: ScalingState, event: Event | None
    ) -> None:
        if not self.raced:
            self.raced = True
            super().set_desired_capacity(lb_id, expected, 5, ScalingState(last_decision="someone else"), None)
        super().set_desired_capacity(lb_id, expected, desired, scaling, event)


def test_a_lost_record_write_decides_again_on_the_memory_as_read(
    cloud: Cloud, repository: LoadBalancerRepository, lbvms: LbvmRepository, reader: LbvmMetricsReader, spec: Any
) -> None:
    racing = RacedRecord(cloud.dynamodb, cloud.table)
    record = noise_aware(racing, spec)
    minute(racing, lbvms, reader, record, 0, HOT)
    assert racing.raced
    stored = stored_memory(repository, record.id)
    assert [s.time for s in stored.memory.demand] == [METRIC_TIME]
    # Decided twice: the second decision, on the winner's record, rewrote the period's sample (no second one).
    assert stored.version == 2
    current = repository.get(record.id)
    assert current is not None and current.scaling_version == 2 and current.scaling.demand == []


def test_removing_the_load_balancer_removes_its_memory(
    cloud: Cloud, repository: LoadBalancerRepository, lbvms: LbvmRepository, reader: LbvmMetricsReader, spec: Any
) -> None:
    record = noise_aware(repository, spec)
    minute(repository, lbvms, reader, record, 0)
    assert repository.get_scaler_memory(record.id) is not None
    when = NOW + timedelta(minutes=1)
    repository.request_deletion(
        record.id, None, when, Event(time=when, type="Normal", reason="DeletionRequested", message="x")
    )
    repository.remove(record.id, Event(time=when, type="Normal", reason="Deleted", message="x"))
    assert repository.get_scaler_memory(record.id) is None
    assert not [item for item in cloud.table_items() if item["sk"]["S"] == SCALER_SORT_KEY]


def test_a_record_written_with_its_memory_inside_moves_it_on_the_first_run(
    repository: LoadBalancerRepository,
    lbvms: LbvmRepository,
    reader: LbvmMetricsReader,
    meter: CapacityMeter,
    spec: dict[str, Any],
) -> None:
    record = noise_aware(repository, spec)
    # As the code before the split stored it: the demand of the last periods in the record's scaling state.
    old = [DemandSample(time=METRIC_TIME - timedelta(minutes=m), lbvms=1.5) for m in (3, 2, 1)]
    repository.set_desired_capacity(record.id, 0, 2, ScalingState(last_decision="before", demand=old), None)
    meter.reset()
    minute(repository, lbvms, reader, record, 0)
    # One state-only record write, without a transaction, and the memory item.
    assert (meter.calls["UpdateItem"], meter.calls["TransactWriteItems"], meter.calls["PutItem"]) == (1, 0, 1)
    moved = repository.get(record.id)
    assert moved is not None and moved.scaling.demand == [] and moved.scaling.last_decision == "before"
    stored = stored_memory(repository, record.id)
    assert stored.memory.demand[:3] == old and stored.memory.demand[3].time == METRIC_TIME
    meter.reset()
    minute(repository, lbvms, reader, record, 1)
    assert (meter.calls["UpdateItem"], meter.calls["TransactWriteItems"], meter.calls["PutItem"]) == (0, 0, 1)
    assert len(stored_memory(repository, record.id).memory.demand) == 5


def test_the_memory_reads_back_exactly_and_a_full_window_fits_one_write_unit() -> None:
    start = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    memory = ScalerMemory(
        demand=[DemandSample(time=start + timedelta(minutes=m), lbvms=2 / 3 + m / 7) for m in range(30)],
        recommendations=[
            Recommendation(time=start + timedelta(seconds=65 * m, microseconds=123457 * m), desired=m) for m in range(3)
        ],
    )
    assert decode(encode(memory)) == memory
    assert decode(encode(ScalerMemory())) == ScalerMemory()
    demand_only = ScalerMemory(demand=memory.demand)
    item = memory_item("lb-0123456789abcdef0", demand_only, 12345, start)
    assert item_size(item) <= 1024
    assert set(item) >= set(scaler_key("lb-0123456789abcdef0")) and "gsi1pk" not in item
