"""DynamoDB storage of load balancers and their events (key design in ``schema.py``).

Every write is conditional: a create cannot overwrite, a change applies only to
the generation the client saw, and nothing is written to a load balancer that
is being deleted. Multi-item changes (record + name claim + event) are single
transactions, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import contextlib
import json
import secrets
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from lbcp.dal.scaler_memory import MemoryConflict, StoredMemory, memory_from_item, memory_item, scaler_key
from lbcp.dal.schema import (
    GSI_BY_KIND,
    GSI_BY_KIND_PARTITION_KEY,
    GSI_BY_KIND_SORT_KEY,
    PARTITION_KEY,
    SORT_KEY,
    TTL_ATTRIBUTE,
)
from lbcp.logic.capacity import effective_desired_capacity
from lbcp.models.config_rollout import ConfigRolloutStatus
from lbcp.models.events import Event
from lbcp.models.resource import LoadBalancerRecord
from lbcp.models.rollout import RolloutControl, RolloutKind, RolloutRecord, RolloutStatus
from lbcp.models.rollout_history import parse_rollout
from lbcp.models.scaling import ScalerMemory, ScalingState
from lbcp.models.spec import LoadBalancerSpec
from lbcp.models.status import LoadBalancerStatus
from lbcp.models.times import utc_iso

LB_SORT_KEY = "LB"
NAME_SORT_KEY = "NAME"
EVENT_PREFIX = "EVENT#"
ROLLOUT_PREFIX = "ROLLOUT#"
CONFIG_PREFIX = "CONFIG#"
# A load balancer's failure streak (``retries.py``): removed with the record.
RETRY_SORT_KEY = "RETRY"
KIND_LOAD_BALANCER = "LB"
# BatchGetItem takes at most 100 keys a call.
_BATCH_GET_KEYS = 100


class NameInUse(Exception):
    def __init__(self, name: str, owner_id: str | None) -> None:
        super().__init__(f"name {name!r} is in use by {owner_id or 'another load balancer'}")
        self.name = name
        self.owner_id = owner_id


class NotFound(Exception):
    pass


class GenerationMismatch(Exception):
    def __init__(self, current: LoadBalancerRecord) -> None:
        super().__init__(f"current generation is {current.generation}")
        self.current = current


class BeingDeleted(Exception):
    def __init__(self, current: LoadBalancerRecord) -> None:
        super().__init__("the load balancer is being deleted")
        self.current = current


class InvalidPageToken(Exception):
    pass


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_token: str | None


def batch_get(
    client: Any, table: str, keys: Sequence[dict[str, Any]], *, consistent: bool = False
) -> tuple[list[dict[str, Any]], int]:
    """The items of these keys that exist (100 keys a call, unprocessed keys asked again), and the calls it took."""
    found: list[dict[str, Any]] = []
    calls = 0
    for start in range(0, len(keys), _BATCH_GET_KEYS):
        pending = list(keys[start : start + _BATCH_GET_KEYS])
        while pending:
            calls += 1
            response = client.batch_get_item(RequestItems={table: {"Keys": pending, "ConsistentRead": consistent}})
            found += response.get("Responses", {}).get(table, [])
            pending = response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
    return found, calls


def lb_key(lb_id: str) -> dict[str, Any]:
    return {PARTITION_KEY: {"S": f"LB#{lb_id}"}, SORT_KEY: {"S": LB_SORT_KEY}}


def name_key(name: str) -> dict[str, Any]:
    return {PARTITION_KEY: {"S": f"NAME#{name}"}, SORT_KEY: {"S": NAME_SORT_KEY}}


def config_key(lb_id: str, version: int) -> dict[str, Any]:
    # Zero-padded, so that the versions of a load balancer sort as numbers.
    return {PARTITION_KEY: {"S": f"LB#{lb_id}"}, SORT_KEY: {"S": f"{CONFIG_PREFIX}{version:010d}"}}


def new_load_balancer_id() -> str:
    return "lb-" + secrets.token_hex(9)[:17]


def _iso(moment: datetime) -> str:
    # Fixed width, so that event sort keys order as their times do.
    return utc_iso(moment, "microseconds")


class LoadBalancerRepository:
    def __init__(self, client: Any, table_name: str, event_retention: timedelta = timedelta(days=30)) -> None:
        self._client = client
        self._table = table_name
        self._event_retention = event_retention

    # --- reads ---------------------------------------------------------------

    def get(self, lb_id: str, *, consistent: bool = True) -> LoadBalancerRecord | None:
        """The record; ``consistent=False`` reads at half the units, and may miss the last second's write."""
        item = self._client.get_item(TableName=self._table, Key=lb_key(lb_id), ConsistentRead=consistent).get("Item")
        return _record_from_item(item) if item else None

    def get_many(self, lb_ids: Collection[str]) -> list[LoadBalancerRecord]:
        """The records of these load balancers that exist, strongly consistent (100 a call).

        A tick for a few load balancers reads just their records, not the listing of
        every one; consistent, so a spec change's own tick plans from the spec just written.
        """
        items, _calls = batch_get(
            self._client, self._table, [lb_key(lb_id) for lb_id in sorted(set(lb_ids))], consistent=True
        )
        return sorted((_record_from_item(item) for item in items), key=lambda record: record.id)

    def resolve_name(self, name: str) -> str | None:
        item = self._client.get_item(TableName=self._table, Key=name_key(name), ConsistentRead=True).get("Item")
        return item["lbId"]["S"] if item else None

    def list(self, limit: int, token: str | None) -> Page[LoadBalancerRecord]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": GSI_BY_KIND,
            "KeyConditionExpression": "#kind = :kind",
            "ExpressionAttributeNames": {"#kind": GSI_BY_KIND_PARTITION_KEY},
            "ExpressionAttributeValues": {":kind": {"S": KIND_LOAD_BALANCER}},
            "Limit": limit,
        }
        if token is not None:
            start = _decode_token(token, {PARTITION_KEY, SORT_KEY, GSI_BY_KIND_PARTITION_KEY, GSI_BY_KIND_SORT_KEY})
            if (
                start[GSI_BY_KIND_PARTITION_KEY]["S"] != KIND_LOAD_BALANCER
                or not start[PARTITION_KEY]["S"].startswith("LB#")
                or start[SORT_KEY]["S"] != LB_SORT_KEY
            ):
                raise InvalidPageToken("the token belongs to another listing")
            request["ExclusiveStartKey"] = start
        response = self._client.query(**request)
        return Page(
            [_record_from_item(item) for item in response.get("Items", [])],
            _encode_token(response.get("LastEvaluatedKey")),
        )

    def list_events(self, lb_id: str, limit: int, token: str | None) -> Page[Event]:
        return self._newest_first(lb_id, EVENT_PREFIX, limit, token, _event_from_item)

    def _newest_first(
        self, lb_id: str, prefix: str, limit: int, token: str | None, parse: Callable[[dict[str, Any]], T]
    ) -> Page[T]:
        """One page of a load balancer's items under ``prefix``, newest first; the token must be this listing's."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {"#pk": PARTITION_KEY, "#sk": SORT_KEY},
            "ExpressionAttributeValues": {":pk": {"S": f"LB#{lb_id}"}, ":prefix": {"S": prefix}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if token is not None:
            start = _decode_token(token, {PARTITION_KEY, SORT_KEY})
            if start[PARTITION_KEY]["S"] != f"LB#{lb_id}" or not start[SORT_KEY]["S"].startswith(prefix):
                raise InvalidPageToken("the token belongs to another listing")
            request["ExclusiveStartKey"] = start
        response = self._client.query(**request)
        return Page(
            [parse(item) for item in response.get("Items", [])], _encode_token(response.get("LastEvaluatedKey"))
        )

    def events_mentioning(
        self, lb_id: str, needles: Sequence[str], limit: int, *, page_size: int = 200, max_pages: int = 10
    ) -> tuple[Sequence[Event], bool]:
        """Up to ``limit`` events of a load balancer, newest first, whose stored JSON contains one of ``needles``.

        The filter runs in DynamoDB (an LBVM's id is in its events' ``lbvmId``, and in
        the messages of events written before that field existed), but a filter does
        not make a query read less: at most ``max_pages`` pages are read, and the
        second value says whether older events were left unread.
        """
        names = {"#pk": PARTITION_KEY, "#sk": SORT_KEY, "#event": "event"}
        values: dict[str, Any] = {":pk": {"S": f"LB#{lb_id}"}, ":prefix": {"S": EVENT_PREFIX}}
        values.update({f":n{index}": {"S": needle} for index, needle in enumerate(needles)})
        conditions = [f"contains(#event, :n{index})" for index in range(len(needles))]
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "FilterExpression": " OR ".join(conditions),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            "Limit": page_size,
        }
        found: builtins.list[Event] = []
        for _ in range(max_pages):
            response = self._client.query(**request)
            found.extend(_event_from_item(item) for item in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if len(found) >= limit:
                return found[:limit], len(found) > limit or last is not None
            if last is None:
                return found, False
            request = {**request, "ExclusiveStartKey": last}
        return found, True

    # --- writes --------------------------------------------------------------

    def create(self, record: LoadBalancerRecord, event: Event) -> None:
        """Write the record, its name claim and its first event, or nothing."""
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": _item_from_record(record),
                            "ConditionExpression": "attribute_not_exists(#pk)",
                            "ExpressionAttributeNames": {"#pk": PARTITION_KEY},
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                **name_key(record.spec.name),
                                "lbId": {"S": record.id},
                                "createdAt": {"S": _iso(record.created_at)},
                            },
                            "ConditionExpression": "attribute_not_exists(#pk)",
                            "ExpressionAttributeNames": {"#pk": PARTITION_KEY},
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    },
                    self._put_config(record.id, record.generation, record.spec, record.created_at),
                    self._put_event(record.id, event),
                ]
            )
        except self._client.exceptions.TransactionCanceledException as exc:
            reasons = exc.response.get("CancellationReasons", [])
            if len(reasons) > 1 and reasons[1].get("Code") == "ConditionalCheckFailed":
                owner = reasons[1].get("Item", {}).get("lbId", {}).get("S")
                raise NameInUse(record.spec.name, owner) from None
            raise

    def update_spec(
        self,
        lb_id: str,
        expected_generation: int,
        spec: LoadBalancerSpec,
        now: datetime,
        event: Event,
        *,
        previous: LoadBalancerSpec | None = None,
    ) -> LoadBalancerRecord:
        """Replace the spec and bump the generation, if the generation is still the expected one.

        The new generation's config version is written in the same transaction.
        ``previous`` (the spec of ``expected_generation``) is stored as its
        version too if it is not yet (load balancers created before config
        versions were kept): a staged config change must be able to return to it.
        """
        if previous is not None:
            self._backfill_config(lb_id, expected_generation, previous, now)
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": lb_key(lb_id),
                            "UpdateExpression": "SET #spec = :spec, #gen = :next, #updated = :now",
                            "ConditionExpression": (
                                "attribute_exists(#pk) AND #gen = :expected AND attribute_not_exists(#deleting)"
                            ),
                            "ExpressionAttributeNames": {
                                "#pk": PARTITION_KEY,
                                "#spec": "spec",
                                "#gen": "generation",
                                "#updated": "updatedAt",
                                "#deleting": "deletionRequestedAt",
                            },
                            "ExpressionAttributeValues": {
                                ":spec": {"S": spec.model_dump_json(by_alias=True)},
                                ":next": {"N": str(expected_generation + 1)},
                                ":expected": {"N": str(expected_generation)},
                                ":now": {"S": _iso(now)},
                            },
                        }
                    },
                    self._put_config(lb_id, expected_generation + 1, spec, now),
                    self._put_event(lb_id, event),
                ]
            )
        except self._client.exceptions.TransactionCanceledException as exc:
            self._raise_for_failed_condition(lb_id, exc)
        record = self.get(lb_id)
        if record is None:  # removed between our write and this read
            raise NotFound(lb_id)
        return record

    def request_deletion(
        self, lb_id: str, expected_generation: int | None, now: datetime, event: Event
    ) -> LoadBalancerRecord:
        """Mark the load balancer for teardown; its finalizers run in the reconciler."""
        condition = "attribute_exists(#pk) AND attribute_not_exists(#deleting)"
        values: dict[str, Any] = {":now": {"S": _iso(now)}, ":deleting": {"S": "Deleting"}}
        if expected_generation is not None:
            condition += " AND #gen = :expected"
            values[":expected"] = {"N": str(expected_generation)}
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": lb_key(lb_id),
                            "UpdateExpression": "SET #deleting = :now, #phase = :deleting, #updated = :now",
                            "ConditionExpression": condition,
                            "ExpressionAttributeNames": {
                                "#pk": PARTITION_KEY,
                                "#deleting": "deletionRequestedAt",
                                "#phase": "phase",
                                "#updated": "updatedAt",
                                **({"#gen": "generation"} if expected_generation is not None else {}),
                            },
                            "ExpressionAttributeValues": values,
                        }
                    },
                    self._put_event(lb_id, event),
                ]
            )
        except self._client.exceptions.TransactionCanceledException as exc:
            self._raise_for_failed_condition(lb_id, exc)
        record = self.get(lb_id)
        if record is None:
            raise NotFound(lb_id)
        return record

    def set_desired_capacity(
        self, lb_id: str, expected_scaling_version: int, desired: int, scaling: ScalingState, event: Event | None
    ) -> None:
        """The scaler's write: a new desired capacity and scaling state, if nobody decided since.

        ``event`` explains the decision; ``None`` for a state-only update (no
        event), which is a plain conditional update rather than a transaction
        (half the write units). The scaler passes the state without its
        per-period memory, which has an item of its own (``put_scaler_memory``).
        Raises ``GenerationMismatch`` (carrying the current record) when the
        scaling version moved, ``BeingDeleted`` or ``NotFound``.
        """
        update: dict[str, Any] = {
            "TableName": self._table,
            "Key": lb_key(lb_id),
            "UpdateExpression": "SET #desired = :desired, #scaling = :scaling, #version = :next",
            "ConditionExpression": "attribute_exists(#pk) AND #version = :expected AND attribute_not_exists(#deleting)",
            "ExpressionAttributeNames": {
                "#pk": PARTITION_KEY,
                "#desired": "desiredCapacity",
                "#scaling": "scaling",
                "#version": "scalingVersion",
                "#deleting": "deletionRequestedAt",
            },
            "ExpressionAttributeValues": {
                ":desired": {"N": str(desired)},
                ":scaling": {"S": scaling.model_dump_json(by_alias=True, exclude_none=True)},
                ":next": {"N": str(expected_scaling_version + 1)},
                ":expected": {"N": str(expected_scaling_version)},
            },
        }
        if event is None:
            try:
                self._client.update_item(**update)
            except self._client.exceptions.ConditionalCheckFailedException:
                self._raise_for_current(lb_id)
            return
        try:
            self._client.transact_write_items(TransactItems=[{"Update": update}, self._put_event(lb_id, event)])
        except self._client.exceptions.TransactionCanceledException as exc:
            self._raise_for_failed_condition(lb_id, exc)

    # --- the scaler's memory (``scaler_memory.py``) ------------------------------

    def get_scaler_memories(self, lb_ids: Sequence[str]) -> tuple[dict[str, StoredMemory], int]:
        """The memory items of these load balancers (absent: none stored yet), and the calls it took.

        Eventually consistent: a run reads what the previous run, a minute
        earlier, wrote; should it read an older version, its conditional write
        fails and it reads again (``get_scaler_memory``).
        """
        items, calls = batch_get(self._client, self._table, [scaler_key(lb_id) for lb_id in lb_ids])
        return {item[PARTITION_KEY]["S"].removeprefix("LB#"): memory_from_item(item) for item in items}, calls

    def get_scaler_memory(self, lb_id: str) -> StoredMemory | None:
        item = self._client.get_item(TableName=self._table, Key=scaler_key(lb_id), ConsistentRead=True).get("Item")
        return memory_from_item(item) if item else None

    def put_scaler_memory(self, lb_id: str, memory: ScalerMemory, expected_version: int, now: datetime) -> None:
        """Store the memory as version ``expected_version + 1``, if the stored one is still ``expected_version``.

        0 expects no item. Raises ``MemoryConflict`` otherwise. A retried call
        whose first attempt was applied fails its condition too: the caller
        reads the item again and finds its own write.
        """
        condition = "attribute_not_exists(#pk)" if expected_version == 0 else "#version = :expected"
        request: dict[str, Any] = {
            "TableName": self._table,
            "Item": memory_item(lb_id, memory, expected_version + 1, now + self._event_retention),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#pk": PARTITION_KEY} if expected_version == 0 else {"#version": "version"},
        }
        if expected_version:
            request["ExpressionAttributeValues"] = {":expected": {"N": str(expected_version)}}
        try:
            self._client.put_item(**request)
        except self._client.exceptions.ConditionalCheckFailedException:
            raise MemoryConflict(lb_id) from None

    def write_status(
        self,
        lb_id: str,
        status: LoadBalancerStatus,
        events: Sequence[Event],
        rollouts: Sequence[RolloutRecord] = (),
    ) -> None:
        """The reconciler's write: the observed status and the events that explain it, together.

        The phase of a load balancer being deleted stays Deleting whatever the
        status says (the condition keeps a late write from reviving it).
        ``rollouts`` (records that changed, template and config ones) go to the
        rollout history in the same transaction, so the history never disagrees
        with ``status.rollout`` and ``status.configRollout``.
        """
        document = status.model_dump(mode="json", by_alias=True, exclude={"phase", "desired_capacity"})
        update: dict[str, Any] = {
            "TableName": self._table,
            "Key": lb_key(lb_id),
            "UpdateExpression": "SET #status = :status, #phase = :phase",
            "ConditionExpression": "attribute_exists(#pk) AND (attribute_not_exists(#deleting) OR :phase = :deleting)",
            "ExpressionAttributeNames": {
                "#pk": PARTITION_KEY,
                "#status": "status",
                "#phase": "phase",
                "#deleting": "deletionRequestedAt",
            },
            "ExpressionAttributeValues": {
                ":status": {"S": json.dumps(document, separators=(",", ":"))},
                ":phase": {"S": status.phase},
                ":deleting": {"S": "Deleting"},
            },
        }
        items: list[dict[str, Any]] = [{"Update": update}]
        items += [self._put_rollout(lb_id, rollout) for rollout in rollouts[:4]]
        room = 99 - len(items)  # a transaction holds at most 100 items
        items += [self._put_event(lb_id, e) for e in events[:room]]
        try:
            self._client.transact_write_items(TransactItems=items)
        except self._client.exceptions.TransactionCanceledException as exc:
            self._raise_for_failed_condition(lb_id, exc)
        for event in events[room:]:
            self.append_event(lb_id, event)

    def remove(self, lb_id: str, event: Event) -> None:
        """The last finalizer step: the record, its name claim, failure streak and scaler memory go; the events
        stay until they expire."""
        record = self.get(lb_id)
        if record is None:
            return
        self._client.transact_write_items(
            TransactItems=[
                {
                    "Delete": {
                        "TableName": self._table,
                        "Key": lb_key(lb_id),
                        "ConditionExpression": "attribute_exists(#deleting)",
                        "ExpressionAttributeNames": {"#deleting": "deletionRequestedAt"},
                    }
                },
                {
                    "Delete": {
                        "TableName": self._table,
                        "Key": name_key(record.spec.name),
                        "ConditionExpression": "#owner = :id",
                        "ExpressionAttributeNames": {"#owner": "lbId"},
                        "ExpressionAttributeValues": {":id": {"S": lb_id}},
                    }
                },
                # Its failure streak, if the teardown had failed before (absent: deleting nothing is no error).
                {
                    "Delete": {
                        "TableName": self._table,
                        "Key": {PARTITION_KEY: {"S": f"LB#{lb_id}"}, SORT_KEY: {"S": RETRY_SORT_KEY}},
                    }
                },
                # The scaler's memory, if it kept any.
                {"Delete": {"TableName": self._table, "Key": scaler_key(lb_id)}},
                self._put_event(lb_id, event),
            ]
        )
        self._remove_configs(lb_id)

    def request_rollout_action(
        self, lb_id: str, control: RolloutControl, event: Event, *, kind: RolloutKind = "template"
    ) -> None:
        """An operator's pause, resume or abort: the planner carries it out (only the latest request of each
        kind counts: ``rolloutControl`` for template rollouts, ``configRolloutControl`` for config ones)."""
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": lb_key(lb_id),
                            "UpdateExpression": "SET #control = :control",
                            "ConditionExpression": "attribute_exists(#pk) AND attribute_not_exists(#deleting)",
                            "ExpressionAttributeNames": {
                                "#pk": PARTITION_KEY,
                                "#control": "configRolloutControl" if kind == "config" else "rolloutControl",
                                "#deleting": "deletionRequestedAt",
                            },
                            "ExpressionAttributeValues": {
                                ":control": {"S": control.model_dump_json(by_alias=True, exclude_none=True)}
                            },
                        }
                    },
                    self._put_event(lb_id, event),
                ]
            )
        except self._client.exceptions.TransactionCanceledException as exc:
            self._raise_for_failed_condition(lb_id, exc)

    def list_rollouts(self, lb_id: str, limit: int, token: str | None) -> Page[RolloutStatus | ConfigRolloutStatus]:
        """The rollout history of a load balancer, template and config rollouts together, newest first."""
        return self._newest_first(lb_id, ROLLOUT_PREFIX, limit, token, lambda item: parse_rollout(item["rollout"]["S"]))

    def get_config(self, lb_id: str, version: int) -> LoadBalancerSpec | None:
        """The spec of one generation (its config version), or None if it was never stored."""
        item = self._client.get_item(TableName=self._table, Key=config_key(lb_id, version)).get("Item")
        # A version is written once and never changed: an eventually consistent read cannot be stale, only
        # missing for a moment after the write, and the version is not served before that write committed.
        return LoadBalancerSpec.model_validate_json(item["spec"]["S"]) if item else None

    def append_event(self, lb_id: str, event: Event) -> None:
        self._client.put_item(TableName=self._table, Item=self._event_item(lb_id, event))

    def event_transaction_item(self, lb_id: str, event: Event) -> dict[str, Any]:
        """The transaction item that records ``event``, for a write of another item about this load balancer."""
        return self._put_event(lb_id, event)

    # --- helpers -------------------------------------------------------------

    def _raise_for_failed_condition(self, lb_id: str, exc: Exception) -> None:
        """Explain a cancelled transaction by reading the record it was conditioned on."""
        reasons = getattr(exc, "response", {}).get("CancellationReasons", [])
        if not reasons or reasons[0].get("Code") != "ConditionalCheckFailed":
            raise exc
        self._raise_for_current(lb_id)

    def _raise_for_current(self, lb_id: str) -> None:
        """Explain a failed condition on the record by reading it."""
        current = self.get(lb_id)
        if current is None:
            raise NotFound(lb_id) from None
        if current.deletion_requested_at is not None:
            raise BeingDeleted(current) from None
        raise GenerationMismatch(current) from None

    def _put_rollout(self, lb_id: str, rollout: RolloutRecord) -> dict[str, Any]:
        """The history item of one rollout: its latest record, under its start time (so the listing is by age)."""
        updated = rollout.finished_at or rollout.last_progress_at
        item = {
            PARTITION_KEY: {"S": f"LB#{lb_id}"},
            SORT_KEY: {"S": f"{ROLLOUT_PREFIX}{_iso(rollout.started_at)}#{rollout.id}"},
            "rollout": {"S": rollout.model_dump_json(by_alias=True, exclude_none=True)},
            # Kept as long as the events that tell the same story.
            TTL_ATTRIBUTE: {"N": str(int((updated + self._event_retention).timestamp()))},
        }
        return {"Put": {"TableName": self._table, "Item": item}}

    def _config_item(self, lb_id: str, version: int, spec: LoadBalancerSpec, now: datetime) -> dict[str, Any]:
        return {
            **config_key(lb_id, version),
            "spec": {"S": spec.model_dump_json(by_alias=True)},
            "createdAt": {"S": _iso(now)},
        }

    def _put_config(self, lb_id: str, version: int, spec: LoadBalancerSpec, now: datetime) -> dict[str, Any]:
        """The transaction item that stores one config version, never over another."""
        return {
            "Put": {
                "TableName": self._table,
                "Item": self._config_item(lb_id, version, spec, now),
                "ConditionExpression": "attribute_not_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": PARTITION_KEY},
            }
        }

    def _backfill_config(self, lb_id: str, version: int, spec: LoadBalancerSpec, now: datetime) -> None:
        # Refused when stored already: versions are immutable.
        with contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException):
            self._client.put_item(
                TableName=self._table,
                Item=self._config_item(lb_id, version, spec, now),
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PARTITION_KEY},
            )

    def _remove_configs(self, lb_id: str) -> None:
        """The config versions go with the record (they have no TTL: a version in use must not expire)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {"#pk": PARTITION_KEY, "#sk": SORT_KEY},
            "ExpressionAttributeValues": {":pk": {"S": f"LB#{lb_id}"}, ":prefix": {"S": CONFIG_PREFIX}},
            "ProjectionExpression": "#pk, #sk",
        }
        while True:
            response = self._client.query(**request)
            for item in response.get("Items", []):
                self._client.delete_item(
                    TableName=self._table, Key={PARTITION_KEY: item[PARTITION_KEY], SORT_KEY: item[SORT_KEY]}
                )
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _put_event(self, lb_id: str, event: Event) -> dict[str, Any]:
        """The transaction item that records ``event``."""
        return {"Put": {"TableName": self._table, "Item": self._event_item(lb_id, event)}}

    def _event_item(self, lb_id: str, event: Event) -> dict[str, Any]:
        # Sortable time first, then randomness so two events in one microsecond both survive.
        sort_key = f"{EVENT_PREFIX}{_iso(event.time)}#{secrets.token_hex(4)}"
        expires = int((event.time + self._event_retention).timestamp())
        item: dict[str, Any] = {
            PARTITION_KEY: {"S": f"LB#{lb_id}"},
            SORT_KEY: {"S": sort_key},
            "event": {"S": event.model_dump_json(by_alias=True, exclude_none=True)},
            TTL_ATTRIBUTE: {"N": str(expires)},
        }
        return item


