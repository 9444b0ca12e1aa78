"""The scheduled tick as a dispatcher and the workers that reconcile its shards (moto SQS FIFO, in-process).

The real reconciler, dispatcher, worker handler (``handlers.reconcile_worker.process``)
and the local runtime's event-source stand-in (``lbcp_local.work_queue.pump``),
against emulated AWS; load balancers in steady state with their first status to
write (``test_reconciler_backoff.steady_load_balancer``).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from handlers import reconcile_worker as worker_handler
from handlers import reconciler as handler
from handlers.reconcile_worker import process
from lbcp.reconcile.dispatch import (
    MAX_BODY_BYTES,
    DispatchFailed,
    Shard,
    SqsWorkQueue,
    WorkMessage,
    dispatch,
    entry_from_json,
    entry_to_json,
    parse_work,
    shards,
    shipped_entries,
    tick_slot,
    work_messages,
)
from lbcp.reconcile.observed import EntryView
from lbcp_local.runtime import create_work_queue
from lbcp_local.work_queue import pump, scheduled_tick
from tests.conftest import REGION
from tests.fleet.test_reconciler_backoff import Build, LambdaContext, World, world  # noqa: F401

# --- pure: shards, slots, messages --------------------------------------------------------------------------------


def test_shards_are_sorted_consecutive_and_at_most_the_size() -> None:
    ids = [f"lb-{n:02d}" for n in (7, 3, 1, 9, 5)]
    assert shards(ids, 2) == [Shard(0, ("lb-01", "lb-03")), Shard(1, ("lb-05", "lb-07")), Shard(2, ("lb-09",))]
    assert shards(ids, 50) == [Shard(0, ("lb-01", "lb-03", "lb-05", "lb-07", "lb-09"))]
    assert shards([], 50) == []
    with pytest.raises(ValueError):
        shards(ids, 0)


def test_a_tick_slot_is_its_period_start() -> None:
    now = datetime(2026, 12, 7, 12, 3, 41, 500000, tzinfo=UTC)
    assert tick_slot(now, timedelta(minutes=1)) == datetime(2026, 12, 7, 12, 3, tzinfo=UTC)
    assert tick_slot(now, timedelta(seconds=1)) == datetime(2026, 12, 7, 12, 3, 41, tzinfo=UTC)


def test_messages_are_deduplicated_by_minute_and_shard_and_grouped_by_shard() -> None:
    minute = datetime(2026, 12, 7, 12, 3, tzinfo=UTC)
    first = work_messages(shards(["lb-b", "lb-a", "lb-c"], 2), minute)
    assert [json.loads(m.body) for m in first] == [
        {"loadBalancerIds": ["lb-a", "lb-b"], "reason": "schedule", "minute": "2026-12-07T12:03:00Z"},
        {"loadBalancerIds": ["lb-c"], "reason": "schedule", "minute": "2026-12-07T12:03:00Z"},
    ]
    assert [m.group_id for m in first] == ["shard-00000", "shard-00001"]
    assert [m.deduplication_id for m in first] == ["20261207T120300-shard-00000", "20261207T120300-shard-00001"]
    # The same minute again: the same ids (SQS drops them); the next minute: new ones, the same groups.
    assert work_messages(shards(["lb-a", "lb-b", "lb-c"], 2), minute) == first
    later = work_messages(shards(["lb-a", "lb-b", "lb-c"], 2), minute + timedelta(minutes=1))
    assert {m.deduplication_id for m in later}.isdisjoint(m.deduplication_id for m in first)
    assert [m.group_id for m in later] == [m.group_id for m in first]
    assert parse_work(first[0].body) == {"lb-a", "lb-b"}


@pytest.mark.parametrize("body", ["", "[]", '{"loadBalancerIds": "lb-a"}', '{"loadBalancerIds": [1]}', "{}"])
def test_a_message_the_dispatcher_did_not_write_is_refused(body: str) -> None:
    with pytest.raises(ValueError):
        parse_work(body)


def test_entry_views_travel_in_their_shards_message_and_are_acted_on_only_while_fresh() -> None:
    minute = datetime(2026, 12, 7, 12, 3, tzinfo=UTC)
    period = timedelta(minutes=1)
    views = {
        "lb-a": EntryView(ready=True, dns_name="a.example", security_group_id="sg-1"),
        "lb-b": EntryView(
            ready=True,
            registered_instance_ids=frozenset({"i-2", "i-1"}),
            dns_record_ips={"lbvm-1": "10.0.0.1"},
            resources_left=2,
            drift=("a rule nobody asked for",),
        ),
        "lb-c": EntryView(ready=False),
    }
    for view in views.values():
        assert entry_from_json(json.loads(json.dumps(entry_to_json(view)))) == view
    first, second = work_messages(shards(["lb-a", "lb-b", "lb-c"], 2), minute, views)
    assert shipped_entries(first.body, now=minute + timedelta(seconds=5), period=period) == {
        "lb-a": views["lb-a"],
        "lb-b": views["lb-b"],
    }
    assert shipped_entries(second.body, now=minute + timedelta(seconds=119), period=period) == {"lb-c": views["lb-c"]}
    # Taken two ticks after its minute (a backlog, a retry): too old to act on, the worker observes itself.
    assert shipped_entries(second.body, now=minute + 2 * period, period=period) is None
    # Without views (an older dispatcher's message, a test's): None, not an empty set of views.
    assert (
        shipped_entries(
            json.dumps({"loadBalancerIds": ["lb-a"], "minute": "2026-12-07T12:03:00Z"}), now=minute, period=period
        )
        is None
    )


def test_a_shards_views_too_large_for_a_message_are_left_to_its_worker() -> None:
    minute = datetime(2026, 12, 7, 12, 3, tzinfo=UTC)
    ids = [f"lb-{n:03d}" for n in range(50)]
    wordy = {lb_id: EntryView(ready=True, drift=("x" * 1000,)) for lb_id in ids}
    (message,) = work_messages(shards(ids, 50), minute, wordy)
    assert len(message.body.encode()) <= MAX_BODY_BYTES
    assert parse_work(message.body) == set(ids)
    assert shipped_entries(message.body, now=minute, period=timedelta(minutes=1)) is None
    # A shard of 50 as they usually are fits with room to spare.
    plain = {
        lb_id: EntryView(ready=True, dns_name=f"{lb_id}.elb.example", security_group_id="sg-0123456789abcdef0")
        for lb_id in ids
    }
    (carrying,) = work_messages(shards(ids, 50), minute, plain)
    assert len(carrying.body.encode()) < MAX_BODY_BYTES / 2
    assert shipped_entries(carrying.body, now=minute, period=timedelta(minutes=1)) == plain


# --- against SQS ------------------------------------------------------------------------------------------------


def work_queue() -> tuple[Any, str]:
    """The local runtime's queue, under a name of this test's own (moto's state is shared within the session)."""
    sqs = boto3.client("sqs", region_name=REGION)
    return sqs, create_work_queue(sqs, f"work-{uuid.uuid4().hex[:8]}.fifo")


def queued(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every visible message (left in the queue: received with a zero visibility timeout)."""
    found: dict[str, dict[str, Any]] = {}
    for _ in range(3):
        for message in sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, AttributeNames=["All"]
        ).get("Messages", []):
            found[message["MessageId"]] = message
    return sorted(found.values(), key=lambda m: m["Attributes"]["MessageGroupId"])


def worker(w: World) -> Any:
    return lambda event: process(event, w.reconciler)


def test_the_dispatcher_sends_only_the_due_load_balancers_in_sorted_shards(world: Build) -> None:  # noqa: F811
    w, ids = world(["a-poison", "b-one", "c-two", "d-three"])
    poison = ids[0]
    w.faults.poisoned.add(poison)
    assert set(w.tick().failures) == {poison}  # its streak backs it off for at least a tick
    w.advance(timedelta(seconds=20))
    sqs, url = work_queue()
    report = dispatch(w.reconciler, SqsWorkQueue(sqs, url), shard_size=2)
    assert report.backed_off == [poison]
    assert (report.load_balancers, report.due, report.shards, report.calls) == (4, 3, 2, 1)
    messages = queued(sqs, url)
    sent = [json.loads(m["Body"])["loadBalancerIds"] for m in messages]
    healthy = sorted(set(ids) - {poison})
    assert sent == [healthy[:2], healthy[2:]]  # sorted, each once, the backed-off one not at all
    minute = tick_slot(w.clock[0], timedelta(minutes=1)).strftime("%Y%m%dT%H%M%S")
    assert [m["Attributes"]["MessageGroupId"] for m in messages] == [f"shard-{n:05d}" for n in range(len(sent))]
    assert [m["Attributes"]["MessageDeduplicationId"] for m in messages] == [
        f"{minute}-shard-{n:05d}" for n in range(len(sent))
    ]


def test_a_dispatcher_run_twice_in_a_minute_sends_nothing_new(world: Build) -> None:  # noqa: F811
    w, _ids = world(["a-one", "b-two"])
    sqs, url = work_queue()
    queue = SqsWorkQueue(sqs, url)
    first = dispatch(w.reconciler, queue, shard_size=1)
    w.advance(timedelta(seconds=25))  # still the same minute (the clock starts at :30)
    dispatch(w.reconciler, queue, shard_size=1)
    assert depth(sqs, url) == first.shards == 2
    w.advance(timedelta(minutes=1))
    dispatch(w.reconciler, queue, shard_size=1)
    assert depth(sqs, url) == 2 * first.shards


def depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def test_dispatch_then_worker_converges_and_deletes_the_messages(world: Build) -> None:  # noqa: F811
    w, ids = world(["a-one", "b-two"])
    w.heartbeat()
    sqs, url = work_queue()
    report = dispatch(w.reconciler, SqsWorkQueue(sqs, url), shard_size=50)
    assert report.shards >= 1
    pumped = pump(sqs, url, worker(w))
    assert (pumped.received, pumped.deleted, pumped.failed) == (report.shards, report.shards, 0)
    for lb_id in ids:
        assert w.record(lb_id).status.phase == "Active"
        assert w.record(lb_id).status.observed_generation == 1
    assert queued(sqs, url) == []


def test_a_worker_whose_tick_raises_leaves_its_message(world: Build) -> None:  # noqa: F811
    w, ids = world(["a-one"])
    sqs, url = work_queue()
    dispatch(w.reconciler, SqsWorkQueue(sqs, url), shard_size=50)
    # The shard's reads fail as a whole (throttled past botocore's retries): the tick raises.
    w.faults.throttled.add("BatchGetItem")
    pumped = pump(sqs, url, worker(w))
    w.faults.throttled.clear()
    assert (pumped.received, pumped.failed, pumped.deleted) == (1, 1, 0)
    # Still in the queue, invisible until its visibility timeout, then handed out again.
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert int(attributes["Attributes"]["ApproximateNumberOfMessagesNotVisible"]) == pumped.failed
    assert w.record(ids[0]).status.observed_generation != 1


def test_a_poison_load_balancer_does_not_fail_its_shard(world: Build) -> None:  # noqa: F811
    w, (poison, healthy) = world(["a-poison", "b-healthy"])
    w.faults.poisoned.add(poison)
    w.heartbeat()
    event = {
        "Records": [
            {"messageId": "m-1", "body": json.dumps({"loadBalancerIds": [poison, healthy], "reason": "schedule"})}
        ]
    }
    assert process(event, w.reconciler) == {"batchItemFailures": []}
    assert w.record(healthy).status.observed_generation == 1
    streaks = w.reconciler.streaks({poison, healthy})
    assert set(streaks) == {poison} and streaks[poison].failures == 1


def test_after_a_failed_message_the_batch_rest_is_failed_unprocessed(world: Build) -> None:  # noqa: F811
    w, (lb_id,) = world(["a-one"])
    event = {
        "Records": [
            {"messageId": "m-1", "body": "not json"},
            {"messageId": "m-2", "body": json.dumps({"loadBalancerIds": [lb_id]})},
        ]
    }
    assert process(event, w.reconciler) == {"batchItemFailures": [{"itemIdentifier": "m-1"}, {"itemIdentifier": "m-2"}]}
    assert w.record(lb_id).status.observed_generation != 1  # m-2 was not processed


def test_shards_that_were_not_accepted_fail_the_dispatch() -> None:
    class Refusing:
        def send(self, messages: list[WorkMessage]) -> list[str]:
            return [messages[-1].entry_id]

    class Fleet:
        tick_period = timedelta(minutes=1)

        def now(self) -> datetime:
            return datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

        def list_records(self) -> list[Any]:
            from types import SimpleNamespace

            return [SimpleNamespace(id=f"lb-{n}", generation=1, status=None) for n in range(3)]

        def streaks(self) -> dict[str, Any]:
            return {}

        def observe_entries(self, records: Any, *, every: Any, now: datetime) -> dict[str, Any]:
            return {}

    with pytest.raises(DispatchFailed, match="1 of 2 shards"):
        dispatch(Fleet(), Refusing(), shard_size=2)  # type: ignore[arg-type]


# --- the handlers ----------------------------------------------------------------------------------------------


def test_the_schedule_dispatches_when_a_queue_is_configured_and_ticks_inline_when_not(
    world: Build,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w, ids = world(["a-one", "b-two"])
    w.heartbeat()
    monkeypatch.setattr(handler, "reconciler", lambda: w.reconciler)
    scheduled = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
    sqs, url = work_queue()
    monkeypatch.setattr(handler, "work_queue", lambda: SqsWorkQueue(sqs, url))
    assert handler.lambda_handler(scheduled, LambdaContext()) == {"loadBalancers": 2, "due": 2, "shards": 1}
    assert all(w.record(lb_id).status.observed_generation != 1 for lb_id in ids)  # nothing reconciled inline
    # The worker's own entry point, with the message as Lambda's event source hands it over.
    monkeypatch.setattr(worker_handler, "reconciler", lambda: w.reconciler)
    pumped = pump(sqs, url, lambda event: worker_handler.lambda_handler(event, LambdaContext()))
    assert (pumped.received, pumped.deleted) == (1, 1)
    assert all(w.record(lb_id).status.observed_generation == 1 for lb_id in ids)
    # Without a queue: the full tick, inline.
    monkeypatch.setattr(handler, "work_queue", lambda: None)
    answer = handler.lambda_handler(scheduled, LambdaContext())
    assert answer["loadBalancers"] == 2 and "shards" not in answer


def test_the_local_runtimes_minute_goes_through_the_queue(world: Build) -> None:  # noqa: F811
    w, ids = world(["a-one", "b-two", "c-three"])
    w.heartbeat()
    sqs, url = work_queue()
    pumped = scheduled_tick(w.reconciler, sqs, url, shard_size=2)
    assert (pumped.received, pumped.deleted, pumped.failed) == (2, 2, 0)  # two shards, each handed over and deleted
    assert all(w.record(lb_id).status.observed_generation == 1 for lb_id in ids)
    assert depth(sqs, url) == 0


ENTRY_READS = ("elbv2", "route53")


def test_the_dispatcher_observes_the_entry_once_and_its_workers_not_at_all(world: Build) -> None:  # noqa: F811
    w, ids = world(["a-one", "b-two", "c-three"])
    w.heartbeat()
    sqs, url = work_queue()
    w.faults.calls.clear()
    dispatch(w.reconciler, SqsWorkQueue(sqs, url), shard_size=1)
    dispatched = [op for service, op, _ in w.faults.calls if service in ENTRY_READS]
    assert dispatched and "DescribeTargetHealth" in dispatched  # the listings, and this tick's verifications
    w.faults.calls.clear()
    pumped = pump(sqs, url, worker(w))
    assert (pumped.received, pumped.deleted, pumped.failed) == (3, 3, 0)
    assert all(w.record(lb_id).status.observed_generation == 1 for lb_id in ids)
    # The shards acted on the views they were sent: not one entry read (writes would be registrations).
    reads = [op for service, op, _ in w.faults.calls if service in ENTRY_READS and op.startswith(("Describe", "List"))]
    assert reads == []


def test_a_message_taken_too_late_has_its_worker_observe_the_entry(world: Build) -> None:  # noqa: F811
    w, ids = world(["a-one"])
    w.heartbeat()
    sqs, url = work_queue()
    dispatch(w.reconciler, SqsWorkQueue(sqs, url), shard_size=50)
    w.advance(timedelta(minutes=2))
    w.heartbeat()
    w.faults.calls.clear()
    pumped = pump(sqs, url, worker(w))
    assert (pumped.received, pumped.deleted) == (1, 1)
    assert w.record(ids[0]).status.observed_generation == 1
    assert any(service == "elbv2" and op.startswith("Describe") for service, op, _ in w.faults.calls)


def test_a_dispatcher_that_cannot_observe_the_entries_still_sends_the_shards(
    world: Build,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w, ids = world(["a-one", "b-two"])
    w.heartbeat()
    sqs, url = work_queue()

    def throttled(*_args: Any, **_kwargs: Any) -> Any:  # a listing throttled past botocore's retries
        raise RuntimeError("Rate exceeded (test)")

    monkeypatch.setattr(w.reconciler, "observe_entries", throttled)
    report = dispatch(w.reconciler, SqsWorkQueue(sqs, url), shard_size=50)
    monkeypatch.undo()
    assert report.shards == 1
    bodies: list[dict[str, Any]] = []

    def seeing(event: dict[str, Any]) -> dict[str, Any]:
        bodies.extend(json.loads(record["body"]) for record in event["Records"])
        return process(event, w.reconciler)

    # Its worker observes the entry itself and converges.
    w.faults.calls.clear()
    pumped = pump(sqs, url, seeing)
    assert (pumped.received, pumped.deleted) == (1, 1)
    assert [sorted(body["loadBalancerIds"]) for body in bodies] == [sorted(ids)]
    assert all("entries" not in body for body in bodies)
    assert any(service == "elbv2" and op == "DescribeLoadBalancers" for service, op, _ in w.faults.calls)
    assert all(w.record(lb_id).status.observed_generation == 1 for lb_id in ids)
