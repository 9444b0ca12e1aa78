"""Fast-forwarding moto's Step Functions interpreter in tests.

moto's interpreter really sleeps: Wait states
(``WaitFunction._wait_interval``), retry intervals (``time.sleep`` in
``retrier_decl``) and the 0.5 s polling of ``.sync`` tasks (``time.sleep`` in
``state_task_service_callback``). ``fast_forward`` scales all three by
``scale`` (0 makes them instant), keeping their order, so a drain that polls
every 5 s polls every 50 ms at 0.01.

Task timeouts (``TimeoutSecondsPath``, ``HeartbeatSecondsPath``) are not
scaled: they are waited on with real clocks, and tests pass small values
through the execution input instead.
"""

from __future__ import annotations

import time
from typing import Any

import pytest


class _ScaledTime:
    """Stands in for the ``time`` module inside one moto module: only ``sleep`` changes."""

    def __init__(self, scale: float) -> None:
        self._scale = scale

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds * self._scale))

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def fast_forward(monkeypatch: pytest.MonkeyPatch, scale: float = 0.01) -> None:
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_callback,
    )
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    def _wait_interval(self: Any, env: Any, wait_seconds: float) -> None:
        # One wait on the program's event, so a stopped execution still ends the wait at once.
        if wait_seconds > 0:
            env.program_state_event.wait(wait_seconds * scale)

    monkeypatch.setattr(WaitFunction, "_wait_interval", _wait_interval)
    monkeypatch.setattr(retrier_decl, "time", _ScaledTime(scale))
    monkeypatch.setattr(state_task_service_callback, "time", _ScaledTime(scale))
