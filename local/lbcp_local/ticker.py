"""The local stand-in for the EventBridge schedules: run the reconciler and the scaler on a timer.

In AWS both run every minute (and the reconciler also at once on a spec
change, through the table's stream). Locally the reconciler ticks every
second or so, which plays the part of both triggers, and the scaler every
few seconds, so that a demo shows in seconds what takes minutes in AWS.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("lbcp.local.ticker")


@dataclass
class Ticker:
    name: str
    period_seconds: float
    action: Callable[[], object]
    _stop: threading.Event = field(default_factory=threading.Event)
    # Cleared while paused: the loop waits for it before each run.
    _running: threading.Event = field(default_factory=threading.Event)
    # Held during a run: ``pause`` takes it to wait for the run in progress.
    _busy: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    runs: int = 0
    failures: int = 0

    def __post_init__(self) -> None:
        self._running.set()

    def pause(self) -> None:
        """No new run starts until ``resume``; returns once a run in progress has finished."""
        self._running.clear()
        with self._busy:
            pass

    def resume(self) -> None:
        self._running.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"lbcp-local-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.period_seconds):
            with self._busy:
                if not self._running.is_set():
                    continue
                try:
                    self.action()
                    self.runs += 1
                except Exception:  # a failed run is retried by the next one, as a scheduled Lambda would be
                    self.failures += 1
                    log.exception("%s run failed", self.name)
