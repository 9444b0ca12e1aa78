"""One checker run: list the cloud, then read the table, compare, remember, store, alert.

The order matters: the cloud first, the table second (``inventory``). The
previous report gives each finding its ``firstSeen`` and its count of
consecutive sightings. A finding seen for the first time on a load balancer
that has a record becomes a Warning event on it, once (not every run).
Then, when the ``lbcp:gc`` policy says auto, the automatic GC acts on the
report (``autogc``; off by default, and never on a dry run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Final, Protocol

from lbcp.consistency.autogc import AutoGc
from lbcp.consistency.check import CheckSettings, check
from lbcp.consistency.findings import ConsistencyReport, FindingKind, carry_forward, counts_of
from lbcp.consistency.inventory import CloudInventory, TableSnapshot
from lbcp.consistency.store import ConsistencyStore
from lbcp.dal.lbvms import LbvmRepository
from lbcp.dal.repository import LoadBalancerRepository
from lbcp.models.events import Event
from lbcp.models.resource import LoadBalancerRecord

logger = logging.getLogger(__name__)

# Events per run at most: a first run on a messy account must not write thousands.
MAX_EVENTS_PER_RUN: Final = 50
ACTOR: Final = "consistency-checker"


class CloudLister(Protocol):
    def list(self, now: datetime) -> CloudInventory: ...


class FindingsMetrics(Protocol):
    def publish(self, counts: dict[FindingKind, int], now: datetime) -> None: ...


class ConsistencyChecker:
    def __init__(
        self,
        *,
        cloud: CloudLister,
        load_balancers: LoadBalancerRepository,
        lbvms: LbvmRepository,
        store: ConsistencyStore,
        metrics: FindingsMetrics | None,
        clock: Callable[[], datetime],
        settings: CheckSettings | None = None,
        gc: AutoGc | None = None,
    ) -> None:
        self._cloud = cloud
        self._load_balancers = load_balancers
        self._lbvms = lbvms
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._settings = settings or CheckSettings()
        self._gc = gc

    def run(self, *, collect: bool = True) -> ConsistencyReport:
        """One run; ``collect``: then let the automatic GC act on the report, if its policy says auto."""
        now = self._clock()
        cloud = self._cloud.list(now)  # first: see the module docstring of ``inventory``
        table = TableSnapshot(tuple(self._all_records()), tuple(self._lbvms.list_all()))
        findings = carry_forward(self._store.last_report(), check(cloud, table, self._settings))
        report = self._store.put_report(
            ConsistencyReport(
                generated_at=now,
                load_balancers=len(table.load_balancers),
                findings=findings,
                counts=counts_of(findings),
                aws_calls=cloud.calls,
            )
        )
        if self._metrics is not None:
            self._metrics.publish(report.counts, now)
        self._write_events(report, {record.id for record in table.load_balancers})
        if collect and self._gc is not None:
            self._gc.run(report)
        return report

    def _write_events(self, report: ConsistencyReport, known: set[str]) -> None:
        new = [f for f in report.findings if f.sightings == 1 and f.load_balancer_id in known]
        for finding in new[:MAX_EVENTS_PER_RUN]:
            assert finding.load_balancer_id is not None
            try:
                self._load_balancers.append_event(
                    finding.load_balancer_id,
                    Event(
                        time=finding.first_seen,
                        type="Warning",
                        reason="ConsistencyFinding",
                        message=f"{finding.kind}: {finding.message}",
                        actor=ACTOR,
                        instance_id=finding.resource_id if finding.resource_type == "instance" else None,
                    ),
                )
            except Exception:  # an event is an alert's courtesy copy: the report and metrics are written
                logger.exception("could not write the event of a finding", extra={"lb": finding.load_balancer_id})

    def _all_records(self) -> list[LoadBalancerRecord]:
        records: list[LoadBalancerRecord] = []
        token: str | None = None
        while True:
            page = self._load_balancers.list(100, token)
            records.extend(page.items)
            token = page.next_token
            if token is None:
                return records
