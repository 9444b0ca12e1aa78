"""What the scaler remembers between decisions, stored with the load balancer."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from lbcp.models.status import StatusModel


class WarmFloor(StatusModel):
    """An operator's pre-warming: keep at least ``floor`` LBVMs until ``expires_at``."""

    floor: int = Field(ge=1)
    expires_at: datetime
    reason: str | None = None
    requested_by: str | None = None


class ScalingState(StatusModel):
    last_scale_out_at: datetime | None = None
    last_scale_in_at: datetime | None = None
    last_decision: str | None = None
    warm: WarmFloor | None = None
