"""Plain text output: aligned tables, key/value blocks, ages and times."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

NONE = "-"


def cell(value: Any) -> str:
    """A table cell: '-' for nothing, JSON spelling for booleans, one line always."""
    if value is None or value == "":
        return NONE
    if isinstance(value, bool):
        return "true" if value else "false"
    return " ".join(str(value).split()) if isinstance(value, str) else str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "") -> str:
    """Columns padded to their widest cell, two spaces apart; the last column is not padded."""
    text_rows = [[cell(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in text_rows:
        for index, value in enumerate(row):
            widths[index] = max(widths[index], len(value))
    lines = []
    for row in [list(headers), *text_rows]:
        padded = [value.ljust(widths[i]) if i < len(row) - 1 else value for i, value in enumerate(row)]
        lines.append((indent + "  ".join(padded)).rstrip())
    return "\n".join(lines)


def fields(pairs: Sequence[tuple[str, Any]], indent: str = "") -> str:
    """``Label:  value`` lines with the values aligned."""
    width = max((len(label) for label, _ in pairs), default=0) + 1
    return "\n".join(f"{indent}{(label + ':').ljust(width)}  {cell(value)}".rstrip() for label, value in pairs)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def age(value: Any, now: datetime | None = None) -> str:
    """``2026-01-01T00:00:00Z`` -> ``42s``, ``5m``, ``3h``, ``2d`` (how long ago, as kubectl shows it)."""
    then = parse_time(value)
    if then is None:
        return NONE
    seconds = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 2 * 3600:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def timestamp(value: Any) -> str:
    """An API time as ``2026-01-01T12:00:00Z`` (UTC, to the second)."""
    then = parse_time(value)
    return then.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if then else cell(value)


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
