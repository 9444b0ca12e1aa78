"""One reconcile tick: observe everything once, plan each load balancer, act only where needed.

Reads are batched across load balancers (one paginated listing each of load
balancers, LBVMs, instances and interfaces, plus the entry's reads; one read
of the public image parameter per architecture that a spec leaving its image
unset uses; the rollout alarms of active rollouts, 100 names a call), so their
number grows with pagination only. Writes happen only where a plan has jobs
or a changed status: a converged fleet costs no writes at all. Acting takes
the load balancer's lease and re-plans from fresh, consistent reads, so two
overlapping runs (the schedule and a spec change) never act twice.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lbcp.instance_types import architecture
from lbcp.models.events import Event
from lbcp.models.lbvm import Lbvm
from lbcp.models.resource import LoadBalancerRecord
from lbcp.models.rollout import RolloutRecord
from lbcp.reconcile.executor import Executor
from lbcp.reconcile.jobs import RemoveLoadBalancer
from lbcp.reconcile.observed import LoadBalancerView, ObservedAlarm
from lbcp.reconcile.plan import PlannerSettings, ReconcilePlan, plan
from lbcp.reconcile.ports import (
    AlarmPort,
    ComputePort,
    EntryPort,
    ImagePort,
    LbvmStore,
    LeaseHeld,
    LeasePort,
    LoadBalancerStore,
)
from lbcp.reconcile.snapshot import gated, observe

logger = logging.getLogger(__name__)


@dataclass
class TickReport:
    load_balancers: int = 0
    acted: list[str] = field(default_factory=list)
    locked: list[str] = field(default_factory=list)
    jobs: int = 0
    failed: int = 0
    # The same jobs by kind (the job's class name), for the tick's metrics.
    done_by_kind: Counter[str] = field(default_factory=Counter)
    failed_by_kind: Counter[str] = field(default_factory=Counter)
    # The plan each load balancer was decided with: under the lease where it was
    # acted on, otherwise the one from the listing (a no-op, or one left to the lease holder).
    plans: dict[str, ReconcilePlan] = field(default_factory=dict)


def verification_batch(ids: Iterable[str], now: datetime, budget: int, period: timedelta) -> set[str]:
    """The load balancers whose registrations are verified this tick.

    Verifying registrations costs one read per load balancer, so at most
    ``budget`` are verified per tick, in rotation: every load balancer is
    verified at least once every ceil(n / budget) periods.
    """
    ordered = sorted(ids)
    if len(ordered) <= budget:
        return set(ordered)
    slots = math.ceil(len(ordered) / budget)
    slot = int(now.timestamp() // period.total_seconds()) % slots
    return set(ordered[slot * budget : (slot + 1) * budget])


class Reconciler:
    def __init__(
        self,
        *,
        load_balancers: LoadBalancerStore,
        lbvms: LbvmStore,
        compute: ComputePort,
        entry: EntryPort,
        executor: Executor,
        leases: LeasePort,
        clock: Callable[[], datetime],
        rng: random.Random | None = None,
        planner_settings: PlannerSettings | None = None,
        verify_budget: int = 10,
        tick_period: timedelta = timedelta(minutes=1),
        images: ImagePort | None = None,
        alarms: AlarmPort | None = None,
    ) -> None:
        self._load_balancers = load_balancers
        self._lbvms = lbvms
        self._compute = compute
        self._entry = entry
        self._executor = executor
        self._leases = leases
        self._clock = clock
        self._rng = rng or random.Random()
        self._planner_settings = planner_settings or PlannerSettings()
        self._verify_budget = verify_budget
        self._tick_period = tick_period
        self._images = images
        self._alarms = alarms

    def owners_of(self, instance_ids: Iterable[str]) -> set[str]:
        """The load balancers these instances belong to (by owner tags): what an EC2 state change concerns."""
        return {owner for instance_id in instance_ids if (owner := self._compute.owner_of(instance_id)) is not None}

    def tick(self, only: set[str] | None = None) -> TickReport:
        now = self._clock()
        report = TickReport()
        records = [r for r in self._all_records() if only is None or r.id in only]
        report.load_balancers = len(records)
        if not records:
            return report
        by_lb: dict[str, list[Lbvm]] = defaultdict(list)
        for lbvm in self._lbvms.list_all():
            by_lb[lbvm.load_balancer_id].append(lbvm)
        verify = verification_batch((r.id for r in records), now, self._verify_budget, self._tick_period)
        views = observe(
            self._compute,
            self._entry,
            records,
            verify,
            latest_images=self._latest_images(records),
            alarms=self._alarm_states(records),
        )
        for record in records:
            view = views[record.id]
            first = plan(record, by_lb[record.id], view, now, rng=self._rng, settings=self._planner_settings)
            report.plans[record.id] = first
            if first.is_noop(record.status):
                continue
            try:
                with self._leases.held(record.id, now):
                    self._act(record.id, view, now, report)
            except LeaseHeld:
                report.locked.append(record.id)
        return report

    def _act(self, load_balancer_id: str, view: LoadBalancerView, now: datetime, report: TickReport) -> None:
        # Under the lease, decide again from consistent reads: the listing may be stale.
        record = self._load_balancers.get(load_balancer_id)
        if record is None:
            return
        lbvms = self._lbvms.list_for(load_balancer_id)
        decided = plan(record, lbvms, view, now, rng=self._rng, settings=self._planner_settings)
        report.plans[load_balancer_id] = decided
        if decided.is_noop(record.status):
            return
        outcome = self._executor.execute(record, lbvms, decided, view.entry)
        report.acted.append(load_balancer_id)
        report.jobs += len(outcome.done)
        report.failed += len(outcome.failed)
        report.done_by_kind.update(type(job).__name__ for job in outcome.done)
        report.failed_by_kind.update(type(job).__name__ for job, _error in outcome.failed)
        if any(isinstance(job, RemoveLoadBalancer) for job in outcome.done):
            return  # the record is gone; its last event says so
        notes = [
            Event(
                time=now,
                type=note.type,
                reason=note.reason,
                message=note.message,
                generation=record.generation,
                actor="reconciler",
            )
            for note in decided.notes
        ]
        rollouts: list[RolloutRecord] = list(decided.ended_rollouts)
        if decided.status.rollout is not None and decided.status.rollout != record.status.rollout:
            rollouts.append(decided.status.rollout)
        if decided.status.config_rollout is not None and decided.status.config_rollout != record.status.config_rollout:
            rollouts.append(decided.status.config_rollout)
        if decided.status != record.status or outcome.events or notes:
            # The rollout's own events first: they say why the jobs below were chosen.
            self._load_balancers.write_status(load_balancer_id, decided.status, notes + outcome.events, rollouts)
        logger.info(
            "reconciled",
            extra={"lb": load_balancer_id, "jobs": len(outcome.done), "failed": len(outcome.failed)},
        )

    def _latest_images(self, records: list[LoadBalancerRecord]) -> dict[str, str]:
        """The public image parameter, by architecture, for the specs that leave their image unset."""
        if self._images is None:
            return {}
        self._images.new_tick()  # launches in this tick reuse these readings
        wanted = {
            architecture(record.spec.instance.type)
            for record in records
            if record.spec.instance.image_id is None and record.deletion_requested_at is None
        }
        found: dict[str, str] = {}
        for arch in sorted(wanted):
            try:
                found[arch] = self._images.latest(arch)
            except Exception:  # drift waits for the next tick; a launch that needs it fails and is retried
                logger.exception("the latest Amazon Linux 2023 image could not be read", extra={"arch": arch})
        return found

    def _alarm_states(self, records: list[LoadBalancerRecord]) -> dict[str, ObservedAlarm] | None:
        """The rollout alarms of load balancers whose rollout is active; None when they could not be read."""
        names = {name for record in records if gated(record) for name in record.spec.rollout.alarm_names}
        if not names or self._alarms is None:
            return {}
        try:
            return self._alarms.read(names)
        except Exception:  # not judged this tick (the rollout goes on); the next tick reads them again
            logger.exception("rollout alarms could not be read", extra={"alarms": len(names)})
            return None

    def _all_records(self) -> Iterator[LoadBalancerRecord]:
        token: str | None = None
        while True:
            page = self._load_balancers.list(100, token)
            yield from page.items
            token = page.next_token
            if token is None:
                return
