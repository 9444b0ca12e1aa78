"""The events the lifecycle writes: one per transition and per caught failure (pure functions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from lbcp.models.agent import parse_backend_health_text
from lbcp.models.events import Event, EventType, LifecycleReason
from lbcp.models.lbvm import Lbvm

ACTOR: Final = "lifecycle"
MAX_CAUSE_CHARS: Final = 400


def _subject(lbvm: Lbvm) -> str:
    return f"{lbvm.lbvm_id} {lbvm.instance_id}" if lbvm.instance_id else lbvm.lbvm_id


def _seconds(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds()))


def _at(moment: datetime) -> str:
    return moment.strftime("%H:%M:%SZ")


def event(lbvm: Lbvm, now: datetime, reason: LifecycleReason, message: str, type_: EventType = "Normal") -> Event:
    return Event(
        time=now,
        type=type_,
        reason=reason,
        message=message,
        generation=lbvm.launched_generation,
        actor=ACTOR,
        instance_id=lbvm.instance_id,
        lbvm_id=lbvm.lbvm_id,
    )


def pending(lbvm: Lbvm, now: datetime, timeout_seconds: int | None) -> Event:
    where = f"interface {lbvm.network_interface_id} ({lbvm.private_ip}) in {lbvm.subnet_id}"
    wait = f"waiting up to {timeout_seconds} s" if timeout_seconds else "waiting"
    return event(
        lbvm, now, "Pending", f"{_subject(lbvm)} Pending: launched with {where}; {wait} for its first heartbeat"
    )


def routable(lbvm: Lbvm, now: datetime, transition: str, registration: str) -> Event:
    if transition == "recovered":
        return event(
            lbvm,
            now,
            "Recovered",
            f"{_subject(lbvm)} Routable again: heartbeats are back after {_seconds(lbvm.state_since, now)} s "
            f"Unroutable; registered with the entry ({registration})",
        )
    return event(
        lbvm,
        now,
        "Routable",
        f"{_subject(lbvm)} Routable: first heartbeat {_seconds(lbvm.state_since, now)} s after launch; "
        f"registered with the entry ({registration})",
    )


def unroutable(lbvm: Lbvm, now: datetime, silence_seconds: int | None, registration: str) -> Event:
    last = f" (last at {_at(lbvm.last_heartbeat_at)})" if lbvm.last_heartbeat_at else ""
    silence = f"no heartbeat for {silence_seconds} s{last}" if silence_seconds else f"heartbeats stopped{last}"
    return event(
        lbvm,
        now,
        "Unroutable",
        f"{_subject(lbvm)} Unroutable: {silence}; deregistered from the entry ({registration})",
        "Warning",
    )


def draining(
    lbvm: Lbvm,
    now: datetime,
    reason: str,
    *,
    wait: bool,
    threshold: int | None,
    deadline: datetime,
    accepting_until: datetime | None = None,
) -> Event:
    if wait:
        how = (
            f"waiting until active connections < {threshold} or {_seconds(now, deadline)} s pass "
            f"(until {_at(deadline)}), then terminating"
        )
        if accepting_until is not None and accepting_until > now:
            how = (
                f"still accepting new connections for {_seconds(now, accepting_until)} s while the entry stops "
                f"sending them, then {how}"
            )
    else:
        how = "terminating without waiting for connections"
    return event(lbvm, now, "Draining", f"{_subject(lbvm)} Draining ({reason}): out of the entry; {how}")


def terminated(lbvm: Lbvm, now: datetime, reason: str, end: dict[str, Any]) -> Event:
    outcome = end.get("outcome")
    connections = end.get("connections")
    elapsed = end.get("elapsedSeconds")
    if outcome == "drained":
        how = f"connections fell to {connections}" + (f" after {elapsed} s" if elapsed is not None else "")
    elif outcome == "timeout":
        how = f"drain timeout passed with {connections} connections still open"
    else:
        how = "no connections to wait for"
    return event(
        lbvm,
        now,
        "Terminated",
        f"{_subject(lbvm)} Terminated ({reason}): {how}; instance terminated and network interface deleted",
    )


def agent_error(
    lbvm: Lbvm, now: datetime, state: str, error: str, *, pending_timeout_seconds: int, unhealthy_timeout_seconds: int
) -> Event:
    """An agent that reports a new error, and what the control plane will do about it."""
    if len(error) > MAX_CAUSE_CHARS:
        error = error[: MAX_CAUSE_CHARS - 3] + "..."
    if state == "ready":
        what = "refused a config"
        consequence = (
            f"config v{lbvm.applied_config_version} keeps serving"
            if lbvm.applied_config_version
            else "the last good config keeps serving"
        )
    elif lbvm.state in ("Launching", "Pending"):
        what = f"is {state}, not serving"
        consequence = (
            f"it is not registered; replaced unless healthy within the pending timeout "
            f"({pending_timeout_seconds} s after launch)"
        )
    elif lbvm.state == "Routable":
        what = f"is {state}, not serving"
        consequence = (
            f"its heartbeats no longer count: out of the entry after {unhealthy_timeout_seconds} s without one"
        )
    else:
        what = f"is {state}"
        consequence = f"it stays {lbvm.state}"
    return event(lbvm, now, "AgentError", f"{_subject(lbvm)}: the agent {what}: {error}; {consequence}", "Warning")


def backend_changes(before: Lbvm, after: Lbvm, now: datetime) -> list[Event]:
    """A backend this LBVM's proxy can no longer reach (no target passes its checks), or reaches again.

    Said on the transition only. Unknown health (NGINX, a drain, an old agent) says nothing:
    not knowing is no recovery.
    """
    if after.backend_health is None:
        return []
    now_seen = {b.name: b for b in parse_backend_health_text(after.backend_health)}
    was_down = {b.name for b in parse_backend_health_text(before.backend_health or "") if b.unavailable}
    events = []
    for name, backend in sorted(now_seen.items()):
        if backend.unavailable and name not in was_down:
            message = (
                f"{_subject(after)}: backend {name} has 0 of {backend.targets} targets passing its health check; "
                f"this LBVM answers its requests with 503 until one passes. Its place in the entry does not "
                f"change (a Pending LBVM is still registered once healthy): the fault is behind it, where every "
                f"LBVM sees the same targets"
            )
            events.append(event(after, now, "BackendUnavailable", message, "Warning"))
        elif name in was_down and not backend.unavailable:
            message = (
                f"{_subject(after)}: backend {name} is reachable again: "
                f"{backend.healthy_targets} of {backend.targets} targets pass its health check"
            )
            events.append(event(after, now, "BackendAvailable", message))
    return events


def failure_detail(error: dict[str, Any] | None) -> str:
    """A Step Functions error as a person reads it: its name and (shortened) cause."""
    name = str((error or {}).get("Error") or "unknown error")
    cause = str((error or {}).get("Cause") or "").strip()
    if len(cause) > MAX_CAUSE_CHARS:
        cause = cause[: MAX_CAUSE_CHARS - 3] + "..."
    return f"{name}: {cause}" if cause else name


def failure(lbvm: Lbvm, now: datetime, phase: str, error: dict[str, Any] | None) -> Event:
    detail = failure_detail(error)
    reason: LifecycleReason
    if phase == "drain":
        consequence = "it stays Draining; the reconciler's backstop finishes it"
        reason = "DrainFailed"
    elif phase == "launch":
        consequence = "nothing was launched"
        reason = "LaunchRefused"
    else:
        consequence = "draining it so that the reconciler replaces it"
        reason = "LifecycleFailed"
    return event(lbvm, now, reason, f"{_subject(lbvm)} {phase} step failed ({detail}); {consequence}", "Warning")
