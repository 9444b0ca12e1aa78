"""Reading the agents' metrics for the scaler: from the LBVM records, one query per load balancer.

Agents send a sample a minute with their heartbeats, and the heartbeat handler
keeps the last few on each LBVM's record (``lbcp.heartbeats``,
``RECENT_METRICS_KEPT``). The scaler reads the LBVM records of each load
balancer it evaluates with one eventually consistent ``Query`` (its partition,
``LBVM#`` items; half a read unit per 4 KB) and computes what CloudWatch's
one-minute ``Average`` over (LoadBalancerId, SubnetId) gave it before: per
subnet and metric, the mean of the samples whose ``periodEnd`` falls in each
whole minute of the lookback (every LBVM that reported in that minute counts,
the others do not), oldest first, stamped with the minute's start. The minute
in progress is left out: its average would cover part of the fleet's reports.

A series with no sample in the lookback is absent from the result, and so are
all the series of a load balancer whose query failed: the policies treat absent
or stale series as missing and never scale in on them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from lbcp.dal.lbvms import LbvmRepository
from lbcp.models.agent import MetricsSample
from lbcp.models.lbvm import Lbvm
from lbcp.models.metrics import PUBLISH_PERIOD_SECONDS
from lbcp.scaling.model import Datapoint, MetricsWindow

DEFAULT_LOOKBACK: Final = timedelta(minutes=5)

# A sample's value of each metric, by the spec's name.
_VALUES: Final[dict[str, Callable[[MetricsSample], float]]] = {
    "cpu": lambda sample: sample.cpu,
    "memory": lambda sample: sample.memory,
    "activeConnections": lambda sample: float(sample.active_connections),
}


@dataclass(frozen=True, order=True)
class SeriesKey:
    load_balancer_id: str
    subnet_id: str
    metric: str  # the spec's name: cpu, memory, activeConnections


@dataclass
class MetricsBatch:
    """What one read returned, and what it cost."""

    series: dict[SeriesKey, list[Datapoint]] = field(default_factory=dict)
    calls: int = 0  # DynamoDB Query calls (pages)
    failed: dict[str, str] = field(default_factory=dict)  # load balancer id -> why its records could not be read

    def window_for(self, load_balancer_id: str) -> MetricsWindow:
        return MetricsWindow(
            {
                (key.subnet_id, key.metric): sorted(points)
                for key, points in self.series.items()
                if key.load_balancer_id == load_balancer_id
            }
        )


def whole_periods(now: datetime, lookback: timedelta, period_seconds: int) -> tuple[datetime, datetime]:
    """[start, end) of the whole periods in the lookback: ``end`` is the start of the period in progress."""
    epoch = now.astimezone(UTC).timestamp()
    end = datetime.fromtimestamp(epoch - epoch % period_seconds, tz=UTC)
    return end - lookback, end


def period_averages(
    lbvms: Iterable[Lbvm],
    keys: Sequence[SeriesKey],
    start: datetime,
    end: datetime,
    period_seconds: int = PUBLISH_PERIOD_SECONDS,
) -> dict[SeriesKey, list[Datapoint]]:
    """Per requested series, the mean of the samples of each period in [start, end), oldest first (pure).

    Each sample counts once, in the period its ``periodEnd`` falls in: as CloudWatch averaged the
    datapoints the agents published, a period's value is the mean over the LBVMs that reported in it.
    """
    wanted = set(keys)
    sums: dict[SeriesKey, dict[datetime, list[float]]] = defaultdict(lambda: defaultdict(list))
    for lbvm in lbvms:
        for sample in lbvm.recent_metrics:
            moment = sample.period_end.astimezone(UTC)
            epoch = moment.timestamp()
            period = datetime.fromtimestamp(epoch - epoch % period_seconds, tz=UTC)
            if not start <= period < end:
                continue
            for metric, value in _VALUES.items():
                key = SeriesKey(lbvm.load_balancer_id, lbvm.subnet_id, metric)
                if key in wanted:
                    sums[key][period].append(value(sample))
    return {
        key: [(period, sum(values) / len(values)) for period, values in sorted(by_period.items())]
        for key, by_period in sums.items()
    }


class LbvmMetricsReader:
    """The scaler's ``MetricsReader``: per-period averages from the LBVM records (DynamoDB)."""

    def __init__(
        self,
        lbvms: LbvmRepository,
        lookback: timedelta = DEFAULT_LOOKBACK,
        period_seconds: int = PUBLISH_PERIOD_SECONDS,
    ) -> None:
        self._lbvms = lbvms
        self._lookback = lookback
        self._period = period_seconds

    def read(self, keys: Sequence[SeriesKey], now: datetime) -> MetricsBatch:
        """The last ``lookback`` of per-period averages of every series in ``keys``."""
        batch = MetricsBatch()
        start, end = whole_periods(now, self._lookback, self._period)
        by_load_balancer: dict[str, list[SeriesKey]] = defaultdict(list)
        for key in sorted(set(keys)):
            by_load_balancer[key.load_balancer_id].append(key)
        for load_balancer_id, wanted in by_load_balancer.items():
            before = self._lbvms.queries
            try:
                lbvms = self._lbvms.list_for(load_balancer_id, consistent=False)
            except Exception as exc:  # one load balancer's failed read leaves only its own series missing
                batch.failed[load_balancer_id] = f"{type(exc).__name__}: {exc}"
                continue
            finally:
                batch.calls += self._lbvms.queries - before
            batch.series.update(period_averages(lbvms, wanted, start, end, self._period))
        return batch
