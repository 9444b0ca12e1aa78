"""Backstops for LBVM lifecycles that overran their own timeouts.

Each LBVM's own lifecycle execution normally handles all of this; the planner
acts only when it plainly has not (an execution aborted, a task that never
returns, a callback nobody completes). Every path ends in ForceTerminate if the
lifecycle does not even drain: a drain request that is not carried out within
the drain timeout (plus margins) is carried out by the reconciler itself.
"""

from __future__ import annotations

from lbcp.models.lbvm import HEARTBEAT_PERSIST_INTERVAL, Lbvm
from lbcp.reconcile.jobs import ForceTerminate, Job, RequestDrain, StartLifecycle
from lbcp.reconcile.plan.context import PlanContext, age_text, seconds


def stuck_lifecycles(ctx: PlanContext) -> list[Job]:
    return _backstops(ctx, deleting=False)


def stuck_lifecycles_while_deleting(ctx: PlanContext) -> list[Job]:
    """The same backstops, and a marker that was never launched is simply removed."""
    return _backstops(ctx, deleting=True)


def _backstops(ctx: PlanContext, *, deleting: bool) -> list[Job]:
    return [*_starting(ctx, deleting), *_silent_routable(ctx), *_unrecovered(ctx), *_overrunning_drains(ctx)]


def _starting(ctx: PlanContext, deleting: bool) -> list[Job]:
    lifecycle, now = ctx.spec.lifecycle, ctx.now
    pending_bound = seconds(lifecycle.pending_timeout_seconds) + ctx.settings.stuck_margin
    jobs: list[Job] = []
    for lbvm in ctx.fleet.starting:
        since_decision = now - lbvm.created_at
        if lbvm.state == "Launching" and lbvm.execution_arn is None and deleting:
            jobs.append(
                ForceTerminate(
                    reason=f"{lbvm.lbvm_id}: never launched; removing it",
                    lbvm_id=lbvm.lbvm_id,
                    end_reason="removed before launch: the load balancer is being deleted and its lifecycle "
                    "execution had not started",
                )
            )
        elif lbvm.state == "Launching" and since_decision > pending_bound:
            # Covers an execution that stopped before its instance existed, and one
            # that could never be (re)started: the same bound as a pending timeout.
            jobs.append(
                RequestDrain(
                    reason=f"{lbvm.lbvm_id}: still launching {age_text(since_decision)} after the launch decision "
                    f"(pending timeout {lifecycle.pending_timeout_seconds} s); replacing it",
                    lbvm_id=lbvm.lbvm_id,
                    drain_reason="pending-timeout",
                    deregister_now=True,
                )
            )
        elif lbvm.state == "Launching" and lbvm.execution_arn is None and since_decision > ctx.settings.launch_grace:
            jobs.append(
                StartLifecycle(
                    reason=f"{lbvm.lbvm_id}: its lifecycle execution has not started {age_text(since_decision)} "
                    "after the launch decision; starting it",
                    lbvm_id=lbvm.lbvm_id,
                )
            )
        elif lbvm.state == "Pending" and now - lbvm.state_since > pending_bound:
            jobs.append(
                RequestDrain(
                    reason=f"{lbvm.lbvm_id}: no healthy heartbeat {age_text(now - lbvm.state_since)} after launch "
                    f"(pending timeout {lifecycle.pending_timeout_seconds} s)",
                    lbvm_id=lbvm.lbvm_id,
                    drain_reason="pending-timeout",
                    deregister_now=True,
                )
            )
    return jobs


def _silent_routable(ctx: PlanContext) -> list[Job]:
    """A Routable LBVM whose heartbeats stopped, yet whose lifecycle did not take it out.

    Heartbeats are stored at least every HEARTBEAT_PERSIST_INTERVAL, so silence
    well past the unhealthy timeout means the lifecycle is stuck.
    """
    lifecycle = ctx.spec.lifecycle
    bound = seconds(lifecycle.unhealthy_timeout_seconds) + HEARTBEAT_PERSIST_INTERVAL + ctx.settings.stuck_margin
    silences = ((lbvm, ctx.now - (lbvm.last_heartbeat_at or lbvm.state_since)) for lbvm in ctx.fleet.routable)
    return [
        _take_out_unhealthy(
            lbvm,
            f"Routable but no heartbeat for {age_text(silence)} "
            f"(unhealthy timeout {lifecycle.unhealthy_timeout_seconds} s); taking it out",
        )
        for lbvm, silence in silences
        if silence > bound
    ]


def _unrecovered(ctx: PlanContext) -> list[Job]:
    lifecycle = ctx.spec.lifecycle
    bound = seconds(lifecycle.recovery_timeout_seconds) + ctx.settings.stuck_margin
    ages = ((lbvm, ctx.now - lbvm.state_since) for lbvm in ctx.fleet.unroutable)
    return [
        _take_out_unhealthy(
            lbvm, f"unroutable for {age_text(age)} (recovery timeout {lifecycle.recovery_timeout_seconds} s)"
        )
        for lbvm, age in ages
        if age > bound
    ]


def _take_out_unhealthy(lbvm: Lbvm, why: str) -> Job:
    # Out of the entry before any drain wait: an LBVM that does not report cannot be trusted with new clients.
    return RequestDrain(
        reason=f"{lbvm.lbvm_id}: {why}", lbvm_id=lbvm.lbvm_id, drain_reason="unhealthy", deregister_now=True
    )


def _overrunning_drains(ctx: PlanContext) -> list[Job]:
    drain = ctx.spec.drain
    # Twice the margin: the drain's own wait is bounded by its grace and its timeout, then
    # termination takes its time.
    bound = drain.deregistration_grace_seconds + drain.timeout_seconds
    limit = seconds(bound) + ctx.settings.stuck_margin * 2
    jobs: list[Job] = []
    for lbvm in ctx.fleet.draining:
        draining_for = ctx.now - (lbvm.drain_requested_at or lbvm.state_since)
        if draining_for > limit:
            jobs.append(
                ForceTerminate(
                    reason=f"{lbvm.lbvm_id}: still draining {age_text(draining_for)} after the drain request "
                    f"(deregistration grace {drain.deregistration_grace_seconds} s + drain timeout "
                    f"{drain.timeout_seconds} s); terminating it directly",
                    lbvm_id=lbvm.lbvm_id,
                    end_reason=f"forced: still draining {age_text(draining_for)} after the drain request, past "
                    f"its grace and drain timeout of {bound} s",
                )
            )
    return jobs
