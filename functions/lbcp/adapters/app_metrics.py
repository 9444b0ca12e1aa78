"""The control plane's own metrics, written as EMF log lines through Powertools (names: ``lbcp.models.app_metrics``).

What a run reports (a reconcile tick: ``lbcp.reconcile.tick_metrics``; a
scaler run: ``lbcp.scaling.run``) becomes ``MetricSet``\\ s, one per dimension set; ``publish`` writes each as one
EMF line on stdout, which Lambda sends to the function's log group and
CloudWatch turns into datapoints. No API call, no IAM permission; the cost is
the log bytes and one custom metric per metric and dimension set.

Heartbeats arrive every few seconds from every LBVM, one API invocation each:
a line per heartbeat would add as many log bytes as the request log itself.
``Tally`` adds them up in the warm function and publishes at most once per
``TALLY_PERIOD_SECONDS``; what a container counted in its last period before
Lambda retires it is lost, which a graph of heartbeats per minute tolerates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from lbcp.models.app_metrics import NAMESPACE

TALLY_PERIOD_SECONDS: Final = 60.0
COUNT: Final = MetricUnit.Count
PERCENT: Final = MetricUnit.Percent
MILLISECONDS: Final = MetricUnit.Milliseconds


@dataclass(frozen=True)
class Datapoint:
    name: str
    unit: MetricUnit
    value: float


@dataclass(frozen=True)
class MetricSet:
    """Datapoints that share one dimension set (besides ``service``): one EMF line."""

    values: tuple[Datapoint, ...]
    dimensions: tuple[tuple[str, str], ...] = ()
    # When the values were measured (the line's Timestamp, within CloudWatch's 14 days past and
    # 2 hours ahead); unset: when the line is written.
    timestamp: datetime | None = None


def publish(sets: Iterable[MetricSet], service: str | None) -> None:
    """Each set as one EMF line on stdout, with the ``service`` dimension Powertools adds.

    ``service`` None: no service dimension, only the set's own (the agents' metrics, by load balancer).
    """
    for metric_set in sets:
        if not metric_set.values:
            continue
        # Ephemeral: its datapoints are its own, not the module-wide set a ``Metrics`` shares. An empty
        # service, not None: Powertools would fall back to POWERTOOLS_SERVICE_NAME and add the dimension.
        metrics = EphemeralMetrics(namespace=NAMESPACE, service=service if service is not None else "")
        if metric_set.timestamp is not None:
            metrics.set_timestamp(metric_set.timestamp)
        for name, value in metric_set.dimensions:
            metrics.add_dimension(name=name, value=value)
        for point in metric_set.values:
            metrics.add_metric(name=point.name, unit=point.unit, value=point.value)
        metrics.flush_metrics()


class Tally:
    """A count a warm function adds up and publishes at most once per period (time passed in, monotonic)."""

    def __init__(self, metric: str, period_seconds: float = TALLY_PERIOD_SECONDS) -> None:
        self._metric = metric
        self._period = period_seconds
        self._count = 0
        self._since: float | None = None

    def add(self, now: float, count: int = 1) -> Sequence[MetricSet]:
        """Count ``count`` more; the sets to publish when the period since the first uncounted one has passed."""
        if self._since is None:
            self._since = now
        self._count += count
        if now - self._since < self._period:
            return ()
        total, self._count, self._since = self._count, 0, None
        return (MetricSet((Datapoint(self._metric, COUNT, total),)),)
