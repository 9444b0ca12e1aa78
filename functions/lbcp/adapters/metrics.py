"""Reading the agents' metrics from CloudWatch: every load balancer's series in as few calls as allowed.

One ``GetMetricData`` call takes at most 500 ``MetricDataQuery`` structures
and returns at most 100,800 datapoints (CloudWatch API reference,
GetMetricData). The scaler asks for the last few one-minute ``Average``\\ s of
every (load balancer, subnet, metric) series at once, so a run costs
``ceil(series / 500)`` calls (plus a page for each ``NextToken``, which a
request this small never gets): 1 call for up to 83 load balancers with two
subnets and three metrics, 2 calls for 100.

A series that comes back empty, or with ``StatusCode`` ``Forbidden`` or
``InternalError``, is simply absent from the result: the policies treat
absent or stale series as missing and never scale in on them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from lbcp.models.metrics import NAMESPACE, PUBLISH_PERIOD_SECONDS, SPEC_METRIC_NAMES, dimensions
from lbcp.scaling.model import Datapoint, MetricsWindow

MAX_QUERIES_PER_CALL: Final = 500
MAX_DATAPOINTS_PER_CALL: Final = 100_800
DEFAULT_LOOKBACK: Final = timedelta(minutes=5)
# Results we keep; PartialData is complete enough for the newest points (it is
# followed by a NextToken page, which we read too).
_USABLE_STATUS: Final = frozenset({"Complete", "PartialData"})


@dataclass(frozen=True, order=True)
class SeriesKey:
    load_balancer_id: str
    subnet_id: str
    metric: str  # the spec's name: cpu, memory, activeConnections


@dataclass
class MetricsBatch:
    """What one read returned, and what it cost."""

    series: dict[SeriesKey, list[Datapoint]] = field(default_factory=dict)
    calls: int = 0
    unusable: dict[SeriesKey, str] = field(default_factory=dict)  # key -> StatusCode

    def window_for(self, load_balancer_id: str) -> MetricsWindow:
        return MetricsWindow(
            {
                (key.subnet_id, key.metric): sorted(points)
                for key, points in self.series.items()
                if key.load_balancer_id == load_balancer_id
            }
        )


def queries_per_call(lookback: timedelta, period_seconds: int = PUBLISH_PERIOD_SECONDS) -> int:
    """As many queries as one call takes without risking the datapoint limit."""
    points_per_series = math.ceil(lookback.total_seconds() / period_seconds) + 1
    return min(MAX_QUERIES_PER_CALL, MAX_DATAPOINTS_PER_CALL // points_per_series)


def calls_needed(series: int, lookback: timedelta = DEFAULT_LOOKBACK) -> int:
    return math.ceil(series / queries_per_call(lookback))


def _query(index: int, key: SeriesKey, period_seconds: int) -> dict[str, Any]:
    return {
        # Ids must start with a lowercase letter and be unique within a call.
        "Id": f"q{index}",
        "Label": f"{key.load_balancer_id}/{key.subnet_id}/{key.metric}",
        "MetricStat": {
            "Metric": {
                "Namespace": NAMESPACE,
                "MetricName": SPEC_METRIC_NAMES[key.metric],
                "Dimensions": dimensions(key.load_balancer_id, key.subnet_id),
            },
            "Period": period_seconds,
            "Stat": "Average",
        },
        "ReturnData": True,
    }


class CloudWatchMetricsReader:
    def __init__(
        self, client: Any, lookback: timedelta = DEFAULT_LOOKBACK, period_seconds: int = PUBLISH_PERIOD_SECONDS
    ) -> None:
        self._client = client
        self._lookback = lookback
        self._period = period_seconds

    def read(self, keys: Sequence[SeriesKey], now: datetime) -> MetricsBatch:
        """The last ``lookback`` of per-minute averages of every series in ``keys``."""
        batch = MetricsBatch()
        if not keys:
            return batch
        # Whole periods (minutes, in AWS): aligned times are faster for CloudWatch, and the
        # period in progress is left out (its average would cover part of the fleet's reports).
        epoch = now.astimezone(UTC).timestamp()
        end = datetime.fromtimestamp(epoch - epoch % self._period, tz=UTC)
        start = end - self._lookback
        size = queries_per_call(self._lookback, self._period)
        unique = sorted(set(keys))
        for offset in range(0, len(unique), size):
            chunk = unique[offset : offset + size]
            by_id = {f"q{i}": key for i, key in enumerate(chunk)}
            queries = [_query(i, key, self._period) for i, key in enumerate(chunk)]
            self._read_chunk(queries, by_id, start, end, batch)
        return batch

    def _read_chunk(
        self,
        queries: list[dict[str, Any]],
        by_id: dict[str, SeriesKey],
        start: datetime,
        end: datetime,
        batch: MetricsBatch,
    ) -> None:
        token: str | None = None
        while True:
            request: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": start, "EndTime": end}
            if token:
                request["NextToken"] = token
            response = self._client.get_metric_data(**request)
            batch.calls += 1
            for result in response.get("MetricDataResults", []):
                key = by_id.get(result.get("Id", ""))
                if key is None:
                    continue
                status = result.get("StatusCode", "Complete")
                if status not in _USABLE_STATUS:
                    batch.unusable[key] = status
                    continue
                points = [
                    (_utc(timestamp), float(value))
                    for timestamp, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=False)
                ]
                if points:
                    batch.series.setdefault(key, []).extend(points)
            token = response.get("NextToken")
            if not token:
                return


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
