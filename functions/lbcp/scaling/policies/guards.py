"""Rules more than one scaling policy keeps."""

from __future__ import annotations

from datetime import datetime

from lbcp.scaling.explain import duration
from lbcp.scaling.settings import PolicySettings


def scale_in_wait_after_scale_out(last_out: datetime | None, settings: PolicySettings, now: datetime) -> str | None:
    """Why a scale-in must still wait after a scale-out, or None.

    The LBVMs a scale-out adds take the cooldown to show in the metrics; only
    then does the scale-in window start gathering evidence, so a scale-in
    needs a full stabilization window of recommendations made after that. The
    defaults (10m + 5m) keep a scale-in more than 15 minutes from a scale-out.
    """
    if last_out is None:
        return None
    earliest = last_out + settings.cooldown + settings.scale_in_stabilization
    if now > earliest:  # strictly: at exactly 15 minutes it would still count as a flap
        return None
    return f"no scale-in until {duration(earliest - now)} from now (a full window after the last scale-out settles)"
