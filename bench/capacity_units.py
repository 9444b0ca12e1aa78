"""DynamoDB capacity units consumed by the calls a boto3 client makes, computed from the items' sizes.

moto does not report the capacity an on-demand table would bill, so this meter
measures it: it hooks a client's calls, sizes every item read or written with
DynamoDB's rules, and adds up request units as on-demand pricing counts them:

- an item's size is the sum of its attribute names' and values' lengths
  (strings in UTF-8 bytes, numbers about one byte per two digits plus one);
- a write costs ceil(size / 1 KB) units of the larger of the item before and
  after it; a transactional write twice that;
- a global secondary index that holds the item (the item has the index's key
  attributes) costs a write of its index entry when the write changes that
  entry: for an index projecting ALL (``byKind``), any change of the item, at
  the item's new size; for a keys-only one (``byKindKeys``), only the item's
  arrival, a change of its keys (a delete and a put) or its departure, at the
  size of the keys; a write that changes nothing the index holds costs it
  nothing;
- a strongly consistent read costs ceil(size / 4 KB) units (GetItem per item,
  Query per response, over the items' summed size); an eventually consistent
  one half of that; a transactional read twice.

Unit sizes and multipliers: Amazon DynamoDB Developer Guide, "Read/write
capacity mode" and "Item sizes and formats".
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from lbcp.dal.schema import (
    GSI_BY_KIND_KEYS_PARTITION_KEY,
    GSI_BY_KIND_KEYS_SORT_KEY,
    GSI_BY_KIND_PARTITION_KEY,
    GSI_BY_KIND_SORT_KEY,
    PARTITION_KEY,
    SORT_KEY,
)

WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096
# The table's indexes (lbcp.dal.schema): their key attributes, and whether they project every attribute.
_INDEXES: tuple[tuple[tuple[str, str], bool], ...] = (
    ((GSI_BY_KIND_PARTITION_KEY, GSI_BY_KIND_SORT_KEY), True),
    ((GSI_BY_KIND_KEYS_PARTITION_KEY, GSI_BY_KIND_KEYS_SORT_KEY), False),
)


def value_size(value: dict[str, Any]) -> int:
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        digits = len(str(inner).lstrip("-").replace(".", "").lstrip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: member}) for member in inner)
    if kind == "L":
        return 3 + sum(1 + value_size(member) for member in inner)
    if kind == "M":
        return 3 + sum(len(name.encode()) + 1 + value_size(member) for name, member in inner.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / WRITE_UNIT_BYTES))


def read_units(size: int, *, consistent: bool) -> float:
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


def index_entry(item: dict[str, Any] | None, keys: tuple[str, str], projects_all: bool) -> dict[str, Any] | None:
    """What an index holds of ``item``: None when the item lacks the index's keys."""
    if not item or not all(key in item for key in keys):
        return None
    if projects_all:
        return item
    return {name: item[name] for name in (PARTITION_KEY, SORT_KEY, *keys)}


def index_write_units(before: dict[str, Any] | None, after: dict[str, Any] | None) -> int:
    """The units a write from ``before`` to ``after`` costs the table's indexes."""
    units = 0
    for keys, projects_all in _INDEXES:
        old, new = index_entry(before, keys, projects_all), index_entry(after, keys, projects_all)
        if old == new:
            continue  # nothing the index holds changed
        moved = old is not None and new is not None and any(old[key] != new[key] for key in keys)
        if old is not None and (new is None or moved):
            units += write_units(item_size(old))  # it leaves the index (or its old entry does)
        if new is not None:
            units += write_units(item_size(new))
    return units


@dataclass
class CapacityMeter:
    """Attach to a DynamoDB client with ``watch``; ``probe`` is an unwatched client of the same table."""

    probe: Any
    read_units: float = 0.0
    write_units: float = 0.0
    index_write_units: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)
    _before: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = field(default_factory=list)
    _consistent: bool = False

    def watch(self, client: Any) -> Any:
        client.meta.events.register("before-parameter-build.dynamodb.*", self._before_call)
        client.meta.events.register("after-call.dynamodb.*", self._after_call)
        return client

    def reset(self) -> None:
        self.read_units = self.write_units = self.index_write_units = 0.0
        self.calls.clear()

    @property
    def total_write_units(self) -> float:
        return self.write_units + self.index_write_units

    # --- hooks ------------------------------------------------------------------

    def _get(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.probe.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        return item

    @staticmethod
    def _key(item: dict[str, Any]) -> dict[str, Any]:
        return {name: item[name] for name in (PARTITION_KEY, SORT_KEY)}

    def _writes_of(self, operation: str, params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        if operation in ("PutItem",):
            return [(params["TableName"], self._key(params["Item"]))]
        if operation in ("UpdateItem", "DeleteItem"):
            return [(params["TableName"], params["Key"])]
        if operation == "TransactWriteItems":
            found = []
            for entry in params["TransactItems"]:
                (kind, body), *_ = entry.items()
                if kind == "ConditionCheck":
                    continue
                key = self._key(body["Item"]) if kind == "Put" else body["Key"]
                found.append((body["TableName"], key))
            return found
        if operation == "BatchWriteItem":
            found = []
            for table, requests in params["RequestItems"].items():
                for request in requests:
                    if "PutRequest" in request:
                        found.append((table, self._key(request["PutRequest"]["Item"])))
                    else:
                        found.append((table, request["DeleteRequest"]["Key"]))
            return found
        return []

    def _before_call(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls[model.name] += 1
        self._consistent = bool(params.get("ConsistentRead"))
        self._before = [(table, key, self._get(table, key)) for table, key in self._writes_of(model.name, params)]

    def _after_call(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        operation = model.name
        if "Error" in parsed:
            self._before = []
            return
        consistent = self._consistent
        if operation == "GetItem":
            self.read_units += read_units(item_size(parsed.get("Item")), consistent=consistent)
        elif operation in ("Query", "Scan"):
            size = sum(item_size(item) for item in parsed.get("Items", []))
            self.read_units += read_units(size, consistent=consistent)
        elif operation == "BatchGetItem":
            for items in parsed.get("Responses", {}).values():
                self.read_units += sum(read_units(item_size(item), consistent=consistent) for item in items)
        multiplier = 2 if operation == "TransactWriteItems" else 1
        for table, key, before in self._before:
            after = self._get(table, key)
            size = max(item_size(before), item_size(after))
            self.write_units += multiplier * write_units(size)
            self.index_write_units += index_write_units(before, after)
        self._before = []
