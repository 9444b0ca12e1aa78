"""DynamoDB storage of LBVM records (the model and its writers are in ``models/lbvm.py``).

Item layout, flat so that the state machines can read and update single
attributes with plain DynamoDB tasks:

- pk ``LB#<load balancer id>``, sk ``LBVM#<lbvm id>``
- gsi2pk ``LBVM``, gsi2sk ``<load balancer id>#<lbvm id>``: every LBVM of
  every load balancer through the keys-only index ``byKindKeys`` (a
  paginated query of keys, then BatchGetItem of the records: the reconciler's
  and the checker's read). Keys only, because heartbeats rewrite the record
  every minute: in an index that projected the record, each of those writes
  would be paid twice (``lbcp.dal.schema``). Records written before that
  index carry ``byKind``'s keys (gsi1pk/gsi1sk) instead; the repository moves
  one at its next update, and the listing reads both indexes until then
- one attribute per field of ``Lbvm`` (camelCase), strings for times (ISO 8601
  UTC), numbers for counts; absent when unset
- ``recentMetrics``, the agent's last few metrics samples, as one compact text
  (``encode_samples``: ``<periodEnd, epoch ms> <cpu> <memory> <connections>``
  per sample, comma-separated, about 30 bytes each) rather than a list of maps,
  whose attribute names would repeat in every sample: the item's size is what
  every heartbeat write and every scaler read pays for
- ``expiresAt`` (TTL) once the LBVM is Terminated, so records of dead LBVMs
  stay readable for a while and then go
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from lbcp.dal.schema import (
    GSI_BY_KIND,
    GSI_BY_KIND_KEYS,
    GSI_BY_KIND_KEYS_PARTITION_KEY,
    GSI_BY_KIND_KEYS_SORT_KEY,
    GSI_BY_KIND_PARTITION_KEY,
    GSI_BY_KIND_SORT_KEY,
    PARTITION_KEY,
    SORT_KEY,
    TTL_ATTRIBUTE,
)
from lbcp.models.agent import MetricsSample
from lbcp.models.lbvm import Lbvm, LbvmConflict

KIND_LBVM = "LBVM"
LBVM_PREFIX = "LBVM#"
TERMINATED_RETENTION = timedelta(days=7)
# BatchGetItem's limit of keys per call.
BATCH_GET_KEYS = 100
# The keys of the index records of this layout are listed by, and of the one records written before it
# were (which an update removes).
_INDEX_KEYS = (GSI_BY_KIND_KEYS_PARTITION_KEY, GSI_BY_KIND_KEYS_SORT_KEY)
_LEGACY_INDEX_KEYS = (GSI_BY_KIND_PARTITION_KEY, GSI_BY_KIND_SORT_KEY)

_NUMBER_FIELDS = frozenset(
    {"version", "launchedGeneration", "activeConnections", "appliedConfigVersion", "heartbeatSequence"}
)

_SAMPLES_FIELD = "recentMetrics"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def epoch_milliseconds(moment: datetime) -> int:
    """Whole milliseconds since the epoch (integer arithmetic: no float rounding); naive times are UTC."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return (aware - _EPOCH) // _MILLISECOND


def encode_samples(samples: Iterable[MetricsSample]) -> str:
    return ",".join(
        f"{epoch_milliseconds(s.period_end)} {s.cpu!r} {s.memory!r} {s.active_connections}" for s in samples
    )


def decode_samples(text: str) -> list[dict[str, Any]]:
    samples = []
    for part in filter(None, text.split(",")):
        millis, cpu, memory, connections = part.split(" ")
        samples.append(
            {
                "periodEnd": _EPOCH + int(millis) * _MILLISECOND,
                "cpu": float(cpu),
                "memory": float(memory),
                "activeConnections": int(connections),
            }
        )
    return samples


def lbvm_key(load_balancer_id: str, lbvm_id: str) -> dict[str, Any]:
    return {PARTITION_KEY: {"S": f"LB#{load_balancer_id}"}, SORT_KEY: {"S": f"{LBVM_PREFIX}{lbvm_id}"}}


def to_item(lbvm: Lbvm) -> dict[str, Any]:
    item: dict[str, Any] = {
        **lbvm_key(lbvm.load_balancer_id, lbvm.lbvm_id),
        GSI_BY_KIND_KEYS_PARTITION_KEY: {"S": KIND_LBVM},
        GSI_BY_KIND_KEYS_SORT_KEY: {"S": f"{lbvm.load_balancer_id}#{lbvm.lbvm_id}"},
    }
    for name, value in lbvm.model_dump(mode="json", by_alias=True, exclude_none=True).items():
        if name == _SAMPLES_FIELD:
            if lbvm.recent_metrics:
                item[name] = {"S": encode_samples(lbvm.recent_metrics)}
            continue
        item[name] = {"N": str(value)} if name in _NUMBER_FIELDS else {"S": str(value)}
    if lbvm.terminated_at is not None:
        item[TTL_ATTRIBUTE] = {"N": str(int((lbvm.terminated_at + TERMINATED_RETENTION).timestamp()))}
    return item


