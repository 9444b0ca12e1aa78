"""Time and randomness, injected: tests run the loop on a fake clock and never sleep for real."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall-clock time (UTC): heartbeat timestamps and drain deadlines."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: intervals and periods."""
        ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock; ``sleep`` returns early once ``wake`` is set (how the service stops promptly)."""

    def __init__(self, wake: threading.Event | None = None) -> None:
        self.wake = wake or threading.Event()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        self.wake.wait(max(0.0, seconds))


@dataclass
class Backoff:
    """Exponential backoff with "equal jitter": half the delay is fixed, half random.

    The fixed half keeps a failing agent from retrying in a tight loop; the
    random half spreads a fleet out so that agents that failed together (a
    control-plane outage) do not come back together.
    """

    base: float
    cap: float
    rng: random.Random
    failures: int = 0

    def next_delay(self) -> float:
        self.failures += 1
        ceiling = min(self.cap, self.base * 2 ** min(self.failures, 16))
        return float(ceiling / 2 + self.rng.uniform(0, ceiling / 2))

    def reset(self) -> None:
        self.failures = 0


def jittered(interval: float, rng: random.Random, spread: float = 0.1) -> float:
    """``interval`` +/- ``spread``: keeps a fleet's heartbeats from marching in step."""
    return float(interval * (1 + rng.uniform(-spread, spread)))
