"""One scaler run (every minute): list, read metrics, decide, write conditionally.

Metrics come from the LBVM records, where heartbeats leave the agents' samples
(``lbcp.adapters.metrics``): one query per load balancer, none for those being
deleted.

For each load balancer not being deleted: evaluate its policy on its metrics
and its scaling state, which is the record's (last scale times, hold, warm
floor) joined with the policies' per-period memory, stored apart
(``lbcp.dal.scaler_memory``) and read for all load balancers at once
(BatchGetItem, 100 a call). Then write only what changed, each conditionally:
the memory item (nearly every run: about one write unit) and the record when
the decision changed it (desired capacity, state), with an event when
something worth reading happened (a change, a new reason to hold, a warm
floor's expiry). At steady state a run writes the memory item and nothing
else. If someone wrote in between (another run's memory: ``MemoryConflict``;
a decision on the record: ``GenerationMismatch``), decide again on what won.
A failure on one load balancer never stops the others.
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
from lbcp.dal.scaler_memory import MemoryConflict, StoredMemory
from lbcp.logic.capacity import effective_desired_capacity
from lbcp.models.app_metrics import (
    DIMENSION_DIRECTION,
    DIRECTIONS,
    METRIC_SCALER_METRICS_MISSING,
    METRIC_SCALING_DECISIONS,
)
from lbcp.models.events import Event, EventType
from lbcp.models.resource import LoadBalancerRecord
from lbcp.models.scaling import ScalerMemory, join_state, split_state
from lbcp.scaling.evaluate import decide
from lbcp.scaling.model import Current, Decision, MetricsWindow
from lbcp.scaling.policies import resolve
from lbcp.scaling.readings import read_metrics
from lbcp.scaling.settings import settings_from_spec

LONG_AGO = datetime.min.replace(tzinfo=UTC)
PAGE_SIZE = 100
# Attempts per load balancer: a concurrent run's memory write, then a decision on the record, can each be lost once.
_ATTEMPTS = 3
_NO_MEMORY = ScalerMemory()
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
    memory_calls: int = 0  # BatchGetItem calls that read the scaler's memory items

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
    """The record as policies see it: effective desired capacity, memory, Routable LBVMs per subnet.

    ``record.scaling`` must be the joined state (``join_state``) where the policy's memory matters.
    """
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
    memories: dict[str, StoredMemory] | None
    try:
        memories, memory_calls = repository.get_scaler_memories([record.id for record in records])
    except Exception:  # each load balancer reads its own below (and fails alone if that fails too)
        memories, memory_calls = None, 0
    for record in records:
        try:
            stored = memories.get(record.id) if memories is not None else repository.get_scaler_memory(record.id)
            outcomes.append(scale_one(repository, record, stored, batch.window_for(record.id), now))
        except Exception as exc:  # one bad load balancer must not stop the fleet's scaling
            outcomes.append(Outcome(record.id, record.spec.name, "failed", message=f"{type(exc).__name__}: {exc}"))
    return RunReport(outcomes, batch.calls, len(batch.failed), memory_calls)


def scale_one(
    repository: LoadBalancerRepository,
    record: LoadBalancerRecord,
    stored: StoredMemory | None,
    window: MetricsWindow,
    now: datetime,
) -> Outcome:
    """Decide for one load balancer and write what changed: its memory item first, then its record.

    ``stored`` is its memory item as read (None: none yet, for a new load
    balancer or a record written before the memory had an item of its own,
    whose state still carries it: this write moves it). The decision is made
    on ``base``, the memory as read; after a lost record write it is made
    again on the same memory, so that the period is not remembered twice.
    """
    base = stored.memory if stored is not None else None
    held = base if base is not None else _NO_MEMORY  # what the table holds
    version = stored.version if stored is not None else 0
    memory_written = False
    for _attempt in range(_ATTEMPTS):
        joined = record.model_copy(update={"scaling": join_state(record.scaling, base)})
        decision = evaluate_record(joined, window, now)
        missing = missing_metrics(record, window, now)
        result = {"out": "scaled-out", "in": "scaled-in"}.get(decision.direction) or (
            "held" if decision.hold else "unchanged"
        )
        state, memory = split_state(decision.state)
        if memory != held:
            try:
                repository.put_scaler_memory(record.id, memory, version, now)
            except MemoryConflict:
                # Another run wrote it since we read (or our read was older than the last write): decide again on
                # its memory and on the record as it is now (that run may have decided on it too).
                fresh = repository.get(record.id)
                if fresh is None or fresh.deletion_requested_at is not None:
                    return Outcome(record.id, record.spec.name, "skipped-deleting")
                record = fresh
                current = repository.get_scaler_memory(record.id)
                base = current.memory if current is not None else None
                held = base if base is not None else _NO_MEMORY
                version = current.version if current is not None else 0
                continue
            held, version, memory_written = memory, version + 1, True
        if decision.desired == record.desired_capacity and state == record.scaling:
            return Outcome(
                record.id,
                record.spec.name,
                result,
                decision.previous,
                decision.desired,
                decision.reason,
                written=memory_written,
                missing_metrics=missing,
            )
        event = event_for(decision, record, now)
        try:
            repository.set_desired_capacity(record.id, record.scaling_version, decision.desired, state, event)
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
    return Outcome(record.id, record.spec.name, "conflict", message="the scaling state kept changing during the run")


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