def from_item(item: dict[str, Any]) -> Lbvm:
    fields: dict[str, Any] = {}
    for name, value in item.items():
        if name in (PARTITION_KEY, SORT_KEY, *_INDEX_KEYS, *_LEGACY_INDEX_KEYS, TTL_ATTRIBUTE):
            continue
        if name == _SAMPLES_FIELD:
            fields[name] = decode_samples(value.get("S", ""))
        elif "N" in value:
            fields[name] = int(value["N"])
        elif "S" in value:
            fields[name] = value["S"]
    return Lbvm.model_validate(fields)


class LbvmRepository:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name
        self.queries = 0  # Query calls made (pages), for the callers that report their reads
        self.batch_gets = 0  # BatchGetItem calls made
        # (load balancer, LBVM) of records read in byKind's layout: their next update moves them.
        self._legacy: set[tuple[str, str]] = set()

    def list_all(self, load_balancer_ids: Collection[str] | None = None) -> Iterator[Lbvm]:
        """Every LBVM record (of ``load_balancer_ids`` only, when given), ordered by load balancer and LBVM.

        Eventually consistent. The keys-only index gives the keys (paginated; a key is about 150 bytes,
        so thousands a page), BatchGetItem the records wanted (100 a call). Both indexes sort by
        ``<load balancer id>#<lbvm id>``, so ``load_balancer_ids`` are read as the one key range from
        the smallest to the largest: a work-queue shard (a sorted run of ids) reads its own keys and
        records only, whatever the fleet's size. Records not moved to the keys-only index yet are
        read from ``byKind``, which projects them whole.
        """
        wanted = None if load_balancer_ids is None else {f"LB#{lb_id}" for lb_id in load_balancer_ids}
        if wanted is not None and not wanted:
            return iter([])
        bounds = None if load_balancer_ids is None else (min(load_balancer_ids), max(load_balancer_ids))
        keyed = self._query_items(
            self._index_request(GSI_BY_KIND_KEYS, GSI_BY_KIND_KEYS_PARTITION_KEY, GSI_BY_KIND_KEYS_SORT_KEY, bounds)
        )
        keys = [
            {PARTITION_KEY: item[PARTITION_KEY], SORT_KEY: item[SORT_KEY]}
            for item in keyed
            if wanted is None or item[PARTITION_KEY]["S"] in wanted
        ]
        found = {(item[PARTITION_KEY]["S"], item[SORT_KEY]["S"]): item for item in self._batch_get(keys)}
        legacy = self._index_request(GSI_BY_KIND, GSI_BY_KIND_PARTITION_KEY, GSI_BY_KIND_SORT_KEY, bounds)
        for item in self._query_items(legacy):
            if wanted is not None and item[PARTITION_KEY]["S"] not in wanted:
                continue
            # A record moved a moment ago may still be listed by both indexes: the batch read is the fresher.
            found.setdefault((item[PARTITION_KEY]["S"], item[SORT_KEY]["S"]), item)
        return iter([self._read(found[key]) for key in sorted(found)])

    def _read(self, item: dict[str, Any]) -> Lbvm:
        lbvm = from_item(item)
        if GSI_BY_KIND_PARTITION_KEY in item:
            self._legacy.add((lbvm.load_balancer_id, lbvm.lbvm_id))
        return lbvm

    def _index_request(
        self, index_name: str, partition_key: str, sort_key: str, bounds: tuple[str, str] | None
    ) -> dict[str, Any]:
        """The query of an index's LBVM keys: all of them, or those of the load balancers from
        ``bounds[0]`` to ``bounds[1]`` (``#`` follows an id in the sort key and ``$`` sorts right after it)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": index_name,
            "KeyConditionExpression": "#kind = :kind",
            "ExpressionAttributeNames": {"#kind": partition_key},
            "ExpressionAttributeValues": {":kind": {"S": KIND_LBVM}},
        }
        if bounds is not None:
            request["KeyConditionExpression"] += " AND #sk BETWEEN :low AND :high"
            request["ExpressionAttributeNames"]["#sk"] = sort_key
            request["ExpressionAttributeValues"] |= {":low": {"S": f"{bounds[0]}#"}, ":high": {"S": f"{bounds[1]}$"}}
        return request

    def _batch_get(self, keys: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """The items of ``keys`` that exist, 100 keys a call; keys DynamoDB leaves unprocessed are asked again."""
        for start in range(0, len(keys), BATCH_GET_KEYS):
            pending: dict[str, Any] = {self._table: {"Keys": keys[start : start + BATCH_GET_KEYS]}}
            for attempt in range(8):
                response = self._client.batch_get_item(RequestItems=pending)
                self.batch_gets += 1
                yield from response.get("Responses", {}).get(self._table, [])
                pending = response.get("UnprocessedKeys") or {}
                if not pending:
                    break
                time.sleep(min(1.0, 0.05 * 2**attempt))  # throttled: back off before asking again
            else:
                raise RuntimeError(f"LBVM records left unread after 8 attempts: {len(pending[self._table]['Keys'])}")

    def list_for(self, load_balancer_id: str, *, consistent: bool = True) -> list[Lbvm]:
        """The LBVMs of one load balancer: strongly consistent for decisions under a lease, eventually
        consistent (half the read units) where a second-old record does as well (the scaler's metrics)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {"#pk": PARTITION_KEY, "#sk": SORT_KEY},
            "ExpressionAttributeValues": {":pk": {"S": f"LB#{load_balancer_id}"}, ":prefix": {"S": LBVM_PREFIX}},
            "ConsistentRead": consistent,
        }
        return list(self._query_all(request))

    def _query_all(self, request: dict[str, Any]) -> Iterator[Lbvm]:
        """Every record a query matches, page after page."""
        return (self._read(item) for item in self._query_items(request))

    def _query_items(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        while True:
            response = self._client.query(**request)
            self.queries += 1
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            request = {**request, "ExclusiveStartKey": response["LastEvaluatedKey"]}

    def get(self, load_balancer_id: str, lbvm_id: str, *, consistent: bool = True) -> Lbvm | None:
        """One LBVM record; ``consistent=False`` reads at half the units, and may miss the last second."""
        item = self._client.get_item(
            TableName=self._table, Key=lbvm_key(load_balancer_id, lbvm_id), ConsistentRead=consistent
        ).get("Item")
        return self._read(item) if item else None

    def create(self, lbvm: Lbvm) -> None:
        """Write the pending marker; fails if the id exists (ids are never reused)."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item=to_item(lbvm),
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PARTITION_KEY},
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            raise LbvmConflict(lbvm.lbvm_id) from None

    def update(self, current: Lbvm, **changes: Any) -> Lbvm:
        """Apply ``changes`` (model field names; None removes) if the record is still at ``current.version``."""
        updated = current.model_copy(update={**changes, "version": current.version + 1})
        Lbvm.model_validate(updated.model_dump())  # the change must still be a valid record
        new_item = to_item(updated)
        old_item = to_item(current)
        names: dict[str, str] = {"#version": "version"}
        values: dict[str, Any] = {":expected": {"N": str(current.version)}}
        sets: list[str] = []
        removes: list[str] = []
        for index, name in enumerate(sorted(set(new_item) | set(old_item))):
            if name in (PARTITION_KEY, SORT_KEY) or new_item.get(name) == old_item.get(name):
                continue
            names[f"#f{index}"] = name
            if name in new_item:
                values[f":v{index}"] = new_item[name]
                sets.append(f"#f{index} = :v{index}")
            else:
                removes.append(f"#f{index}")
        if (current.load_balancer_id, current.lbvm_id) in self._legacy:
            # A record written before the keys-only index moves to it now: it leaves byKind (whose every
            # write costs as much again as the table's) and joins byKindKeys. Only then: a write that sets
            # no index key leaves the index alone.
            for index, name in enumerate((*_LEGACY_INDEX_KEYS, *_INDEX_KEYS)):
                names[f"#k{index}"] = name
                if name in _LEGACY_INDEX_KEYS:
                    removes.append(f"#k{index}")
                else:
                    values[f":k{index}"] = new_item[name]
                    sets.append(f"#k{index} = :k{index}")
        expression = ("SET " + ", ".join(sets)) if sets else ""
        if removes:
            expression += (" " if expression else "") + "REMOVE " + ", ".join(removes)
        try:
            self._client.update_item(
                TableName=self._table,
                Key=lbvm_key(current.load_balancer_id, current.lbvm_id),
                UpdateExpression=expression,
                ConditionExpression="#version = :expected",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            raise LbvmConflict(current.lbvm_id) from None
        self._legacy.discard((current.load_balancer_id, current.lbvm_id))
        return updated

    def delete(self, lbvm: Lbvm) -> None:
        """Remove a record (the finalizer's last step for a load balancer)."""
        self._client.delete_item(TableName=self._table, Key=lbvm_key(lbvm.load_balancer_id, lbvm.lbvm_id))
