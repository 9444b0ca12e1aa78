"""The load balancer resource as stored and as served: spec plus metadata plus status."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field

from lbcp.models.events import Event
from lbcp.models.rollout import RolloutControl, RolloutStatus
from lbcp.models.scaling import ScalingState, WarmFloor
from lbcp.models.spec import LoadBalancerSpec
from lbcp.models.status import EntryStatusView, LoadBalancerStatus, StatusModel
from lbcp.models.times import utc_iso


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
    # An operator's pause, resume or abort of the current rollout (the API's only writes about rollouts):
    # one for template rollouts, one for config rollouts, so that a request about one never replaces the
    # other's before the planner carried it out.
    rollout_control: RolloutControl | None = None
    config_rollout_control: RolloutControl | None = None


class ScalingStatus(StatusModel):
    """The scaler's side of a load balancer (derived from its scaling memory when served)."""

    policy: str
    warm: WarmFloor | None = Field(default=None, description="An operator's warm floor, while it holds.")
    last_decision: str | None = None
    last_scale_out_at: datetime | None = None
    last_scale_in_at: datetime | None = None


class LoadBalancerStatusView(LoadBalancerStatus):
    """Status as the API serves it: what the reconciler observed, plus the scaler's side."""

    entry: EntryStatusView
    scaling: ScalingStatus | None = None


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
    status: LoadBalancerStatusView


def scaling_status(record: LoadBalancerRecord, now: datetime) -> dict[str, object]:
    """The scaler's side of a load balancer for ``status.scaling`` (the shape of ``ScalingStatus``).

    ``warm`` is the floor in force (None once expired, even before the scaler's
    next run has dropped it), ``lastDecision`` the explanation of the last change.
    """
    state = record.scaling
    warm = state.warm if state.warm is not None and state.warm.expires_at > now else None
    return {
        "policy": record.spec.scaling.policy,
        "warm": warm.model_dump(mode="json", by_alias=True, exclude_none=True) if warm else None,
        "lastDecision": state.last_decision,
        "lastScaleOutAt": _utc_iso_or_none(state.last_scale_out_at),
        "lastScaleInAt": _utc_iso_or_none(state.last_scale_in_at),
    }


def _utc_iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else utc_iso(moment)


def representation(
    record: LoadBalancerRecord,
    now: datetime,
    local_endpoints: list[dict[str, Any]] | None = None,
    rollout: RolloutStatus | None = None,
    heartbeats: Mapping[str, datetime] | None = None,
) -> dict[str, Any]:
    """The JSON the API returns for a load balancer (the shape of ``LoadBalancer``).

    ``local_endpoints`` is where the local runtime's entry listens for it (None in AWS);
    ``rollout``, status.rollout with an operator's pending request folded in
    (``lbcp.service.effective_rollout``), if there is one; ``heartbeats``, when each
    LBVM's last heartbeat was stored, by LBVM id (read from the LBVM records: the
    stored status leaves it out, so that it does not change with every heartbeat).
    """
    status = record.status.model_dump(mode="json", by_alias=True)
    if heartbeats:
        for lbvm in status["lbvms"]:
            if (at := heartbeats.get(lbvm.get("lbvmId") or "")) is not None:
                lbvm["lastHeartbeatAt"] = utc_iso(at)
    if rollout is not None:
        status["rollout"] = rollout.model_dump(mode="json", by_alias=True, exclude_none=True)
    if local_endpoints is not None:
        status["entry"]["localEndpoints"] = local_endpoints
    return {
        **record.spec.model_dump(mode="json", by_alias=True),
        **record.model_dump(
            mode="json",
            by_alias=True,
            include={"id", "generation", "created_at", "updated_at", "created_by", "deletion_requested_at"},
        ),
        "status": {**status, "scaling": scaling_status(record, now)},
    }


class LoadBalancerList(StatusModel):
    model_config = ConfigDict(defer_build=True)

    items: list[LoadBalancer]
    next_token: str | None = Field(default=None, description="Pass as nextToken to get the next page.")


class EventList(StatusModel):
    model_config = ConfigDict(defer_build=True)

    items: list[Event]
    next_token: str | None = None
