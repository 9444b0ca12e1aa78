"""An operator's pause, resume and abort of a rollout: the moves both kinds of rollout share (pure).

The request (``RolloutControl``) names the rollout it is about and stays on the
record until another replaces it, so it is applied on every tick and must be
idempotent: a pause of a rollout already paused, or a resume of one that runs,
changes nothing. Paused, the step is remembered and no clock runs for it; a
resume (or an abort, which rolls back from where it stood) starts the step's
clocks afresh, since time spent paused is not the rollout's fault. What a
pause keeps and what an abort does differ by kind, and are the caller's words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from lbcp.models.events import EventType, RolloutReason
from lbcp.models.rollout import RolloutControl, RolloutRecord

Rollout = TypeVar("Rollout", bound=RolloutRecord)


@dataclass(frozen=True)
class RolloutNote:
    """A transition of a rollout worth an event."""

    reason: RolloutReason
    message: str
    type: EventType = "Normal"


def steer(
    rollout: Rollout,
    control: RolloutControl | None,
    now: datetime,
    notes: list[RolloutNote],
    *,
    name: str,
    paused_effect: str,
    aborted_effect: str,
    roll_back: Callable[[Rollout, str], Rollout],
    resume_clears: tuple[str, ...] = (),
) -> Rollout:
    """``rollout`` after ``control``, if it names it; ``name`` is how events name the rollout ("rollout ro-1").

    ``roll_back(rollout, message)`` starts the rollback an abort asks for;
    ``resume_clears`` are the caller's own pause fields, unset when it runs again.
    """
    if control is None or control.rollout_id != rollout.id or not rollout.active:
        return rollout
    who = control.requested_by or "an operator"
    if control.action == "pause" and rollout.state == "Progressing" and rollout.step != "Rollback":
        message = f"paused by {who} at step {rollout.step} ({rollout.progress}); {paused_effect}"
        notes.append(RolloutNote("RolloutPaused", f"{name}: {message}"))
        return rollout.model_copy(
            update={
                "state": "Paused",
                "paused_step": rollout.step,
                "paused_by": who,
                "message": message,
                "waiting_for": f"a resume (paused by {who})",
            }
        )
    if control.action in ("resume", "abort") and rollout.state == "Paused":
        rollout = rollout.model_copy(
            update={
                "state": "Progressing",
                "step": rollout.paused_step,
                "paused_step": None,
                "step_started_at": now,
                "last_progress_at": now,
                "waiting_for": None,
                **dict.fromkeys(resume_clears),
            }
        )
        if control.action == "resume":
            message = f"resumed by {who} at step {rollout.step} ({rollout.progress})"
            notes.append(RolloutNote("RolloutResumed", f"{name}: {message}"))
            return rollout.model_copy(update={"message": message, "paused_by": None})
    if control.action == "abort" and rollout.step != "Rollback":
        message = f"aborted by {who} at step {rollout.step} ({rollout.progress}); {aborted_effect}"
        notes.append(RolloutNote("RolloutFailed", f"{name}: {message}", "Warning"))
        return roll_back(rollout, message)
    return rollout
