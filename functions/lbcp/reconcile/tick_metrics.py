"""What one reconcile tick publishes as the control plane's own metrics (``lbcp.adapters.app_metrics``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from lbcp.adapters.app_metrics import COUNT, MILLISECONDS, Datapoint, MetricSet
from lbcp.models.app_metrics import (
    DIMENSION_JOB_KIND,
    DIMENSION_PHASE,
    METRIC_JOBS_DONE,
    METRIC_JOBS_FAILED,
    METRIC_LOAD_BALANCERS,
    METRIC_ROLLOUTS_ACTIVE,
    METRIC_TICK_ACTED,
    METRIC_TICK_DURATION,
    METRIC_TICK_LOAD_BALANCERS,
    METRIC_TICK_LOCKED,
    PHASES,
)
from lbcp.models.status import LoadBalancerStatus
from lbcp.reconcile.run import TickReport


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
    return sets + fleet_metrics([decided.status for decided in report.plans.values()])


def fleet_metrics(statuses: Sequence[LoadBalancerStatus]) -> list[MetricSet]:
    """The fleet's gauges: load balancers by phase (every phase, zeros included) and active rollouts.

    From a full tick's plans, or, when the schedule dispatches to the work queue, from the
    statuses the dispatcher listed (what the workers last wrote: at most a tick old).
    """
    phases: Counter[str] = Counter(status.phase for status in statuses)
    rollouts = sum(
        1
        for status in statuses
        for rollout in (status.rollout, status.config_rollout)
        if rollout is not None and rollout.active
    )
    sets = [MetricSet((Datapoint(METRIC_ROLLOUTS_ACTIVE, COUNT, rollouts),))]
    sets += [
        MetricSet((Datapoint(METRIC_LOAD_BALANCERS, COUNT, phases.get(phase, 0)),), ((DIMENSION_PHASE, phase),))
        for phase in PHASES
    ]
    return sets
