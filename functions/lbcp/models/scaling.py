"""What the scaler remembers between decisions.

Policies see one ``ScalingState``. It is stored in two places: what changes
only with decisions (last scale times, hold, warm floor, last decision) on the
load balancer's record, and the policies' per-period memory (``ScalerMemory``:
demand samples, recommendations), which changes on almost every run, in a
small item of its own (``lbcp.dal.scaler_memory``), so that a steady load
balancer's runs do not rewrite its multi-kilobyte record.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from pydantic.alias_generators import to_camel

from lbcp.models.status import StatusModel

# The longest a warm floor may be held: warming is for a known spike, not a new minimum.
MAX_WARM_SECONDS = 7 * 24 * 3600


class WarmFloor(StatusModel):
    """An operator's pre-warming: keep at least ``floor`` LBVMs until ``expires_at``."""

    floor: int = Field(ge=1)
    expires_at: datetime
    reason: str | None = None
    requested_by: str | None = None
    requested_at: datetime | None = None


class Recommendation(StatusModel):
    """One evaluation's proposed capacity (target tracking keeps a window of them)."""

    time: datetime
    desired: int = Field(ge=0)


class DemandSample(StatusModel):
    """One period's demand, in LBVMs at the metrics' peaks (the noise-aware policy keeps a window of them)."""

    time: datetime  # the start of the metrics' period
    lbvms: float = Field(ge=0)


class ScalingState(StatusModel):
    last_scale_out_at: datetime | None = None
    last_scale_in_at: datetime | None = None
    last_decision: str | None = None
    warm: WarmFloor | None = None
    # Recommendations inside the scale-in stabilization window (newest last):
    # scale-in goes no lower than the highest of them.
    recommendations: list[Recommendation] = Field(default_factory=list)
    # The noise-aware policy's memory: demand per period over its noise window
    # (30 minutes by default, oldest first); scale-in judges its distribution.
    demand: list[DemandSample] = Field(default_factory=list)
    # Why the last evaluation held capacity where the policy wanted to move it
    # (a short key such as "max" or "missing-metrics"); an event is recorded
    # when it changes, not on every evaluation.
    hold: str | None = None


class ScalerMemory(StatusModel):
    """The policies' per-period memory: the parts of ``ScalingState`` that change on almost every run."""

    recommendations: list[Recommendation] = Field(default_factory=list)
    demand: list[DemandSample] = Field(default_factory=list)


def split_state(state: ScalingState) -> tuple[ScalingState, ScalerMemory]:
    """The state as the record keeps it (no per-period memory), and the memory on its own."""
    memory = ScalerMemory(recommendations=state.recommendations, demand=state.demand)
    return state.model_copy(update={"recommendations": [], "demand": []}), memory


def join_state(state: ScalingState, memory: ScalerMemory | None) -> ScalingState:
    """The state policies see: the record's, with the stored memory.

    ``None`` (no memory item): the record's own lists stand, which is where
    records written before the split keep their memory; the scaler's first
    write moves it.
    """
    if memory is None:
        return state
    return state.model_copy(update={"recommendations": memory.recommendations, "demand": memory.demand})


class WarmRequest(BaseModel):
    """``POST /v1/load-balancers/{id}/warm``: pre-inject LBVMs ahead of a known spike.

    Exactly one of ``floor`` (keep at least this many LBVMs) or ``extra`` (this
    many more than the current desired capacity), and exactly one of
    ``expires_at`` or ``duration_seconds``.
    """

    # Closed and camelCase like the spec; integers must be integers (no "3" for 3),
    # while expiresAt is an RFC 3339 string on the wire.
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, validate_by_alias=True, validate_by_name=False
    )

    floor: StrictInt | None = Field(default=None, ge=1, le=100)
    extra: StrictInt | None = Field(default=None, ge=1, le=100)
    expires_at: datetime | None = Field(default=None, description="RFC 3339 with a time zone.")
    duration_seconds: StrictInt | None = Field(default=None, ge=60, le=MAX_WARM_SECONDS)
    reason: StrictStr | None = Field(default=None, max_length=256)


class WarmResponse(StatusModel):
    """The answer to a warm request (``lbcp.scaling.warming.WarmResult.to_json``)."""

    load_balancer_id: str
    warm: WarmFloor
    previous_desired_capacity: int
    desired_capacity: int
