"""One reconcile tick: observe everything once, plan each load balancer, act only where needed.

Reads are batched across load balancers (one paginated listing each of load
balancers, failure streaks, LBVMs, instances and interfaces, plus the entry's reads; one read
of the public image parameter per architecture that a spec leaving its image
unset uses; the rollout alarms of active rollouts, 100 names a call), so their
number grows with pagination only.

A tick for some load balancers (``only``: a spec change, an instance's state change,
a shard of the work queue) reads only theirs: their records and streaks by key
(BatchGetItem, 100 a call), their LBVMs with one query each (``list_for``) or, for more than a
few, by the key range their ids span (``LbvmRepository.list_all(ids)``), and their
instances and interfaces by their owner tags (``ComputePort.observe(ids)``). Its cost
follows the load balancers asked about, not the fleet: the latency from a spec change
to its first action does not grow with the number of load balancers.

Writes happen only where a plan has jobs
or a changed status: a converged fleet costs no writes at all. Acting takes
the load balancer's lease and re-plans from fresh, consistent reads, so two
overlapping runs (the schedule and a spec change) never act twice.

Each load balancer is planned and acted on in isolation: whatever one of them
raises is recorded as its failure for this tick (``TickReport.failures``) and
the tick goes on with the next, so a poison load balancer stops only itself.
A load balancer whose attempts keep failing is backed off (``backoff.py``):
its failure streak is its own item, listed once per tick with the others,
and a tick leaves it alone until the streak's ``not_before`` unless a trigger
names it as urgent (its spec or one of its instances changed) or its spec has
a new generation. A streak that reaches ``dead_letter_after`` is sent to the
dead-letter queue once; the retries go on at the cap.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lbcp.instance_types import architecture
from lbcp.models.events import Event
from lbcp.models.lbvm import Lbvm
from lbcp.models.resource import LoadBalancerRecord
from lbcp.models.rollout import RolloutRecord
from lbcp.reconcile.backoff import (
    BackoffSettings,
    RetryStreak,
    dead_letter_due,
    dead_lettered,
    describe,
    held_back,
    record_failure,
    worth_telling,
)
from lbcp.reconcile.executor import Executor
from lbcp.reconcile.jobs import RemoveLoadBalancer
from lbcp.reconcile.observed import EntryView, LoadBalancerView, ObservedAlarm
from lbcp.reconcile.plan import PlannerSettings, ReconcilePlan, plan
from lbcp.reconcile.ports import (
    AlarmPort,
    ComputePort,
    DeadLetterPort,
    EntryPort,
    ImagePort,
    LbvmStore,
    LeaseHeld,
    LeasePort,
    LoadBalancerStore,
    RetryStore,
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
    # Load balancers whose plan or act raised in this tick, with what was raised: the others went on.
    failures: dict[str, str] = field(default_factory=dict)
    # Load balancers left alone in this tick: their failure streak's backoff has not passed.
    backed_off: list[str] = field(default_factory=list)
    # The failure streaks as this tick left them (failed load balancers only).
    streaks: dict[str, RetryStreak] = field(default_factory=dict)
    # Load balancers whose streak was sent to the dead-letter queue in this tick.
    dead_lettered: list[str] = field(default_factory=list)
    # The plan each load balancer was decided with: under the lease where it was
    # acted on, otherwise the one from the listing (a no-op, or one left to the lease holder).
    plans: dict[str, ReconcilePlan] = field(default_factory=dict)


# Up to this many load balancers, a tick for some of them reads their LBVMs with one strongly
# consistent query each (``list_for``: one page, a few items); above it, with the key range of the
# keys-only index from the smallest of their ids to the largest, then their records 100 a call
# (``list_all(ids)``). A work-queue shard is a sorted run of ids, so its range holds its own keys and
# few others: about 3 calls for 50 load balancers instead of 50, whatever the fleet's size.
SCOPED_LBVM_QUERIES_MAX = 5


def choose_due(
    records: Sequence[LoadBalancerRecord],
    streaks: Mapping[str, RetryStreak],
    *,
    now: datetime,
    urgent: Collection[str] = (),
) -> tuple[list[LoadBalancerRecord], list[str]]:
    """The load balancers to reconcile now, and the ids of those left alone (backing off, nothing new).

    One rule for the tick and the work queue's dispatcher (``dispatch.py``): a load balancer
    is held back while its failure streak's ``not_before`` has not passed, unless it is
    urgent or its spec has a new generation (``backoff.held_back``).
    """
    due: list[LoadBalancerRecord] = []
    held: list[str] = []
    for record in records:
        if held_back(streaks.get(record.id), generation=record.generation, now=now, urgent=record.id in urgent):
            held.append(record.id)
        else:
            due.append(record)
    return due, held


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
        retries: RetryStore | None = None,
        dead_letters: DeadLetterPort | None = None,
        backoff: BackoffSettings | None = None,
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
        # Without a store there is no backoff: every failing load balancer is retried at every tick.
        self._retries = retries
        self._dead_letters = dead_letters
        self._backoff = backoff or BackoffSettings(base=tick_period, cap=max(tick_period, timedelta(seconds=1000)))

    @property
    def tick_period(self) -> timedelta:
        return self._tick_period

    def now(self) -> datetime:
        return self._clock()

    def list_records(self) -> list[LoadBalancerRecord]:
        """Every load balancer record (the paginated listing a full tick starts from)."""
        return list(self._all_records())

    def owners_of(self, instance_ids: Iterable[str]) -> set[str]:
        """The load balancers these instances belong to (by owner tags): what an EC2 state change concerns."""
        return {owner for instance_id in instance_ids if (owner := self._compute.owner_of(instance_id)) is not None}

    def observe_entries(
        self, records: Sequence[LoadBalancerRecord], *, every: Iterable[str], now: datetime
    ) -> dict[str, EntryView]:
        """The entries of ``records`` from one listing, with this tick's registrations verified: those of
        the rotation over ``every`` load balancer (the dispatcher's one entry read per tick)."""
        verify = verification_batch(every, now, self._verify_budget, self._tick_period)
        return self._entry.observe(records, verify)

    def tick(
        self,
        only: set[str] | None = None,
        urgent: Iterable[str] = (),
        *,
        entries: Mapping[str, EntryView] | None = None,
    ) -> TickReport:
        """Reconcile every load balancer, or those in ``only``.

        ``urgent``: load balancers that something new happened to (their spec, a new desired
        capacity, one of their instances): reconciled now even if their failure streak is backing off.
        ``entries``: their entry views, observed already (a work-queue shard's, by the dispatcher);
        the entries of the others are observed here.
        """
        now = self._clock()
        report = TickReport()
        records = self.list_records() if only is None else self._load_balancers.get_many(only)
        report.load_balancers = len(records)
        if not records:
            return report
        streaks = self.streaks(only)
        due, report.backed_off = choose_due(records, streaks, now=now, urgent=set(urgent))
        if not due:
            return report
        by_lb = self._lbvms_of([record.id for record in due], whole_fleet=only is None)
        # The rotation is over every load balancer, so that one backing off does not shift the others' turns.
        verify = verification_batch((r.id for r in records), now, self._verify_budget, self._tick_period)
        views = observe(
            self._compute,
            self._entry,
            due,
            verify,
            latest_images=self._latest_images(due),
            alarms=self._alarm_states(due),
            whole_fleet=only is None,
            entries=entries,
        )
        for record in due:
            self._reconcile(record, by_lb[record.id], views[record.id], now, report, streak=streaks.get(record.id))
        return report

    def streaks(self, only: Collection[str] | None = None) -> dict[str, RetryStreak]:
        """The failure streaks by load balancer: every one (one listing), or those of ``only`` (by key)."""
        if self._retries is None:
            return {}
        if only is None:
            return {streak.load_balancer_id: streak for streak in self._retries.list_all()}
        return self._retries.get_many(only) if only else {}

    def _lbvms_of(self, ids: list[str], *, whole_fleet: bool) -> dict[str, list[Lbvm]]:
        """The LBVMs of these load balancers: one query each for a few, their key range for more, the
        listing of all in a full tick (``SCOPED_LBVM_QUERIES_MAX``)."""
        by_lb: dict[str, list[Lbvm]] = defaultdict(list)
        if not whole_fleet and len(ids) <= SCOPED_LBVM_QUERIES_MAX:
            for lb_id in ids:
                by_lb[lb_id] = self._lbvms.list_for(lb_id)
            return by_lb
        for lbvm in self._lbvms.list_all(None if whole_fleet else ids):
            by_lb[lbvm.load_balancer_id].append(lbvm)
        return by_lb

    def _reconcile(
        self,
        record: LoadBalancerRecord,
        lbvms: list[Lbvm],
        view: LoadBalancerView,
        now: datetime,
        report: TickReport,
        *,
        streak: RetryStreak | None,
    ) -> None:
        """Plan, act where needed, and extend or end the failure streak by what happened; never raises."""
        error: str | None = None
        try:
            first = plan(record, lbvms, view, now, rng=self._rng, settings=self._planner_settings, retry=streak)
            report.plans[record.id] = first
            if not first.is_noop(record.status):
                with self._leases.held(record.id, now):
                    try:
                        error = self._act(record.id, view, now, report, streak=streak)
                    except Exception as exc:
                        error = self._raised(record.id, exc, report)
                    # Under the lease: a run triggered by this attempt's own status write finds the
                    # streak written, or the lease still held.
                    self._settle(record, streak, error, now, report)
                return
        except LeaseHeld:
            report.locked.append(record.id)  # another run is at it: this tick neither failed nor succeeded for it
            return
        except Exception as exc:
            error = self._raised(record.id, exc, report)
        self._settle(record, streak, error, now, report)

    @staticmethod
    def _raised(load_balancer_id: str, exc: Exception, report: TickReport) -> str:
        # One load balancer's failure is its own: the tick goes on with the others.
        logger.exception("reconcile failed", extra={"lb": load_balancer_id})
        text = report.failures[load_balancer_id] = f"{type(exc).__name__}: {exc}"
        return text

    def _settle(
        self,
        record: LoadBalancerRecord,
        streak: RetryStreak | None,
        error: str | None,
        now: datetime,
        report: TickReport,
    ) -> None:
        """Extend the load balancer's failure streak by this tick's failure, or end it (never raises)."""
        if self._retries is None:
            return
        try:
            self._write_streak(record, streak, error, now, report)
        except Exception:  # the streak is bookkeeping: a lost write only means an earlier retry
            logger.exception("the failure streak could not be written", extra={"lb": record.id})

    def _write_streak(
        self,
        record: LoadBalancerRecord,
        streak: RetryStreak | None,
        error: str | None,
        now: datetime,
        report: TickReport,
    ) -> None:
        assert self._retries is not None
        if error is None:
            if streak is not None:
                self._retries.clear(streak)
            return
        extended = record_failure(
            streak,
            load_balancer_id=record.id,
            generation=record.generation,
            error=error,
            now=now,
            settings=self._backoff,
            rng=self._rng,
        )
        sent = False
        if self._dead_letters is not None and dead_letter_due(extended, self._backoff):
            try:
                self._dead_letters.send(record, extended)
            except Exception:  # not sent: the next failure of this streak sends it again
                logger.exception("the dead letter could not be sent", extra={"lb": record.id})
            else:
                extended, sent = dead_lettered(extended, now), True
        event = None
        if worth_telling(extended) or sent:
            message = describe(extended)
            if sent:
                message += f"; sent to the dead-letter queue after {extended.failures} failures"
            event = Event(
                time=now,
                type="Warning",
                reason="ReconcileDeadLettered" if sent else "ReconcileFailing",
                message=message,
                generation=record.generation,
                actor="reconciler",
            )
        if self._retries.save(streak, extended, event):
            report.streaks[record.id] = extended
            if sent:
                report.dead_lettered.append(record.id)

    def _act(
        self,
        load_balancer_id: str,
        view: LoadBalancerView,
        now: datetime,
        report: TickReport,
        *,
        streak: RetryStreak | None,
    ) -> str | None:
        # Under the lease, decide again from consistent reads: the listing may be stale.
        record = self._load_balancers.get(load_balancer_id)
        if record is None:
            return None
        lbvms = self._lbvms.list_for(load_balancer_id)
        decided = plan(record, lbvms, view, now, rng=self._rng, settings=self._planner_settings, retry=streak)
        report.plans[load_balancer_id] = decided
        if decided.is_noop(record.status):
            return None
        outcome = self._executor.execute(record, lbvms, decided, view.entry)
        report.acted.append(load_balancer_id)
        report.jobs += len(outcome.done)
        report.failed += len(outcome.failed)
        report.done_by_kind.update(type(job).__name__ for job in outcome.done)
        report.failed_by_kind.update(type(job).__name__ for job, _error in outcome.failed)
        failure = None
        if outcome.failed:
            job, text = outcome.failed[0]
            more = f" (and {len(outcome.failed) - 1} more jobs)" if len(outcome.failed) > 1 else ""
            failure = f"{job.failure_reason}: {text}{more}"
        if any(isinstance(job, RemoveLoadBalancer) for job in outcome.done):
            return failure  # the record is gone; its last event says so
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
        return failure

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
