"""Admin warming: pre-inject LBVMs ahead of a known spike (pure).

``plan_warm``: from the record, the request and the time, the floor to store
(``ScalingState.warm``), the desired capacity to write now and the event.
The service writes it with the scaler's conditional write, so a warm request
and a scaler decision never overwrite each other. The scaler keeps desired
capacity at or above the floor until it expires, then records the expiry and
lets the policy scale in as usual.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lbcp.errors import FieldError, SpecRejected
from lbcp.logic.capacity import effective_desired_capacity
from lbcp.models.events import Event
from lbcp.models.resource import LoadBalancerRecord
from lbcp.models.scaling import MAX_WARM_SECONDS, ScalingState, WarmFloor, WarmRequest
from lbcp.models.times import utc_iso


@dataclass(frozen=True)
class WarmPlan:
    warm: WarmFloor
    previous: int  # the desired capacity in force before
    desired: int  # the desired capacity to write now (the floor takes effect at once)
    scaling: ScalingState  # the scaler's memory to write with it
    event: Event


@dataclass(frozen=True)
class WarmResult:
    """What the route returns: ``to_json()`` is the 200 response body."""

    load_balancer_id: str
    warm: WarmFloor
    previous_desired: int
    desired: int

    def to_json(self) -> dict[str, object]:
        return {
            "loadBalancerId": self.load_balancer_id,
            "warm": self.warm.model_dump(mode="json", by_alias=True, exclude_none=True),
            "previousDesiredCapacity": self.previous_desired,
            "desiredCapacity": self.desired,
        }


def _error(field: str, message: str, code: str = "out_of_range") -> FieldError:
    return FieldError(path=(field,), message=message, code=code)


def plan_warm(record: LoadBalancerRecord, request: WarmRequest, actor: str | None, now: datetime) -> WarmPlan:
    """Validate the request against the load balancer and compute the floor (raises SpecRejected)."""
    errors: list[FieldError] = []
    if (request.floor is None) == (request.extra is None):
        errors.append(_error("floor", "give exactly one of floor or extra", "invalid"))
    if (request.expires_at is None) == (request.duration_seconds is None):
        errors.append(_error("expiresAt", "give exactly one of expiresAt or durationSeconds", "invalid"))
    if errors:
        raise SpecRejected(errors)
    current = effective_desired_capacity(record.spec.capacity, record.desired_capacity)
    floor = request.floor if request.floor is not None else current + (request.extra or 0)
    if request.expires_at is not None:
        if request.expires_at.tzinfo is None:
            raise SpecRejected([_error("expiresAt", "needs a time zone (for example 2026-12-01T18:00:00Z)", "invalid")])
        expires_at = request.expires_at.astimezone(UTC)
    else:
        expires_at = now + timedelta(seconds=request.duration_seconds or 0)
    field = "floor" if request.floor is not None else "extra"
    maximum = record.spec.capacity.max
    if floor > maximum:
        errors.append(_error(field, f"a floor of {floor} LBVMs exceeds capacity.max ({maximum}); raise it first"))
    if expires_at <= now:
        errors.append(_error("expiresAt", "is in the past"))
    elif expires_at - now > timedelta(seconds=MAX_WARM_SECONDS):
        errors.append(_error("expiresAt", "is more than 7 days ahead: change capacity.min for a lasting floor"))
    if errors:
        raise SpecRejected(errors, unprocessable=True)
    warm = WarmFloor(floor=floor, expires_at=expires_at, reason=request.reason, requested_by=actor, requested_at=now)
    desired = max(current, floor)
    change = f"desired {current} -> {desired}" if desired != current else f"desired stays {current}"
    why = f" ({request.reason})" if request.reason else ""
    event = Event(
        time=now,
        type="Normal",
        reason="WarmRequested",
        message=(
            f"warm floor {floor} until {utc_iso(expires_at)} by "
            f"{actor or 'an unknown caller'}{why}: {change}; the scaler keeps at least {floor} LBVMs until then"
        ),
        generation=record.generation,
        actor=actor,
    )
    update: dict[str, object] = {"warm": warm}
    if desired > current:
        # A scale-out like any other: the cooldown that follows applies to it too.
        update["last_scale_out_at"] = now
    scaling = record.scaling.model_copy(update=update)
    return WarmPlan(warm=warm, previous=current, desired=desired, scaling=scaling, event=event)
