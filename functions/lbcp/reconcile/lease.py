"""A per-load-balancer lease, so two reconciler runs never act on one load balancer at once.

A conditional put takes the lease when nobody holds it, it has expired, or
we hold it already; a conditional delete gives it back. The expiry outlives
the reconciler function's timeout, so a crashed holder blocks others only
until then.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from typing import Any

from lbcp.dal.schema import PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE
from lbcp.reconcile.ports import LeaseHeld

LEASE_SORT_KEY = "LEASE"


class Leases:
    def __init__(self, client: Any, table_name: str, owner: str, duration: timedelta = timedelta(seconds=90)) -> None:
        self._client = client
        self._table = table_name
        self._owner = owner
        self._duration = duration

    def _key(self, load_balancer_id: str) -> dict[str, Any]:
        return {PARTITION_KEY: {"S": f"LB#{load_balancer_id}"}, SORT_KEY: {"S": LEASE_SORT_KEY}}

    def acquire(self, load_balancer_id: str, now: datetime) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    **self._key(load_balancer_id),
                    "owner": {"S": self._owner},
                    TTL_ATTRIBUTE: {"N": str(int((now + self._duration).timestamp()))},
                },
                ConditionExpression="attribute_not_exists(#pk) OR #expires < :now OR #owner = :me",
                ExpressionAttributeNames={"#pk": PARTITION_KEY, "#expires": TTL_ATTRIBUTE, "#owner": "owner"},
                ExpressionAttributeValues={":now": {"N": str(int(now.timestamp()))}, ":me": {"S": self._owner}},
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            raise LeaseHeld(load_balancer_id) from None

    def release(self, load_balancer_id: str) -> None:
        # If it expired and someone else took it, it is theirs to release.
        with suppress(self._client.exceptions.ConditionalCheckFailedException):
            self._client.delete_item(
                TableName=self._table,
                Key=self._key(load_balancer_id),
                ConditionExpression="#owner = :me",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":me": {"S": self._owner}},
            )

    @contextmanager
    def held(self, load_balancer_id: str, now: datetime) -> Iterator[None]:
        self.acquire(load_balancer_id, now)
        try:
            yield
        finally:
            self.release(load_balancer_id)
