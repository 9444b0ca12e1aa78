"""DynamoDB storage of failure streaks (``lbcp.reconcile.backoff.RetryStreak``), one item per failing load balancer.

Item layout:

- pk ``LB#<load balancer id>``, sk ``RETRY``: next to the record, but not the
  record. The table's stream triggers the reconciler only on ``sk = LB``, so a
  failing fleet writing its streak does not re-trigger itself.
- gsi1pk ``RETRY``, gsi1sk ``<load balancer id>``: every streak in one
  paginated query of the ``byKind`` index, a full tick's only read of them (no
  read per load balancer); a tick for a few load balancers reads theirs by key
  (``get_many``). A healthy fleet has no items here: the query reads
  nothing and costs the minimum (0.5 read unit).
- ``expiresAt`` (TTL) a week after the last failure: a streak that is still
  going is rewritten at least every backoff cap (about 17 minutes), so it never
  expires while it lasts. The record's removal (the last finalizer step)
  deletes it in the same transaction; the TTL is the backstop.

Writes are conditional on the streak the tick read, so two overlapping runs
count one failure once, and the streak's event is written in the same
transaction as the streak (no event for a write that lost).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator
from datetime import datetime, timedelta
from typing import Any

from lbcp.dal.repository import RETRY_SORT_KEY, LoadBalancerRepository, batch_get
from lbcp.dal.schema import (
    GSI_BY_KIND,
    GSI_BY_KIND_PARTITION_KEY,
    GSI_BY_KIND_SORT_KEY,
    PARTITION_KEY,
    SORT_KEY,
    TTL_ATTRIBUTE,
)
from lbcp.models.events import Event
from lbcp.models.times import utc_iso
from lbcp.reconcile.backoff import RetryStreak

KIND_RETRY = "RETRY"
STREAK_RETENTION = timedelta(days=7)


def retry_key(load_balancer_id: str) -> dict[str, Any]:
    return {PARTITION_KEY: {"S": f"LB#{load_balancer_id}"}, SORT_KEY: {"S": RETRY_SORT_KEY}}


def _time(moment: datetime) -> dict[str, str]:
    return {"S": utc_iso(moment, "microseconds")}


def to_item(streak: RetryStreak) -> dict[str, Any]:
    item: dict[str, Any] = {
        **retry_key(streak.load_balancer_id),
        GSI_BY_KIND_PARTITION_KEY: {"S": KIND_RETRY},
        GSI_BY_KIND_SORT_KEY: {"S": streak.load_balancer_id},
        "loadBalancerId": {"S": streak.load_balancer_id},
        "generation": {"N": str(streak.generation)},
        "failures": {"N": str(streak.failures)},
        "firstFailedAt": _time(streak.first_failed_at),
        "lastFailedAt": _time(streak.last_failed_at),
        # An error text can be long (a botocore message with a request id); the event has it in full.
        "lastError": {"S": streak.last_error[:2000]},
        "notBefore": _time(streak.not_before),
        TTL_ATTRIBUTE: {"N": str(int((streak.last_failed_at + STREAK_RETENTION).timestamp()))},
    }
    if streak.dead_lettered_at is not None:
        item["deadLetteredAt"] = _time(streak.dead_lettered_at)
    return item


def from_item(item: dict[str, Any]) -> RetryStreak:
    def moment(name: str) -> datetime:
        return datetime.fromisoformat(item[name]["S"])

    return RetryStreak(
        load_balancer_id=item["loadBalancerId"]["S"],
        generation=int(item["generation"]["N"]),
        failures=int(item["failures"]["N"]),
        first_failed_at=moment("firstFailedAt"),
        last_failed_at=moment("lastFailedAt"),
        last_error=item["lastError"]["S"],
        not_before=moment("notBefore"),
        dead_lettered_at=moment("deadLetteredAt") if "deadLetteredAt" in item else None,
    )


def _as_read(previous: RetryStreak | None) -> dict[str, Any]:
    """The condition that the stored streak is still ``previous`` (None: there is none), as request fields."""
    if previous is None:
        return {"ConditionExpression": "attribute_not_exists(#pk)", "ExpressionAttributeNames": {"#pk": PARTITION_KEY}}
    return {
        "ConditionExpression": "#failures = :failures AND #generation = :generation",
        "ExpressionAttributeNames": {"#failures": "failures", "#generation": "generation"},
        "ExpressionAttributeValues": {
            ":failures": {"N": str(previous.failures)},
            ":generation": {"N": str(previous.generation)},
        },
    }


class RetryRepository:
    def __init__(self, client: Any, table_name: str, load_balancers: LoadBalancerRepository) -> None:
        self._client = client
        self._table = table_name
        self._load_balancers = load_balancers  # the events' item layout is theirs

    def list_all(self) -> Iterator[RetryStreak]:
        """Every stored streak (paginated query of the index; eventually consistent)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": GSI_BY_KIND,
            "KeyConditionExpression": "#kind = :kind",
            "ExpressionAttributeNames": {"#kind": GSI_BY_KIND_PARTITION_KEY},
            "ExpressionAttributeValues": {":kind": {"S": KIND_RETRY}},
        }
        while True:
            response = self._client.query(**request)
            yield from (from_item(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return
            request = {**request, "ExclusiveStartKey": response["LastEvaluatedKey"]}

    def get_many(self, load_balancer_ids: Collection[str]) -> dict[str, RetryStreak]:
        """The streaks of these load balancers, by id: what a tick for a few of them reads.

        BatchGetItem, 100 keys a call, rather than a GetItem each: a shard of 50 load
        balancers costs one call, and a healthy one (no streak item) still only half a
        read unit per key. Eventually consistent, as the listing is: the writes are
        conditional on the streak read, so a stale read loses its write, never a failure.
        """
        keys = [retry_key(lb_id) for lb_id in sorted(set(load_balancer_ids))]
        items, _calls = batch_get(self._client, self._table, keys)
        return {streak.load_balancer_id: streak for streak in map(from_item, items)}

    def get(self, load_balancer_id: str) -> RetryStreak | None:
        """The load balancer's stored streak, if it is failing (what the plan preview plans with)."""
        item = self._client.get_item(TableName=self._table, Key=retry_key(load_balancer_id)).get("Item")
        return from_item(item) if item is not None else None

    def save(self, previous: RetryStreak | None, streak: RetryStreak, event: Event | None) -> bool:
        """Store ``streak`` (and ``event``) if the stored streak is still ``previous``; False if it moved on."""
        put = {"TableName": self._table, "Item": to_item(streak), **_as_read(previous)}
        items: list[dict[str, Any]] = [{"Put": put}]
        if event is not None:
            items.append(self._load_balancers.event_transaction_item(streak.load_balancer_id, event))
        try:
            self._client.transact_write_items(TransactItems=items)
        except self._client.exceptions.TransactionCanceledException as exc:
            reasons = exc.response.get("CancellationReasons", [])
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                return False
            raise
        return True

    def clear(self, streak: RetryStreak) -> None:
        """The streak ended (an attempt without failure): delete it, unless another run has moved it on."""
        with contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException):
            self._client.delete_item(TableName=self._table, Key=retry_key(streak.load_balancer_id), **_as_read(streak))
