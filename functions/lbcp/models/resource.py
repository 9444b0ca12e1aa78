"""The load balancer resource as stored and as served: spec plus metadata plus status."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field

from lbcp.models.events import Event
from lbcp.models.scaling import ScalingState
from lbcp.models.spec import LoadBalancerSpec
from lbcp.models.status import LoadBalancerStatus, StatusModel


class LoadBalancerRecord(StatusModel):
    """What the table holds for one load balancer."""

    id: str
    generation: int = Field(ge=1)
    spec: LoadBalancerSpec
    status: LoadBalancerStatus
    created_at: datetime
    updated_at: datetime
    created_by: str | None = None
    deletion_requested_at: datetime | None = None
    # The scaler's decision (kept within capacity by the reconciler), and its memory.
    desired_capacity: int = Field(ge=0)
    scaling_version: int = Field(default=0, ge=0)
    scaling: ScalingState = Field(default_factory=ScalingState)


class LoadBalancer(LoadBalancerSpec):
    """The API representation: the spec's fields, then metadata and status."""

    # This model documents the representation (OpenAPI). Responses are built by
    # ``representation`` from the record's validated parts, so a cold start does
    # not build this large schema a second time.
    model_config = ConfigDict(defer_build=True)

    id: str = Field(description="Assigned by the API: lb- and 17 hex digits.")
    generation: int = Field(description="Incremented on every accepted change of the spec; the ETag.")
    created_at: datetime
    updated_at: datetime
    created_by: str | None = None
    deletion_requested_at: datetime | None = None
    status: LoadBalancerStatus


def representation(record: LoadBalancerRecord) -> dict[str, Any]:
    """The JSON the API returns for a load balancer (the shape of ``LoadBalancer``)."""
    return {
        **record.spec.model_dump(mode="json", by_alias=True),
        **record.model_dump(
            mode="json",
            by_alias=True,
            include={"id", "generation", "created_at", "updated_at", "created_by", "deletion_requested_at"},
        ),
        "status": record.status.model_dump(mode="json", by_alias=True),
    }


class LoadBalancerList(StatusModel):
    model_config = ConfigDict(defer_build=True)

    items: list[LoadBalancer]
    next_token: str | None = Field(default=None, description="Pass as nextToken to get the next page.")


class EventList(StatusModel):
    model_config = ConfigDict(defer_build=True)

    items: list[Event]
    next_token: str | None = None
