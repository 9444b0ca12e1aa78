"""Events: an append-only record of what the control plane decided and why."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from lbcp.models.status import StatusModel

EventType = Literal["Normal", "Warning"]


class Event(StatusModel):
    """One decision or transition.

    ``reason`` is a short machine-readable CamelCase word (``Created``,
    ``SpecUpdated``, ``ScaledOut``); ``message`` says the same to a person,
    with the numbers that led to it.
    """

    time: datetime
    type: EventType
    reason: str
    message: str
    generation: int | None = None
    actor: str | None = None
    instance_id: str | None = None
