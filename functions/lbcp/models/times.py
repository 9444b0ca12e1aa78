"""Times as the control plane writes them: ISO 8601 in UTC, with Z."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

TimeSpec = Literal["auto", "milliseconds", "microseconds"]


def utc_iso(moment: datetime, timespec: TimeSpec = "auto") -> str:
    """``2026-11-28T12:00:00Z``; ``microseconds`` keeps every stored time the same length, so they sort as text."""
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")
