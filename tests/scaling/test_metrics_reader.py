"""Reading agents' metrics from CloudWatch (moto): batching, averages, missing and failed series."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lbcp.adapters.metrics import (
    MAX_QUERIES_PER_CALL,
    CloudWatchMetricsReader,
    SeriesKey,
    calls_needed,
    queries_per_call,
)
from lbcp.models.metrics import NAMESPACE, SPEC_METRIC_NAMES, UNITS, dimensions

NOW = datetime(2026, 11, 28, 12, 0, 30, tzinfo=UTC)
REGION = "us-east-1"
SUBNETS = ("subnet-0123456789abcdef0", "subnet-0123456789abcdef1")
METRICS = ("cpu", "memory", "activeConnections")


@pytest.fixture
def cloudwatch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.client("cloudwatch", region_name=REGION)


def lb_id(i: int) -> str:
    return f"lb-{i:017x}"


def keys(load_balancers: int) -> list[SeriesKey]:
    return [SeriesKey(lb_id(i), s, m) for i in range(load_balancers) for s in SUBNETS for m in METRICS]


def publish(client: Any, lb: str, subnet: str, metric: str, value: float, *, at: datetime) -> None:
    name = SPEC_METRIC_NAMES[metric]
    client.put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[
            {
                "MetricName": name,
                "Dimensions": dimensions(lb, subnet),
                "Timestamp": at,
                "Value": value,
                "Unit": UNITS[name],
            }
        ],
    )


class CallLog:
    """Every GetMetricData request the client sends, as sent."""

    def __init__(self, client: Any) -> None:
        self.requests: list[dict[str, Any]] = []
        client.meta.events.register("provide-client-params.cloudwatch.GetMetricData", self._record)

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        self.requests.append(params)


@pytest.mark.parametrize(("load_balancers", "calls"), [(1, 1), (10, 1), (83, 1), (84, 2), (100, 2)])
def test_one_call_per_500_series(cloudwatch: Any, load_balancers: int, calls: int) -> None:
    log = CallLog(cloudwatch)
    batch = CloudWatchMetricsReader(cloudwatch).read(keys(load_balancers), NOW)
    assert batch.calls == calls == len(log.requests) == calls_needed(load_balancers * len(SUBNETS) * len(METRICS))
    assert all(len(request["MetricDataQueries"]) <= MAX_QUERIES_PER_CALL for request in log.requests)
    sent = [q["Label"] for request in log.requests for q in request["MetricDataQueries"]]
    assert len(sent) == len(set(sent)) == load_balancers * 6
    for request in log.requests:
        ids = [q["Id"] for q in request["MetricDataQueries"]]
        assert len(ids) == len(set(ids))
        assert all(i[0].islower() for i in ids)


def test_the_query_is_a_one_minute_average_per_subnet_over_whole_minutes(cloudwatch: Any) -> None:
    log = CallLog(cloudwatch)
    CloudWatchMetricsReader(cloudwatch).read(keys(1)[:1], NOW)
    (request,) = log.requests
    assert request["EndTime"] == datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert request["StartTime"] == datetime(2026, 11, 28, 11, 55, tzinfo=UTC)
    (query,) = request["MetricDataQueries"]
    assert query["MetricStat"] == {
        "Metric": {
            "Namespace": "lbcp",
            "MetricName": "CPUUtilization",
            "Dimensions": [
                {"Name": "LoadBalancerId", "Value": lb_id(0)},
                {"Name": "SubnetId", "Value": SUBNETS[0]},
            ],
        },
        "Period": 60,
        "Stat": "Average",
    }


def test_the_datapoint_limit_shrinks_batches_for_long_lookbacks() -> None:
    assert queries_per_call(timedelta(minutes=5)) == 500
    assert queries_per_call(timedelta(days=1)) == 100_800 // 1441


def test_values_are_the_average_of_the_agents_in_a_subnet_per_minute(cloudwatch: Any) -> None:
    minute = datetime(2026, 11, 28, 11, 58, tzinfo=UTC)
    for value in (80.0, 90.0):  # two LBVMs in subnet 0
        publish(cloudwatch, lb_id(0), SUBNETS[0], "cpu", value, at=minute + timedelta(seconds=10))
    publish(cloudwatch, lb_id(0), SUBNETS[1], "cpu", 40.0, at=minute + timedelta(seconds=20))
    publish(cloudwatch, lb_id(0), SUBNETS[1], "cpu", 50.0, at=minute - timedelta(minutes=1))
    publish(cloudwatch, lb_id(1), SUBNETS[0], "memory", 33.0, at=minute)
    publish(
        cloudwatch, lb_id(0), SUBNETS[0], "cpu", 99.0, at=datetime(2026, 11, 28, 12, 0, 5, tzinfo=UTC)
    )  # in progress
    batch = CloudWatchMetricsReader(cloudwatch).read(keys(2), NOW)
    window = batch.window_for(lb_id(0))
    assert window.latest(SUBNETS[0], "cpu") == (minute, 85.0)
    assert window.series[(SUBNETS[1], "cpu")] == [(minute - timedelta(minutes=1), 50.0), (minute, 40.0)]
    assert (SUBNETS[0], "memory") not in window.series  # nothing published: missing, never zero
    assert batch.window_for(lb_id(1)).latest(SUBNETS[0], "memory") == (minute, 33.0)


def test_no_keys_no_calls(cloudwatch: Any) -> None:
    assert CloudWatchMetricsReader(cloudwatch).read([], NOW).calls == 0


class ScriptedClient:
    """Answers GetMetricData from a script, to cover what moto does not produce."""

    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages = pages
        self.requests: list[dict[str, Any]] = []

    def get_metric_data(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        return self.pages[len(self.requests) - 1]


def test_next_token_pages_are_followed_and_failed_series_are_dropped() -> None:
    at = datetime(2026, 11, 28, 11, 58, tzinfo=UTC)
    client = ScriptedClient(
        [
            {
                "MetricDataResults": [
                    {"Id": "q0", "StatusCode": "PartialData", "Timestamps": [at], "Values": [70.0]},
                    {"Id": "q1", "StatusCode": "Forbidden", "Timestamps": [at], "Values": [1.0]},
                    {"Id": "q2", "StatusCode": "InternalError", "Timestamps": [], "Values": []},
                ],
                "NextToken": "more",
            },
            {
                "MetricDataResults": [
                    {"Id": "q0", "StatusCode": "Complete", "Timestamps": [at - timedelta(minutes=1)], "Values": [60.0]}
                ]
            },
        ]
    )
    batch = CloudWatchMetricsReader(client).read(keys(1)[:3], NOW)
    assert batch.calls == 2
    assert client.requests[1]["NextToken"] == "more"
    window = batch.window_for(lb_id(0))
    # Queries go out in key order: q0 is activeConnections, q1 cpu, q2 memory.
    assert window.series == {(SUBNETS[0], "activeConnections"): [(at - timedelta(minutes=1), 60.0), (at, 70.0)]}
    assert set(batch.unusable.values()) == {"Forbidden", "InternalError"}
