"""Admin warming: pre-inject LBVMs ahead of a known spike.

``plan_warm`` is pure: from the record, the request and the time, the floor to
store (``ScalingState.warm``), the desired capacity to write now and the
event. ``warm_load_balancer`` writes it with the scaler's conditional write,
so a warm request and a scaler decision never overwrite each other. The
scaler keeps desired capacity at or above the floor until it expires, then
records the expiry and lets the policy scale in as usual.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lbcp.dal.repository import GenerationMismatch, LoadBalancerRepository, NotFound
from lbcp.errors import FieldError, SpecRejected
from lbcp.logic.capacity import effective_desired_capacity
from lbcp.models.events import Event
from lbcp.models.resource import LoadBalancerRecord
from lbcp.models.scaling import MAX_WARM_SECONDS, WarmFloor, WarmRequest

# A write lost to a concurrent scaler decision is retried on the fresh record this often.
_ATTEMPTS = 3


class WarmContended(Exception):
    """The scaling state changed under every attempt (a 409 or 503; retrying later succeeds)."""


@dataclass(frozen=True)
class WarmPlan:
    warm: WarmFloor
    desired: int  # the desired capacity to write now (the floor takes effect at once)
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
            f"warm floor {floor} until {expires_at.isoformat().replace('+00:00', 'Z')} by "
            f"{actor or 'an unknown caller'}{why}: {change}; the scaler keeps at least {floor} LBVMs until then"
        ),
        generation=record.generation,
        actor=actor,
    )
    return WarmPlan(warm=warm, desired=desired, event=event)


def warm_load_balancer(
    repository: LoadBalancerRepository, lb_id: str, request: WarmRequest, actor: str | None, now: datetime
) -> WarmResult:
    """Store a warm floor and raise desired capacity to it now.

    Raises ``NotFound`` (404), ``BeingDeleted`` (409), ``SpecRejected`` (400 for a
    malformed request, 422 when the load balancer cannot take it), ``WarmContended``
    (409: three concurrent scaler decisions in a row; rare).
    """
    record = repository.get(lb_id)
    for _ in range(_ATTEMPTS):
        if record is None:
            raise NotFound(lb_id)
        plan = plan_warm(record, request, actor, now)
        previous = effective_desired_capacity(record.spec.capacity, record.desired_capacity)
        update: dict[str, object] = {"warm": plan.warm}
        if plan.desired > previous:
            # A scale-out like any other: the cooldown that follows applies to it too.
            update["last_scale_out_at"] = now
        state = record.scaling.model_copy(update=update)
        try:
            repository.set_desired_capacity(lb_id, record.scaling_version, plan.desired, state, plan.event)
        except GenerationMismatch as raced:
            record = raced.current
            continue
        return WarmResult(lb_id, plan.warm, previous, plan.desired)
    raise WarmContended(f"{lb_id}: the scaling state kept changing; try again")


def scaling_status(record: LoadBalancerRecord, now: datetime) -> dict[str, object]:
    """The scaler's side of a load balancer for ``status.scaling`` in API responses.

    ``warm`` is the floor in force (None once expired, even before the scaler's
    next run has dropped it), ``lastDecision`` the explanation of the last change.
    """
    state = record.scaling
    warm = state.warm if state.warm is not None and state.warm.expires_at > now else None
    return {
        "policy": record.spec.scaling.policy,
        "warm": warm.model_dump(mode="json", by_alias=True, exclude_none=True) if warm else None,
        "lastDecision": state.last_decision,
        "lastScaleOutAt": _iso(state.last_scale_out_at),
        "lastScaleInAt": _iso(state.last_scale_in_at),
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
