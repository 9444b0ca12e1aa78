"""The automatic GC's edge: read the live quarantine tags, ``decide`` (pure), act through the sweeper, remember.

Every action goes through the ``Sweeper``, which re-reads the live resource
and its owner records just before it (owner tags, nothing claims it) and
audits the outcome; each is also an event on the load balancer the owner tag
names. What was quarantined is remembered in one item (``ConsistencyStore``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Final

from lbcp.consistency.findings import ConsistencyReport
from lbcp.consistency.gc_policy import QUARANTINE_TAG, GcAction, GcDecision, GcPolicy, Quarantined, decide
from lbcp.consistency.store import ConsistencyStore
from lbcp.consistency.sweep import Sweeper
from lbcp.dal.repository import LoadBalancerRepository
from lbcp.models.events import Event, EventReason
from lbcp.models.times import utc_iso

logger = logging.getLogger(__name__)

ACTOR: Final = "automatic-gc"


class AutoGc:
    def __init__(
        self,
        *,
        policy: GcPolicy,
        sweeper: Sweeper,
        store: ConsistencyStore,
        load_balancers: LoadBalancerRepository,
        clock: Callable[[], datetime],
    ) -> None:
        self._policy = policy
        self._sweeper = sweeper
        self._store = store
        self._load_balancers = load_balancers
        self._clock = clock

    def run(self, report: ConsistencyReport) -> GcDecision:
        now = self._clock()
        if not self._policy.auto or not self._policy.open_at(now):
            return GcDecision()  # no AWS call at all outside the windows
        remembered = {q.key: q for q in self._store.quarantined()}
        live = [self._live(q) for q in remembered.values()]
        decision = decide(report.findings, live, self._policy, now)
        for adopted in decision.adopt:
            # Before the actions: an adopted resource already due is deleted (re-checked) in this run.
            remembered[adopted.key] = adopted
            self._event(
                GcAction(
                    verb="quarantine",
                    resource_type=adopted.resource_type,
                    resource_id=adopted.resource_id,
                    load_balancer_id=adopted.load_balancer_id,
                    reason="adopted",
                ),
                "OrphanQuarantined",
                f"found carrying {QUARANTINE_TAG}={utc_iso(adopted.quarantined_at)} with no quarantine on "
                "record (a run that tagged it failed before saving, or a person tagged it): its quarantine "
                "counts from that time",
            )
        for action in decision.release:
            self._sweeper.release(action.resource_type, action.resource_id, actor=ACTOR, reason=action.reason)
            remembered.pop((action.resource_type, action.resource_id), None)
            self._event(action, "OrphanReleased", f"released from quarantine: {action.reason}")
        for action in decision.delete:
            result = self._sweeper.sweep(action.resource_type, action.resource_id, actor=ACTOR, quarantined=True)
            if result.outcome != "refused":  # deleted, or gone: nothing left to remember
                remembered.pop((action.resource_type, action.resource_id), None)
            if result.outcome == "deleted":
                self._event(action, "OrphanSwept", f"deleted after its quarantine: {action.reason}")
        for action in decision.quarantine:
            outcome = self._sweeper.quarantine(
                action.resource_type, action.resource_id, actor=ACTOR, reason=action.reason
            )
            if outcome.action == "quarantined":
                remembered[(action.resource_type, action.resource_id)] = Quarantined(
                    resource_type=action.resource_type,
                    resource_id=action.resource_id,
                    load_balancer_id=outcome.load_balancer_id or action.load_balancer_id,
                    quarantined_at=now,
                )
                self._event(action, "OrphanQuarantined", f"quarantined: {action.reason}")
        for key in decision.forget:
            remembered.pop(key, None)
        if decision.actions or decision.forget or decision.adopt:
            self._store.put_quarantined(list(remembered.values()))
        return decision

    def _live(self, quarantined: Quarantined) -> Quarantined:
        exists, tag = self._sweeper.quarantine_tag(quarantined.resource_type, quarantined.resource_id)
        return quarantined.model_copy(update={"exists": exists, "tag": tag})

    def _event(self, action: GcAction, reason: EventReason, message: str) -> None:
        if action.load_balancer_id is None:
            return
        try:
            self._load_balancers.append_event(
                action.load_balancer_id,
                Event(
                    time=self._clock(),
                    type="Normal",
                    reason=reason,
                    message=f"{action.resource_type} {action.resource_id} {message}",
                    actor=ACTOR,
                    instance_id=action.resource_id if action.resource_type == "instance" else None,
                ),
            )
        except Exception:  # the audit log has the action; the event is a courtesy copy
            logger.exception("could not write the event of a GC action", extra={"lb": action.load_balancer_id})
