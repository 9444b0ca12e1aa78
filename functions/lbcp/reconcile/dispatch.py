"""The scheduled tick as a dispatcher: the due load balancers, in shards, onto a FIFO work queue.

One reconciler invocation planning every load balancer within its timeout
stops scaling at some fleet size. With a work queue configured
(``LBCP_RECONCILE_WORK_QUEUE_URL``) the minute's schedule only chooses: it lists
the records and the failure streaks (two paginated listings, as a full tick
does), keeps the due ones by the tick's own rule (``run.choose_due``: a load
balancer backing off is not sent), groups them into shards of at most
``shard_size`` (sorted ids, so a shard holds the same load balancers from minute
to minute while the fleet stays the same) and sends one message per shard,
ten a call. Workers (``handlers/reconcile_worker.py``) reconcile one shard
each with ``tick(only=shard)``, whose reads follow the shard, not the fleet.

The entry is observed here, once a tick, and each shard's views travel in its
message (``entries``). Entry resources can only be listed account-wide (NLBs,
target groups, the zone's records: pages that grow with the fleet), so shards
listing them each would cost the listing times the number of shards, about
110 calls per shard at 10,000 load balancers, and Route 53 allows 5 requests a
second per account. One listing here keeps a tick's entry reads to pagination,
and the registrations verified (``Reconciler.verify_budget``) to a budget per
tick, not per shard. A worker that takes a message more than a tick after its
minute (a backlog, a retry) observes the entry itself (``shipped_entries``):
views that old are not acted on.

Deduplication, per message and per load balancer:

- ``MessageDeduplicationId`` is the tick's slot (its minute) and the shard's
  index. A dispatcher run twice in one minute (EventBridge delivers at least
  once) sends the same ids again, and SQS drops them (its window is 5 minutes;
  the next minute's ids differ). So a load balancer is sent in exactly one shard
  per minute; only if the due set grew between the two runs can an extra last
  shard repeat a few of them.
- ``MessageGroupId`` is the shard's index: SQS hands out one message of a group
  at a time, so a shard whose worker is slow is not taken up by a second worker
  while the first still runs; its next minute waits behind it. The price: a
  shard whose tick raises as a whole (its reads throttled, the worker timed out)
  holds its group until it succeeds or is dead-lettered (3 receives, each after
  the 6-minute visibility timeout), and its load balancers wait for the schedule
  that long (their spec changes and instance events still reconcile them inline).
  One failing load balancer does not do this: its failure stays inside the tick.
- What the queue cannot see, the lease covers: a stream or EC2 run for one of
  the shard's load balancers at the same moment (``Reconciler._reconcile`` takes the
  per-load-balancer lease before it acts), or a load balancer that moved to a
  neighbouring shard when the fleet grew.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from lbcp.models.status import LoadBalancerStatus
from lbcp.reconcile.observed import EntryView
from lbcp.reconcile.run import Reconciler, choose_due
from lbcp.settings import DEFAULT_RECONCILE_SHARD_SIZE

logger = logging.getLogger(__name__)

DEFAULT_SHARD_SIZE = DEFAULT_RECONCILE_SHARD_SIZE
# SendMessageBatch takes at most 10 entries.
SEND_BATCH = 10
# A message's body stays under SQS's 256 KiB, and so does a batch of them with their ten entries' overhead:
# with its entry views, a shard of 50 is about 10 KB.
MAX_BODY_BYTES = 24 * 1024
REASON_SCHEDULE = "schedule"


@dataclass(frozen=True)
class Shard:
    index: int
    load_balancer_ids: tuple[str, ...]


@dataclass(frozen=True)
class WorkMessage:
    """One SendMessageBatch entry: a shard of one tick."""

    entry_id: str
    body: str
    group_id: str
    deduplication_id: str

    def entry(self) -> dict[str, str]:
        return {
            "Id": self.entry_id,
            "MessageBody": self.body,
            "MessageGroupId": self.group_id,
            "MessageDeduplicationId": self.deduplication_id,
        }


class WorkQueuePort(Protocol):
    def send(self, messages: Sequence[WorkMessage]) -> list[str]:
        """Send the messages (10 a call); returns the entry ids that were not accepted."""
        ...


class DispatchFailed(Exception):
    """Some shards were not sent: the invocation fails, and a retry sends only those (the others are dropped)."""


@dataclass
class DispatchReport:
    load_balancers: int = 0
    due: int = 0
    backed_off: list[str] = field(default_factory=list)
    shards: int = 0
    calls: int = 0  # SendMessageBatch calls
    # The stored status of every load balancer listed: the fleet's gauges (``tick_metrics.fleet_metrics``).
    statuses: list[LoadBalancerStatus] = field(default_factory=list)


def shards(load_balancer_ids: Iterable[str], size: int) -> list[Shard]:
    """The ids, sorted, in consecutive shards of at most ``size``."""
    if size < 1:
        raise ValueError(f"a shard holds at least one load balancer, not {size}")
    ordered = sorted(set(load_balancer_ids))
    return [
        Shard(index, tuple(ordered[start : start + size])) for index, start in enumerate(range(0, len(ordered), size))
    ]


def tick_slot(now: datetime, period: timedelta) -> datetime:
    """The start of the tick period ``now`` falls in (the minute, deployed): what deduplicates a tick's messages."""
    seconds = period.total_seconds()
    return datetime.fromtimestamp(now.timestamp() // seconds * seconds, tz=UTC)


def entry_to_json(view: EntryView) -> dict[str, Any]:
    """An entry view as a work message carries it (absent fields: their defaults)."""
    document: dict[str, Any] = {"ready": view.ready}
    if view.dns_name is not None:
        document["dnsName"] = view.dns_name
    if view.security_group_id is not None:
        document["securityGroupId"] = view.security_group_id
    if view.registered_instance_ids is not None:
        document["registered"] = sorted(view.registered_instance_ids)
    if view.dns_record_ips is not None:
        document["dnsRecordIps"] = dict(sorted(view.dns_record_ips.items()))
    if view.resources_left:
        document["resourcesLeft"] = view.resources_left
    if view.drift:
        document["drift"] = list(view.drift)
    return document


def entry_from_json(document: Mapping[str, Any]) -> EntryView:
    registered = document.get("registered")
    ips = document.get("dnsRecordIps")
    return EntryView(
        ready=bool(document["ready"]),
        dns_name=document.get("dnsName"),
        security_group_id=document.get("securityGroupId"),
        registered_instance_ids=None if registered is None else frozenset(str(i) for i in registered),
        dns_record_ips=None if ips is None else {str(k): str(v) for k, v in ips.items()},
        resources_left=int(document.get("resourcesLeft", 0)),
        drift=tuple(str(d) for d in document.get("drift", ())),
    )


def work_messages(
    shard_list: Sequence[Shard], slot: datetime, entries: Mapping[str, EntryView] | None = None
) -> list[WorkMessage]:
    """One message per shard; with ``entries``, each carries its load balancers' entry views (unless
    that would pass ``MAX_BODY_BYTES``: its worker then observes them itself)."""
    minute = slot.strftime("%Y-%m-%dT%H:%M:%SZ")
    stamp = slot.strftime("%Y%m%dT%H%M%S")
    messages: list[WorkMessage] = []
    for shard in shard_list:
        document: dict[str, Any] = {
            "loadBalancerIds": list(shard.load_balancer_ids),
            "reason": REASON_SCHEDULE,
            "minute": minute,
        }
        body = json.dumps(document, separators=(",", ":"))
        if entries is not None:
            document["entries"] = {i: entry_to_json(entries[i]) for i in shard.load_balancer_ids if i in entries}
            with_entries = json.dumps(document, separators=(",", ":"))
            if len(with_entries.encode()) <= MAX_BODY_BYTES:
                body = with_entries
            else:
                logger.warning("a shard's entry views are too large to send", extra={"shard": shard.index})
        messages.append(
            WorkMessage(
                entry_id=f"shard-{shard.index}",
                body=body,
                group_id=f"shard-{shard.index:05d}",
                deduplication_id=f"{stamp}-shard-{shard.index:05d}",
            )
        )
    return messages


def shipped_entries(body: str, *, now: datetime, period: timedelta) -> dict[str, EntryView] | None:
    """The entry views a work message carries, if they are fresh enough to act on: observed in the
    message's minute, taken before the end of the next. None: the worker observes the entry itself."""
    try:
        document = json.loads(body)
        minute = datetime.strptime(document["minute"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        entries = document["entries"]
        if now >= minute + 2 * period:
            return None
        return {str(lb_id): entry_from_json(view) for lb_id, view in entries.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # a message without views (too large, or an older dispatcher's), or views unreadable


def parse_work(body: str) -> set[str]:
    """The load balancer ids of a work message; ValueError for one this dispatcher did not write."""
    try:
        document = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg}") from None
    ids = document.get("loadBalancerIds") if isinstance(document, dict) else None
    if not isinstance(ids, list) or not all(isinstance(lb_id, str) and lb_id for lb_id in ids):
        raise ValueError("loadBalancerIds must be a list of load balancer ids")
    return set(ids)


class SqsWorkQueue:
    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._url = queue_url
        self.calls = 0

    def send(self, messages: Sequence[WorkMessage]) -> list[str]:
        failed: list[str] = []
        for start in range(0, len(messages), SEND_BATCH):
            batch = messages[start : start + SEND_BATCH]
            self.calls += 1
            response = self._sqs.send_message_batch(QueueUrl=self._url, Entries=[m.entry() for m in batch])
            for failure in response.get("Failed", []):
                logger.error("a shard was not sent", extra={"entry": failure.get("Id"), "code": failure.get("Code")})
                failed.append(str(failure.get("Id")))
        return failed


def dispatch(reconciler: Reconciler, queue: WorkQueuePort, *, shard_size: int = DEFAULT_SHARD_SIZE) -> DispatchReport:
    """Send this tick's due load balancers to the work queue, one message per shard.

    Raises ``DispatchFailed`` if some shards were not accepted (after sending the rest): the
    invocation fails, and a retry in the same minute sends only what is missing.
    """
    now = reconciler.now()
    records = reconciler.list_records()
    report = DispatchReport(load_balancers=len(records), statuses=[record.status for record in records])
    due, report.backed_off = choose_due(records, reconciler.streaks(), now=now)
    report.due = len(due)
    shard_list = shards((record.id for record in due), shard_size)
    report.shards = len(shard_list)
    entries: dict[str, EntryView] | None = None
    try:
        entries = reconciler.observe_entries(due, every=[record.id for record in records], now=now) if due else {}
    except Exception:  # the shards still go, without views: each worker observes its own entries
        logger.exception("the entries could not be observed: shards are sent without their views")
    messages = work_messages(shard_list, tick_slot(now, reconciler.tick_period), entries)
    report.calls = -(-len(messages) // SEND_BATCH)
    failed = queue.send(messages) if messages else []
    if failed:
        raise DispatchFailed(f"{len(failed)} of {len(messages)} shards were not sent: {', '.join(failed)}")
    return report