def _item_from_record(record: LoadBalancerRecord) -> dict[str, Any]:
    # phase and desiredCapacity have writers of their own (API, reconciler, scaler),
    # so they are attributes of their own rather than parts of the status document.
    status = record.status.model_dump(mode="json", by_alias=True, exclude={"phase", "desired_capacity"})
    item: dict[str, Any] = {
        **lb_key(record.id),
        GSI_BY_KIND_PARTITION_KEY: {"S": KIND_LOAD_BALANCER},
        GSI_BY_KIND_SORT_KEY: {"S": record.spec.name},
        "id": {"S": record.id},
        "name": {"S": record.spec.name},
        "generation": {"N": str(record.generation)},
        "spec": {"S": record.spec.model_dump_json(by_alias=True)},
        "phase": {"S": record.status.phase},
        "status": {"S": json.dumps(status, separators=(",", ":"))},
        "createdAt": {"S": _iso(record.created_at)},
        "updatedAt": {"S": _iso(record.updated_at)},
        "desiredCapacity": {"N": str(record.desired_capacity)},
        "scalingVersion": {"N": str(record.scaling_version)},
        "scaling": {"S": record.scaling.model_dump_json(by_alias=True, exclude_none=True)},
    }
    if record.created_by:
        item["createdBy"] = {"S": record.created_by}
    if record.deletion_requested_at:
        item["deletionRequestedAt"] = {"S": _iso(record.deletion_requested_at)}
    return item


