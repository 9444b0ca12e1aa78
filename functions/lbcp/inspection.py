"""The API's read-only use cases that explain: one LBVM's detail and history, and what the reconciler would do now.

Nothing here writes: these answer "why" from the records (and, for the plan,
a fresh observation of the account), so that an operator can ask as often as
they like.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from datetime import datetime

from lbcp.dal.lbvms import LbvmRepository
from lbcp.dal.repository import LoadBalancerRepository
from lbcp.dal.retries import RetryRepository
from lbcp.models.inspection import LbvmDetail, PlanView
from lbcp.models.lbvm import LBVM_ID_PATTERN
from lbcp.models.resource import LoadBalancerRecord
from lbcp.reconcile.plan import PlannerSettings, plan
from lbcp.reconcile.ports import ComputePort, EntryPort
from lbcp.reconcile.preview import plan_view
from lbcp.reconcile.snapshot import observe
from lbcp.service import LoadBalancerService

# An LBVM's history is its load balancer's events that name it; at most this many are listed.
LBVM_EVENT_LIMIT = 100


class LbvmNotFound(Exception):
    def __init__(self, load_balancer_id: str, lbvm_id: str) -> None:
        super().__init__(f"load balancer {load_balancer_id} has no LBVM {lbvm_id[:40]!r}")
        self.load_balancer_id = load_balancer_id
        self.lbvm_id = lbvm_id


class Inspection:
    def __init__(
        self,
        *,
        service: LoadBalancerService,
        load_balancers: LoadBalancerRepository,
        lbvms: LbvmRepository,
        clock: Callable[[], datetime],
        observers: Callable[[], tuple[ComputePort, EntryPort]],
        planner_settings: PlannerSettings | None = None,
        retries: RetryRepository | None = None,
    ) -> None:
        self._service = service
        self._load_balancers = load_balancers
        self._lbvms = lbvms
        self._clock = clock
        # The EC2, ELB and Route53 clients are built on the first plan, not on every cold start.
        self._observers = observers
        self._planner_settings = planner_settings or PlannerSettings()
        # The failure streak, so a preview of a load balancer Failed by its streak says Failed too.
        self._retries = retries

    def lbvm(self, ref: str, lbvm_id: str) -> LbvmDetail:
        """One LBVM's record and events (terminated ones too, until their records go with the load balancer)."""
        record = self._service.resolve(ref)
        lbvm = self._lbvms.get(record.id, lbvm_id) if re.fullmatch(LBVM_ID_PATTERN, lbvm_id) else None
        if lbvm is None:
            raise LbvmNotFound(record.id, lbvm_id)
        # Events name the LBVM (lbvmId, or its id in the message of older ones); an orphan
        # instance's events name only the instance.
        needles = [lbvm.lbvm_id] + ([lbvm.instance_id] if lbvm.instance_id else [])
        events, truncated = self._load_balancers.events_mentioning(record.id, needles, LBVM_EVENT_LIMIT)
        return LbvmDetail.of(lbvm, events, truncated)

    def heartbeats(self, record: LoadBalancerRecord) -> dict[str, datetime]:
        """When each LBVM's last heartbeat was stored: what the status shows but does not store."""
        return {
            lbvm.lbvm_id: lbvm.last_heartbeat_at
            for lbvm in self._lbvms.list_for(record.id)
            if lbvm.last_heartbeat_at is not None
        }

    def plan(self, ref: str) -> PlanView:
        """What the reconciler would do now: its planner on a fresh observation (registrations read), acting on nothing.

        The reconciler decides again under its lease, from its own reads, so this is a
        preview: the world or the records may change before its next tick. A scale-in
        victim is drawn at random (a fresh draw here); the job lists what it is drawn from.
        """
        record = self._service.resolve(ref)
        lbvms = self._lbvms.list_for(record.id)
        compute, entry = self._observers()
        view = observe(compute, entry, [record], {record.id})[record.id]
        now = self._clock()
        streak = self._retries.get(record.id) if self._retries is not None else None
        decided = plan(record, lbvms, view, now, rng=random.Random(), settings=self._planner_settings, retry=streak)
        return plan_view(record, lbvms, view, decided, now)
