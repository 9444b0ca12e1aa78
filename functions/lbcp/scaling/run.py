"""One scaler run (every minute): list, read metrics, decide, write conditionally.

Metrics come from the LBVM records, where heartbeats leave the agents' samples
(``lbcp.adapters.metrics``): one query per load balancer, none for those being
deleted.

For each load balancer not being deleted: evaluate its policy on its metrics,
and write the new desired capacity and the scaler's memory with the
repository's conditional write, with an event when something worth reading
happened (a change, a new reason to hold, a warm floor's expiry). If someone
decided in between (``GenerationMismatch``), decide again once on the record
that won. A failure on one load balancer never stops the others.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from lbcp.adapters.app_metrics import COUNT, Datapoint, MetricSet
from lbcp.adapters.metrics import MetricsBatch, SeriesKey
from lbcp.dal.repository import BeingDeleted, GenerationMismatch, LoadBalancerRepository, NotFound
from lbcp.logic.capacity import effective_desired_capacity
from lbcp.models.app_metrics import (
    DIMENSION_DIRECTION,
    DIRECTIONS,
    METRIC_SCALER_METRICS_MISSING,
    METRIC_SCALING_DECISIONS,
)
from lbcp.models.events import Event, EventType
from lbcp.models.resource import LoadBalancerRecord
from lbcp.scaling.evaluate import decide
from lbcp.scaling.model import Current, Decision, MetricsWindow
from lbcp.scaling.policies import resolve
from lbcp.scaling.readings import read_metrics
from lbcp.scaling.settings import settings_from_spec

LONG_AGO = datetime.min.replace(tzinfo=UTC)
PAGE_SIZE = 100
# Holds that deserve a Warning: the fleet wants to move and cannot.
_WARNING_HOLDS = frozenset({"max", "missing-metrics", "pool-short"})


class MetricsReader(Protocol):
    def read(self, keys: list[SeriesKey], now: datetime) -> MetricsBatch: ...


@dataclass(frozen=True)
class Outcome:
    load_balancer_id: str
    name: str
    result: str  # scaled-out, scaled-in, unchanged, held, skipped-deleting, conflict, failed
    previous: int | None = None
    desired: int | None = None
    reason: str | None = None
    message: str | None = None
    written: bool = False
    # Metrics absent or stale in a subnet where LBVMs serve (it cannot scale in on them).
    missing_metrics: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunReport:
    outcomes: list[Outcome] = field(default_factory=list)
    metric_calls: int = 0  # the reader's calls (DynamoDB queries of LBVM records)
    metric_failures: int = 0  # load balancers whose metrics could not be read (evaluated as missing)

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.result] = counts.get(outcome.result, 0) + 1
        return {
            "loadBalancers": len(self.outcomes),
            "metricsQueries": self.metric_calls,
            "metricsReadFailed": self.metric_failures,
            "results": counts,
            "missingMetrics": self.missing_metrics,
        }

    @property
    def missing_metrics(self) -> int:
        """Load balancers evaluated without all the metrics their serving LBVMs should publish."""
        return sum(1 for outcome in self.outcomes if outcome.missing_metrics)

    def as_dicts(self) -> list[dict[str, Any]]:
        return [asdict(outcome) for outcome in self.outcomes]


def current_of(record: LoadBalancerRecord) -> Current:
    """The record as policies see it: effective desired capacity, memory, Routable LBVMs per subnet."""
    subnets = tuple(record.spec.subnet_ids)
    lbvms = record.status.lbvms
    routable = None
    if lbvms:  # the reconciler has reported the fleet
        routable = {
            subnet: [vm.since or LONG_AGO for vm in lbvms if vm.subnet_id == subnet and vm.state == "Routable"]
            for subnet in subnets
        }
    return Current(
        desired=effective_desired_capacity(record.spec.capacity, record.desired_capacity),
        subnets=subnets,
        state=record.scaling,
        routable=routable,
    )


def missing_metrics(record: LoadBalancerRecord, window: MetricsWindow, now: datetime) -> tuple[str, ...]:
    """The spec's metrics that are absent or stale in a subnet where the load balancer's LBVMs serve."""
    readings = read_metrics(window, current_of(record), settings_from_spec(record.spec), now)
    return tuple(sorted(name for name, reading in readings.items() if reading.missing))


def evaluate_record(record: LoadBalancerRecord, window: MetricsWindow, now: datetime) -> Decision:
    settings = settings_from_spec(record.spec)
    return decide(resolve(record.spec.scaling.policy), window, current_of(record), settings, now)


def event_for(decision: Decision, record: LoadBalancerRecord, now: datetime) -> Event | None:
    if decision.reason == "Unchanged":
        return None
    kind: EventType = "Warning" if decision.reason == "ScalingHeld" and decision.hold in _WARNING_HOLDS else "Normal"
    return Event(
        time=now,
        type=kind,
        reason=decision.reason,
        message=decision.message,
        generation=record.generation,
        actor="scaler",
    )


def series_keys(record: LoadBalancerRecord) -> list[SeriesKey]:
    settings = settings_from_spec(record.spec)
    return [SeriesKey(record.id, s, m.name) for s in record.spec.subnet_ids for m in settings.metrics]


def list_all(repository: LoadBalancerRepository) -> Iterator[LoadBalancerRecord]:
    token: str | None = None
    while True:
        page = repository.list(PAGE_SIZE, token)
        yield from page.items
        token = page.next_token
        if not token:
            return


def run_scaler(repository: LoadBalancerRepository, reader: MetricsReader, now: datetime) -> RunReport:
    outcomes: list[Outcome] = []
    records: list[LoadBalancerRecord] = []
    for record in list_all(repository):
        if record.deletion_requested_at is not None:
            outcomes.append(Outcome(record.id, record.spec.name, "skipped-deleting"))
        else:
            records.append(record)
    batch = reader.read([key for record in records for key in series_keys(record)], now)
    for record in records:
        try:
            outcomes.append(scale_one(repository, record, batch.window_for(record.id), now))
        except Exception as exc:  # one bad load balancer must not stop the fleet's scaling
            outcomes.append(Outcome(record.id, record.spec.name, "failed", message=f"{type(exc).__name__}: {exc}"))
    return RunReport(outcomes, batch.calls, len(batch.failed))


def scale_one(
    repository: LoadBalancerRepository, record: LoadBalancerRecord, window: MetricsWindow, now: datetime
) -> Outcome:
    for _attempt in range(2):
        decision = evaluate_record(record, window, now)
        missing = missing_metrics(record, window, now)
        result = {"out": "scaled-out", "in": "scaled-in"}.get(decision.direction) or (
            "held" if decision.hold else "unchanged"
        )
        if decision.desired == record.desired_capacity and decision.state == record.scaling:
            return Outcome(
                record.id,
                record.spec.name,
                result,
                decision.previous,
                decision.desired,
                decision.reason,
                missing_metrics=missing,
            )
        event = event_for(decision, record, now)
        try:
            repository.set_desired_capacity(record.id, record.scaling_version, decision.desired, decision.state, event)
        except GenerationMismatch as raced:
            # Someone decided since we read (a warm request, an overlapping run): decide again on theirs.
            record = raced.current
            continue
        except (BeingDeleted, NotFound):
            return Outcome(record.id, record.spec.name, "skipped-deleting")
        return Outcome(
            record.id,
            record.spec.name,
            result,
            decision.previous,
            decision.desired,
            decision.reason,
            decision.message,
            written=True,
            missing_metrics=missing,
        )
    return Outcome(record.id, record.spec.name, "conflict", message="the scaling state changed twice during the run")


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
