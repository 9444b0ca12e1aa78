"""The actions of the lifecycle tasks function (``handlers.lifecycle_tasks``).

The state machines do EC2 and plain DynamoDB work themselves; they call this
function for what the Amazon States Language cannot do well: ELBv2 and
Route53 (the entry adapter), storing callback tokens with a version-conditioned
write, time arithmetic (drain deadline, record expiry) and events with a TTL.

Each action is idempotent (Step Functions retries them) and writes at most one
event. Errors worth retrying raise ``TransientError``, which the ASL retries
with backoff; anything else is caught by the state machine, recorded as an
event and turned into a replacement.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final, get_args

from botocore.exceptions import ClientError
from pydantic import Field

from lbcp.dal.lbvms import LbvmRepository
from lbcp.dal.repository import LoadBalancerRepository
from lbcp.entry import EntryAdapter
from lbcp.lifecycle import callbacks, messages
from lbcp.lifecycle.protocol import TransientError, drain_output, first_heartbeat_output, recovered_output
from lbcp.models.events import Event
from lbcp.models.lbvm import CallbackKind, DrainReason, Lbvm, LbvmConflict
from lbcp.models.spec import LoadBalancerSpec
from lbcp.models.status import StatusModel
from lbcp.settings import Settings

logger = logging.getLogger(__name__)

UPDATE_ATTEMPTS: Final = 5
# Drains for these reasons do not wait for connections: the LBVM never served
# (pending timeout) or its agent is gone (unhealthy, orphan).
NO_WAIT_REASONS: Final = frozenset({"pending-timeout", "unhealthy", "orphan"})
THROTTLING_CODES: Final = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException", "PriorRequestNotComplete"}
)


class LbvmMissing(Exception):
    """The LBVM's record does not exist (the state machine cannot act on it)."""


@dataclass
class TaskContext:
    lbvms: LbvmRepository
    load_balancers: LoadBalancerRepository
    entry: EntryAdapter
    sfn: Any
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    @staticmethod
    def from_settings(settings: Settings, session: Any = None) -> TaskContext:
        import boto3

        source = session or boto3
        dynamodb = source.client("dynamodb")
        return TaskContext(
            lbvms=LbvmRepository(dynamodb, settings.table_name),
            load_balancers=LoadBalancerRepository(
                dynamodb, settings.table_name, timedelta(days=settings.event_retention_days)
            ),
            entry=EntryAdapter.from_settings(settings, session),
            sfn=source.client("stepfunctions"),
        )


@lru_cache(maxsize=1)
def default_context() -> TaskContext:
    """One context per process, as Lambda keeps one per execution environment."""
    from lbcp.settings import settings

    return TaskContext.from_settings(settings())


# --- payloads --------------------------------------------------------------------------


class _Payload(StatusModel):
    model_config = {**StatusModel.model_config, "extra": "ignore"}
    action: str
    lbvm_id: str
    load_balancer_id: str


class RegisterCallback(_Payload):
    kind: CallbackKind
    task_token: str
    timeout_seconds: int | None = None


class RegisterTarget(_Payload):
    transition: str = "first-heartbeat"


class DeregisterTarget(_Payload):
    transition: str = "heartbeat-lost"
    silence_seconds: int | None = None
    grace_seconds: int = Field(default=0, ge=0)  # drain: how long it accepts new connections after this


class BeginDrain(_Payload):
    reason: str
    timeout_seconds: int = Field(ge=0)
    connection_threshold: int | None = None
    grace_seconds: int = Field(default=0, ge=0)


class FinishDrain(_Payload):
    reason: str
    end: dict[str, Any] = Field(default_factory=dict)


class RecordFailure(_Payload):
    phase: str = "lifecycle"
    error: dict[str, Any] | None = None


# --- helpers ---------------------------------------------------------------------------


def _get(ctx: TaskContext, load_balancer_id: str, lbvm_id: str) -> Lbvm:
    lbvm = ctx.lbvms.get(load_balancer_id, lbvm_id)
    if lbvm is None:
        raise LbvmMissing(f"no record of {lbvm_id} in {load_balancer_id}")
    return lbvm


def _update(
    ctx: TaskContext, load_balancer_id: str, lbvm_id: str, changes: Callable[[Lbvm], dict[str, Any] | None]
) -> tuple[Lbvm, Lbvm]:
    """Apply ``changes(current)`` with a version-conditioned write, re-reading on conflict.

    Returns (before, after); ``changes`` returning None means nothing to write.
    """
    for _ in range(UPDATE_ATTEMPTS):
        current = _get(ctx, load_balancer_id, lbvm_id)
        wanted = changes(current)
        if not wanted:
            return current, current
        try:
            return current, ctx.lbvms.update(current, **wanted)
        except LbvmConflict:
            continue
    raise TransientError(f"{lbvm_id}: the record kept changing under {UPDATE_ATTEMPTS} conditional writes")