def _record_from_item(item: dict[str, Any]) -> LoadBalancerRecord:
    spec = LoadBalancerSpec.model_validate_json(item["spec"]["S"])
    desired = int(item["desiredCapacity"]["N"])
    status = json.loads(item["status"]["S"])
    status["phase"] = item["phase"]["S"]
    status["desiredCapacity"] = effective_desired_capacity(spec.capacity, desired)
    return LoadBalancerRecord.model_validate(
        {
            "id": item["id"]["S"],
            "generation": int(item["generation"]["N"]),
            # Stored specs were validated on the way in; reading them back
            # re-validates so that an old record can never bypass the model.
            "spec": spec,
            "status": status,
            "createdAt": item["createdAt"]["S"],
            "updatedAt": item["updatedAt"]["S"],
            "createdBy": item.get("createdBy", {}).get("S"),
            "deletionRequestedAt": item.get("deletionRequestedAt", {}).get("S"),
            "desiredCapacity": desired,
            "scalingVersion": int(item["scalingVersion"]["N"]),
            "scaling": json.loads(item["scaling"]["S"]),
            "rolloutControl": json.loads(item["rolloutControl"]["S"]) if "rolloutControl" in item else None,
            "configRolloutControl": (
                json.loads(item["configRolloutControl"]["S"]) if "configRolloutControl" in item else None
            ),
        }
    )


def _event_from_item(item: dict[str, Any]) -> Event:
    return Event.model_validate_json(item["event"]["S"])


def _encode_token(last_key: dict[str, Any] | None) -> str | None:
    if not last_key:
        return None
    raw = json.dumps({name: value["S"] for name, value in last_key.items()}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_token(token: str, expected_keys: set[str]) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidPageToken("not a token this API issued") from None
    if (
        not isinstance(decoded, dict)
        or set(decoded) != expected_keys
        or not all(isinstance(v, str) and 0 < len(v) <= 1024 for v in decoded.values())
    ):
        raise InvalidPageToken("not a token this API issued")
    return {name: {"S": value} for name, value in decoded.items()}
