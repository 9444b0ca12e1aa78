"""DynamoDB capacity units consumed by the calls a boto3 client makes, computed from the items' sizes.

moto does not report the capacity an on-demand table would bill, so this meter
measures it: it hooks a client's calls, sizes every item read or written with
DynamoDB's rules, and adds up request units as on-demand pricing counts them:

- an item's size is the sum of its attribute names' and values' lengths
  (strings in UTF-8 bytes, numbers about one byte per two digits plus one);
- a write costs ceil(size / 1 KB) units of the larger of the item before and
  after it; a transactional write twice that;
- a global secondary index that holds the item (the item has the index's key
  attributes; the index projects ALL, as ours does) costs one more write of
  the item's new size whenever the write changes the item (and a delete when
  the item leaves it);
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

from lbcp.dal.schema import GSI_BY_KIND_PARTITION_KEY, GSI_BY_KIND_SORT_KEY, PARTITION_KEY, SORT_KEY

WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096
_INDEX_KEYS = (GSI_BY_KIND_PARTITION_KEY, GSI_BY_KIND_SORT_KEY)


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


def _indexed(item: dict[str, Any] | None) -> bool:
    return bool(item) and all(key in item for key in _INDEX_KEYS)  # type: ignore[operator]


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
            if after == before:
                continue  # a write that changed nothing (a failed condition raised above) touches no index
            if _indexed(after):
                self.index_write_units += write_units(item_size(after))
            elif _indexed(before):
                self.index_write_units += write_units(item_size(before))  # removed from the index
        self._before = []