def _spec(ctx: TaskContext, load_balancer_id: str) -> LoadBalancerSpec | None:
    record = ctx.load_balancers.get(load_balancer_id)
    return record.spec if record is not None else None


def _append(ctx: TaskContext, load_balancer_id: str, event: Event) -> None:
    ctx.load_balancers.append_event(load_balancer_id, event)


def _drain_reason(reason: str) -> DrainReason:
    return reason if reason in get_args(DrainReason) else "replace"  # type: ignore[return-value]


# --- actions ---------------------------------------------------------------------------


def register_callback(ctx: TaskContext, payload: RegisterCallback) -> dict[str, Any]:
    """Store the token the state machine waits on; complete it at once if the answer is already known."""
    before, lbvm = _update(
        ctx,
        payload.load_balancer_id,
        payload.lbvm_id,
        lambda current: (
            None
            if current.callback_token == payload.task_token
            else {"callback_kind": payload.kind, "callback_token": payload.task_token}
        ),
    )
    # Races closed here (each writer's conditional write orders them):
    # - a drain requested before this token was stored: the requester saw no
    #   token (or an old one), so the drain is delivered now;
    # - a ready heartbeat stored before the token: the handler had nothing to
    #   complete, so this does it (Pending), or a heartbeat that arrived after
    #   the LBVM went Unroutable (recovery).
    output: dict[str, Any] | None = None
    if lbvm.drain_requested_at is not None:
        output = drain_output(lbvm.drain_reason or "replace")
    elif lbvm.agent_state == callbacks.READY and lbvm.last_heartbeat_at is not None:
        if payload.kind == "first-heartbeat":
            output = first_heartbeat_output(callbacks.READY)
        elif payload.kind == "recovery" and lbvm.last_heartbeat_at > lbvm.state_since:
            output = recovered_output()
    if payload.kind == "first-heartbeat" and before.callback_kind != "first-heartbeat":
        _append(ctx, payload.load_balancer_id, messages.pending(lbvm, ctx.clock(), payload.timeout_seconds))
    completed = output is not None and callbacks.complete(ctx.sfn, payload.task_token, output)
    return {"kind": payload.kind, "completedAtOnce": completed}


def register_target(ctx: TaskContext, payload: RegisterTarget) -> dict[str, Any]:
    lbvm = _get(ctx, payload.load_balancer_id, payload.lbvm_id)
    spec = _spec(ctx, payload.load_balancer_id)
    if spec is None:
        raise LbvmMissing(f"load balancer {payload.load_balancer_id} no longer exists")
    if lbvm.instance_id is None:
        raise LbvmMissing(f"{lbvm.lbvm_id} has no instance to register")
    registration = ctx.entry.register_lbvm(
        spec,
        payload.load_balancer_id,
        lbvm_id=lbvm.lbvm_id,
        instance_id=lbvm.instance_id,
        private_ip=lbvm.private_ip,
    )
    _append(
        ctx, payload.load_balancer_id, messages.routable(lbvm, ctx.clock(), payload.transition, registration.describe())
    )
    return {"mode": registration.mode, "targetGroups": registration.target_groups, "address": registration.address}


def deregister_target(ctx: TaskContext, payload: DeregisterTarget) -> dict[str, Any]:
    lbvm = _get(ctx, payload.load_balancer_id, payload.lbvm_id)
    registration = ctx.entry.deregister_lbvm(
        _spec(ctx, payload.load_balancer_id),
        payload.load_balancer_id,
        lbvm_id=lbvm.lbvm_id,
        instance_id=lbvm.instance_id,
    )
    if payload.transition == "heartbeat-lost":
        _append(
            ctx,
            payload.load_balancer_id,
            messages.unroutable(lbvm, ctx.clock(), payload.silence_seconds, registration.describe()),
        )
    if payload.transition == "drain" and lbvm.accepting_until is not None:
        # The grace counts from the deregistration itself, however long it took to get here.
        accepting_until = ctx.clock() + timedelta(seconds=payload.grace_seconds)

        def later(current: Lbvm) -> dict[str, Any] | None:
            if current.accepting_until is None or current.accepting_until >= accepting_until:
                return None
            return {"accepting_until": accepting_until}

        _update(ctx, payload.load_balancer_id, payload.lbvm_id, later)
    return {"mode": registration.mode, "targetGroups": registration.target_groups}


