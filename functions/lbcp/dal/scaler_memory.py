"""The scaler's per-period memory item: one small item per load balancer, apart from its record.

The noise-aware policy adds a demand sample every period (target tracking a
recommendation every run), so this memory changes on nearly every scaler run
while the record (spec, status, desired capacity, last scale times) does not.
Kept on the record, every run rewrote the whole multi-kilobyte record, in its
``byKind`` index too; here a run writes about one write unit:

- key ``pk = LB#<id>``, ``sk = SCALER``, without the index's key attributes
  (no index write) and outside the reconciler's stream filter (``sk = LB``);
- ``memory``: the lists, compactly (each series as its first time and
  offsets in seconds from it; values exactly as computed, so that a read
  returns what was written);
- ``version``: bumped by every write, which is conditioned on the version
  read (a concurrent run's write is never overwritten unseen);
- ``expiresAt``: refreshed by every write. The item is deleted with the
  record (``LoadBalancerRepository.remove``); the TTL only collects one that
  a run wrote while the record was being removed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from lbcp.dal.schema import PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE
from lbcp.models.scaling import DemandSample, Recommendation, ScalerMemory
from lbcp.models.times import utc_iso

SCALER_SORT_KEY = "SCALER"


@dataclass(frozen=True)
class StoredMemory:
    memory: ScalerMemory
    version: int  # of the item as read; a write expects it


class MemoryConflict(Exception):
    """The memory item's version moved since it was read (a concurrent scaler run wrote it)."""


def scaler_key(lb_id: str) -> dict[str, Any]:
    return {PARTITION_KEY: {"S": f"LB#{lb_id}"}, SORT_KEY: {"S": SCALER_SORT_KEY}}


def memory_item(lb_id: str, memory: ScalerMemory, version: int, expires_at: datetime) -> dict[str, Any]:
    return {
        **scaler_key(lb_id),
        "memory": {"S": encode(memory)},
        "version": {"N": str(version)},
        TTL_ATTRIBUTE: {"N": str(int(expires_at.timestamp()))},
    }


def memory_from_item(item: dict[str, Any]) -> StoredMemory:
    return StoredMemory(decode(item["memory"]["S"]), int(item["version"]["N"]))


def encode(memory: ScalerMemory) -> str:
    document: dict[str, Any] = {}
    if memory.demand:
        document["d"] = _series([(sample.time, sample.lbvms) for sample in memory.demand])
    if memory.recommendations:
        document["r"] = _series([(r.time, r.desired) for r in memory.recommendations])
    return json.dumps(document, separators=(",", ":"))


def decode(text: str) -> ScalerMemory:
    document = json.loads(text)
    return ScalerMemory(
        demand=[DemandSample(time=time, lbvms=value) for time, value in _points(document.get("d"))],
        recommendations=[Recommendation(time=time, desired=value) for time, value in _points(document.get("r"))],
    )


def _series(points: Sequence[tuple[datetime, float]]) -> list[Any]:
    # About 25 bytes a sample rather than 55 as JSON objects with ISO times: a 30-minute window fits one unit.
    first = points[0][0]
    return [utc_iso(first, "microseconds"), [[_seconds(time - first), value] for time, value in points]]


def _seconds(offset: timedelta) -> float:
    # Whole seconds as integers (periods start on the minute); otherwise exact to the microsecond.
    return offset.days * 86400 + offset.seconds if not offset.microseconds else offset.total_seconds()


def _points(series: list[Any] | None) -> list[tuple[datetime, Any]]:
    if not series:
        return []
    first = datetime.fromisoformat(series[0])
    return [(first + timedelta(seconds=offset), value) for offset, value in series[1]]
