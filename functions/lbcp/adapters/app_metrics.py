"""The control plane's own metrics, written as EMF log lines through Powertools (names: ``lbcp.models.app_metrics``).

The functions here turn what a run reports (a reconcile tick, a scaler run)
into ``MetricSet``\\ s, one per dimension set; ``publish`` writes each as one
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

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from lbcp.models.app_metrics import (
    DIMENSION_DIRECTION,
    DIMENSION_JOB_KIND,
    DIMENSION_PHASE,
    DIRECTIONS,
    METRIC_JOBS_DONE,
    METRIC_JOBS_FAILED,
    METRIC_LOAD_BALANCERS,
    METRIC_ROLLOUTS_ACTIVE,
    METRIC_SCALER_METRICS_MISSING,
    METRIC_SCALING_DECISIONS,
    METRIC_TICK_ACTED,
    METRIC_TICK_DURATION,
    METRIC_TICK_LOAD_BALANCERS,
    METRIC_TICK_LOCKED,
    NAMESPACE,
    PHASES,
)

if TYPE_CHECKING:
    from lbcp.reconcile.run import TickReport
    from lbcp.scaling.run import RunReport

TALLY_PERIOD_SECONDS: Final = 60.0
COUNT: Final = MetricUnit.Count
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


def publish(sets: Iterable[MetricSet], service: str) -> None:
    """Each set as one EMF line on stdout, with the ``service`` dimension Powertools adds."""
    for metric_set in sets:
        if not metric_set.values:
            continue
        # Ephemeral: its datapoints are its own, not the module-wide set a ``Metrics`` shares.
        metrics = EphemeralMetrics(namespace=NAMESPACE, service=service)
        for name, value in metric_set.dimensions:
            metrics.add_dimension(name=name, value=value)
        for point in metric_set.values:
            metrics.add_metric(name=point.name, unit=point.unit, value=point.value)
        metrics.flush_metrics()


def _by_kind(metric: str, counts: Counter[str]) -> list[MetricSet]:
    return [
        MetricSet((Datapoint(metric, COUNT, count),), ((DIMENSION_JOB_KIND, kind),))
        for kind, count in sorted(counts.items())
        if count
    ]


def tick_metrics(report: TickReport, duration_ms: float, *, full: bool) -> list[MetricSet]:
    """What one reconcile tick publishes; the fleet gauges only when it planned every load balancer.

    Every phase is published on a full tick, zeros included, so that the alarm on
    ``Degraded`` sees a 0 when none is, and graphs stack without gaps.
    """
    sets = [
        MetricSet(
            (
                Datapoint(METRIC_TICK_DURATION, MILLISECONDS, round(duration_ms, 1)),
                Datapoint(METRIC_TICK_LOAD_BALANCERS, COUNT, report.load_balancers),
                Datapoint(METRIC_TICK_ACTED, COUNT, len(report.acted)),
                Datapoint(METRIC_TICK_LOCKED, COUNT, len(report.locked)),
            )
        ),
        *_by_kind(METRIC_JOBS_DONE, report.done_by_kind),
        *_by_kind(METRIC_JOBS_FAILED, report.failed_by_kind),
    ]
    if not full:
        return sets
    statuses = [decided.status for decided in report.plans.values()]
    phases: Counter[str] = Counter(status.phase for status in statuses)
    rollouts = sum(
        1
        for status in statuses
        for rollout in (status.rollout, status.config_rollout)
        if rollout is not None and rollout.active
    )
    sets.append(MetricSet((Datapoint(METRIC_ROLLOUTS_ACTIVE, COUNT, rollouts),)))
    sets += [
        MetricSet((Datapoint(METRIC_LOAD_BALANCERS, COUNT, phases.get(phase, 0)),), ((DIMENSION_PHASE, phase),))
        for phase in PHASES
    ]
    return sets


def scaler_metrics(report: RunReport) -> list[MetricSet]:
    """What one scaler run publishes: decisions by direction and load balancers missing metrics, zeros too."""
    directions = Counter(
        {"scaled-out": "out", "scaled-in": "in"}[outcome.result]
        for outcome in report.outcomes
        if outcome.result in ("scaled-out", "scaled-in") and outcome.written
    )
    return [
        MetricSet((Datapoint(METRIC_SCALER_METRICS_MISSING, COUNT, report.missing_metrics),)),
        *(
            MetricSet(
                (Datapoint(METRIC_SCALING_DECISIONS, COUNT, directions.get(direction, 0)),),
                ((DIMENSION_DIRECTION, direction),),
            )
            for direction in DIRECTIONS
        ),
    ]


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