def begin_drain(ctx: TaskContext, payload: BeginDrain) -> dict[str, Any]:
    """State Draining with a deadline; the first drain request's reason and deadline are kept.

    An LBVM that is waited for keeps accepting new connections for the grace
    (``accepting_until``; the entry is still sending some), and the agent's drain
    deadline counts the grace too.
    """
    now = ctx.clock()

    def changes(current: Lbvm) -> dict[str, Any] | None:
        if current.state in ("Draining", "Terminated"):
            return None  # a retried or repeated drain: keep what the first one wrote
        reason = current.drain_reason or _drain_reason(payload.reason)
        grace = timedelta(seconds=payload.grace_seconds if reason not in NO_WAIT_REASONS else 0)
        return {
            "state": "Draining",
            "state_since": now,
            "drain_requested_at": current.drain_requested_at or now,
            "drain_reason": reason,
            "drain_deadline": current.drain_deadline or now + grace + timedelta(seconds=payload.timeout_seconds),
            "accepting_until": now + grace if grace else None,
            "callback_kind": None,
            "callback_token": None,
        }

    before, lbvm = _update(ctx, payload.load_balancer_id, payload.lbvm_id, changes)
    if lbvm.state == "Terminated":
        return {"terminated": True, "reason": lbvm.drain_reason or payload.reason, "waitForConnections": False}
    reason = lbvm.drain_reason or _drain_reason(payload.reason)
    wait = reason not in NO_WAIT_REASONS
    deadline = lbvm.drain_deadline or now
    if before.state != "Draining":
        _append(
            ctx,
            payload.load_balancer_id,
            messages.draining(
                lbvm,
                now,
                reason,
                wait=wait,
                threshold=payload.connection_threshold,
                deadline=deadline,
                accepting_until=lbvm.accepting_until,
            ),
        )
    return {"terminated": False, "reason": reason, "waitForConnections": wait, "deadline": deadline.isoformat()}


def finish_drain(ctx: TaskContext, payload: FinishDrain) -> dict[str, Any]:
    now = ctx.clock()
    outcome = str(payload.end.get("outcome", "drained"))

    def changes(current: Lbvm) -> dict[str, Any] | None:
        if current.state == "Terminated":
            return None
        return {
            "state": "Terminated",
            "state_since": now,
            "terminated_at": now,
            "end_reason": f"{payload.reason}: {outcome}",
            "callback_kind": None,
            "callback_token": None,
        }

    before, lbvm = _update(ctx, payload.load_balancer_id, payload.lbvm_id, changes)
    if before.state != "Terminated":
        _append(ctx, payload.load_balancer_id, messages.terminated(lbvm, now, payload.reason, payload.end))
    return {"state": lbvm.state}


def record_failure(ctx: TaskContext, payload: RecordFailure) -> dict[str, Any]:
    lbvm = ctx.lbvms.get(payload.load_balancer_id, payload.lbvm_id)
    if lbvm is None:
        logger.warning("failure of %s, which has no record: %s", payload.lbvm_id, payload.error)
        return {"recorded": False}
    _append(ctx, payload.load_balancer_id, messages.failure(lbvm, ctx.clock(), payload.phase, payload.error))
    # Kept on the record too: the planner tells a fleet whose every launch fails (Failed) by it.
    detail = f"{payload.phase} step failed ({messages.failure_detail(payload.error)})"
    _update(
        ctx,
        payload.load_balancer_id,
        payload.lbvm_id,
        lambda current: None if current.failure == detail[:1024] else {"failure": detail[:1024]},
    )
    return {"recorded": True}


_ACTIONS: Final[dict[str, tuple[type[_Payload], Callable[[TaskContext, Any], dict[str, Any]]]]] = {
    "register-callback": (RegisterCallback, register_callback),
    "register-target": (RegisterTarget, register_target),
    "deregister-target": (DeregisterTarget, deregister_target),
    "begin-drain": (BeginDrain, begin_drain),
    "finish-drain": (FinishDrain, finish_drain),
    "record-failure": (RecordFailure, record_failure),
}


def dispatch(ctx: TaskContext, event: dict[str, Any]) -> dict[str, Any]:
    """Run the action named by ``event["action"]``."""
    action = event.get("action")
    if action not in _ACTIONS:
        raise ValueError(f"unknown action {action!r} (known: {', '.join(sorted(_ACTIONS))})")
    model, run = _ACTIONS[str(action)]
    payload = model.model_validate(event)
    try:
        return run(ctx, payload)
    except ClientError as exc:
        # Throttling becomes TransientError, which the ASL retries with backoff.
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in THROTTLING_CODES:
            raise TransientError(f"{code}: {exc}") from exc
        raise
