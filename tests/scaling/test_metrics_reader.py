"""Reading agents' metrics from the LBVM records (DynamoDB on moto): per-subnet per-minute averages, one query each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lbcp.adapters.metrics import LbvmMetricsReader, SeriesKey, period_averages, whole_periods
from lbcp.dal.lbvms import LbvmRepository
from lbcp.models.agent import MetricsSample
from lbcp.models.lbvm import Lbvm
from tests.conftest import Cloud

NOW = datetime(2026, 11, 28, 12, 0, 30, tzinfo=UTC)
MINUTE = datetime(2026, 11, 28, 11, 58, tzinfo=UTC)
SUBNETS = ("subnet-0123456789abcdef0", "subnet-0123456789abcdef1")
METRICS = ("cpu", "memory", "activeConnections")


def lb_id(i: int) -> str:
    return f"lb-{i:017x}"


def keys(load_balancers: int) -> list[SeriesKey]:
    return [SeriesKey(lb_id(i), s, m) for i in range(load_balancers) for s in SUBNETS for m in METRICS]


def sample(at: datetime, cpu: float, memory: float = 50.0, connections: int = 10) -> MetricsSample:
    return MetricsSample(period_end=at, cpu=cpu, memory=memory, active_connections=connections)


def lbvm(index: int, lb: str, subnet: str, *samples: MetricsSample) -> Lbvm:
    return Lbvm(
        lbvm_id=f"lbvm-{index:012x}",
        load_balancer_id=lb,
        subnet_id=subnet,
        state="Routable",
        state_since=NOW - timedelta(hours=1),
        version=1,
        launched_generation=1,
        launch_reason="test",
        created_at=NOW - timedelta(hours=1),
        recent_metrics=samples,
    )


@pytest.fixture
def repository(cloud: Cloud) -> LbvmRepository:
    return LbvmRepository(cloud.dynamodb, cloud.table)


class QueryLog:
    """Every Query request the client sends, as sent."""

    def __init__(self, client: Any) -> None:
        self.requests: list[dict[str, Any]] = []
        client.meta.events.register("provide-client-params.dynamodb.Query", self._record)

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        self.requests.append(params)


def test_values_are_per_subnet_per_minute_means_over_the_lbvms_that_reported_in_that_minute(
    repository: LbvmRepository, cloud: Cloud
) -> None:
    lb = lb_id(0)
    for record in (
        # Subnet 0: a reports in both minutes, b only in the later one (it joined, or one heartbeat was late).
        lbvm(
            1,
            lb,
            SUBNETS[0],
            sample(MINUTE - timedelta(seconds=50), 70.0),
            sample(MINUTE + timedelta(seconds=10), 80.0),
        ),
        lbvm(2, lb, SUBNETS[0], sample(MINUTE + timedelta(seconds=20), 90.0, memory=30.0, connections=30)),
        # Subnet 1: c's newest sample is in the minute in progress (left out); d is stale, all before the lookback.
        lbvm(3, lb, SUBNETS[1], sample(MINUTE + timedelta(seconds=30), 40.0), sample(NOW - timedelta(seconds=5), 99.0)),
        lbvm(
            4,
            lb,
            SUBNETS[1],
            sample(MINUTE - timedelta(minutes=20), 10.0),
            sample(MINUTE - timedelta(minutes=19), 10.0),
        ),
        # Another load balancer's LBVM: never in the first one's averages.
        lbvm(5, lb_id(1), SUBNETS[0], sample(MINUTE, 5.0, memory=33.0)),
    ):
        repository.create(record)
    log = QueryLog(cloud.dynamodb)
    batch = LbvmMetricsReader(repository).read(keys(2), NOW)
    window = batch.window_for(lb)
    assert window.series[(SUBNETS[0], "cpu")] == [(MINUTE - timedelta(minutes=1), 70.0), (MINUTE, 85.0)]
    assert window.series[(SUBNETS[0], "memory")] == [(MINUTE - timedelta(minutes=1), 50.0), (MINUTE, 40.0)]
    assert window.series[(SUBNETS[0], "activeConnections")] == [(MINUTE - timedelta(minutes=1), 10.0), (MINUTE, 20.0)]
    assert window.series[(SUBNETS[1], "cpu")] == [(MINUTE, 40.0)]  # not 99 (in progress), not d's 10 (stale)
    assert window.latest(SUBNETS[1], "cpu") == (MINUTE, 40.0)
    assert batch.window_for(lb_id(1)).latest(SUBNETS[0], "memory") == (MINUTE, 33.0)
    assert (SUBNETS[1], "memory") not in batch.window_for(lb_id(1)).series  # nothing reported: missing, never zero
    # One eventually consistent query per load balancer, and the batch counts them.
    assert batch.calls == len(log.requests) == 2
    assert all(request["ConsistentRead"] is False for request in log.requests)
    assert sorted(r["ExpressionAttributeValues"][":pk"]["S"] for r in log.requests) == [
        f"LB#{lb_id(0)}",
        f"LB#{lb_id(1)}",
    ]


def test_only_the_requested_series_are_returned(repository: LbvmRepository) -> None:
    # An LBVM left in a subnet the spec dropped, and metrics the spec does not scale on.
    repository.create(lbvm(1, lb_id(0), SUBNETS[0], sample(MINUTE, 60.0)))
    repository.create(lbvm(2, lb_id(0), "subnet-0123456789abcdef9", sample(MINUTE, 60.0)))
    batch = LbvmMetricsReader(repository).read([SeriesKey(lb_id(0), SUBNETS[0], "cpu")], NOW)
    assert batch.series == {SeriesKey(lb_id(0), SUBNETS[0], "cpu"): [(MINUTE, 60.0)]}


def test_no_keys_no_calls(repository: LbvmRepository) -> None:
    assert LbvmMetricsReader(repository).read([], NOW).calls == 0


def test_a_load_balancer_whose_records_cannot_be_read_has_no_series(cloud: Cloud) -> None:
    missing_table = LbvmRepository(cloud.dynamodb, "no-such-table")
    batch = LbvmMetricsReader(missing_table).read(keys(2), NOW)
    assert batch.series == {}
    assert set(batch.failed) == {lb_id(0), lb_id(1)}
    assert "ResourceNotFoundException" in batch.failed[lb_id(0)]


def test_the_lookback_is_whole_periods_before_the_one_in_progress() -> None:
    assert whole_periods(NOW, timedelta(minutes=5), 60) == (
        datetime(2026, 11, 28, 11, 55, tzinfo=UTC),
        datetime(2026, 11, 28, 12, 0, tzinfo=UTC),
    )
    # The local runtime's periods of ten seconds.
    start, end = whole_periods(NOW + timedelta(seconds=7), timedelta(seconds=50), 10)
    assert (start, end) == (NOW - timedelta(seconds=50), NOW)
    records = [
        lbvm(
            1, lb_id(0), SUBNETS[0], sample(NOW - timedelta(seconds=9), 20.0), sample(NOW - timedelta(seconds=4), 30.0)
        ),
        lbvm(2, lb_id(0), SUBNETS[0], sample(NOW - timedelta(seconds=2), 70.0)),
    ]
    averages = period_averages(records, [SeriesKey(lb_id(0), SUBNETS[0], "cpu")], start, end, 10)
    # Every sample counts once, as CloudWatch's Average of the datapoints did.
    assert averages == {SeriesKey(lb_id(0), SUBNETS[0], "cpu"): [(NOW - timedelta(seconds=10), 40.0)]}
