"""The load balancer resource as stored and as served: spec plus metadata plus status."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from lbcp.models.events import Event
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


class LoadBalancer(LoadBalancerSpec):
    """The API representation: the spec's fields, then metadata and status."""

    id: str = Field(description="Assigned by the API: lb- and 17 hex digits.")
    generation: int = Field(description="Incremented on every accepted change of the spec; the ETag.")
    created_at: datetime
    updated_at: datetime
    created_by: str | None = None
    deletion_requested_at: datetime | None = None
    status: LoadBalancerStatus

    @staticmethod
    def from_record(record: LoadBalancerRecord) -> LoadBalancer:
        return LoadBalancer.model_construct(
            **{name: getattr(record.spec, name) for name in LoadBalancerSpec.model_fields},
            id=record.id,
            generation=record.generation,
            created_at=record.created_at,
            updated_at=record.updated_at,
            created_by=record.created_by,
            deletion_requested_at=record.deletion_requested_at,
            status=record.status,
        )

    def to_json(self) -> dict[str, object]:
        return self.model_dump(mode="json", by_alias=True)


class LoadBalancerList(StatusModel):
    items: list[LoadBalancer]
    next_token: str | None = Field(default=None, description="Pass as nextToken to get the next page.")


class EventList(StatusModel):
    items: list[Event]
    next_token: str | None = None
