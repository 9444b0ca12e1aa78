"""JSON Merge Patch (RFC 7386) on specs, and changes described in words (pure)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lbcp.errors import FieldError, PathPart, format_field
from lbcp.models.spec import IMMUTABLE_FIELDS

# Fields of the resource that the API owns; a patch may not set them.
READ_ONLY_FIELDS = (
    "id",
    "generation",
    "createdAt",
    "updatedAt",
    "createdBy",
    "deletionRequestedAt",
    "status",
)


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply ``patch`` to ``target`` as RFC 7386 says: objects merge, null removes, the rest replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def read_only_violations(patch: dict[str, Any]) -> list[FieldError]:
    return [
        FieldError(path=(key,), message="is set by the API and cannot be patched", code="read_only")
        for key in READ_ONLY_FIELDS
        if key in patch
    ]


def immutable_violations(current: dict[str, Any], proposed: dict[str, Any]) -> list[FieldError]:
    return [
        FieldError(
            path=(key,),
            message=f"cannot change after creation (is {current.get(key)!r}); create a new load balancer instead",
            code="immutable",
        )
        for key in IMMUTABLE_FIELDS
        if current.get(key) != proposed.get(key)
    ]


@dataclass(frozen=True)
class Change:
    path: tuple[PathPart, ...]
    old: Any
    new: Any

    def describe(self) -> str:
        field = format_field(self.path)
        if self.old is _ABSENT:
            return f"{field} set to {_show(self.new)}"
        if self.new is _ABSENT:
            return f"{field} removed (was {_show(self.old)})"
        return f"{field} {_show(self.old)} -> {_show(self.new)}"


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT: Any = _Absent()


def diff(old: Any, new: Any, path: tuple[PathPart, ...] = ()) -> list[Change]:
    """The leaf-level changes from ``old`` to ``new`` (JSON documents), in document order."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[Change] = []
        for key in [*old, *(k for k in new if k not in old)]:
            changes.extend(diff(old.get(key, _ABSENT), new.get(key, _ABSENT), (*path, key)))
        return changes
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [change for i, (a, b) in enumerate(zip(old, new, strict=True)) for change in diff(a, b, (*path, i))]
    if old == new:
        return []
    return [Change(path, old, new)]


def describe_changes(changes: list[Change], limit: int = 8) -> str:
    """``capacity.max 3 -> 5; waf.enabled false -> true`` (the first ``limit`` changes)."""
    parts = [change.describe() for change in changes[:limit]]
    if len(changes) > limit:
        parts.append(f"and {len(changes) - limit} more")
    return "; ".join(parts)


def _show(value: Any, width: int = 60) -> str:
    text = json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= width else text[: width - 3] + "..."
