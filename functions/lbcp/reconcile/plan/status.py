"""The status a plan leaves behind: conditions, the phase derived from them, counts and the LBVMs."""

from __future__ import annotations

from typing import Any

from lbcp.models.agent import parse_backend_health_text
from lbcp.models.config_rollout import served_config_version
from lbcp.models.lbvm import Lbvm
from lbcp.models.status import EntryStatus, LbvmStatus, LoadBalancerStatus, Phase
from lbcp.reconcile.jobs import Launch
from lbcp.reconcile.plan.conditions import Facts, deleting, drafts, phase_of, stamped
from lbcp.reconcile.plan.context import PlanContext
from lbcp.reconcile.plan.roll import replacements
from lbcp.scaling.settings import settings_from_spec


def _told(ctx: PlanContext, lbvm: Lbvm) -> int:
    config = ctx.config
    if config is None:
        return ctx.record.generation
    return served_config_version(
        config.served,
        config.rollout,
        ctx.record.generation,
        lbvm.lbvm_id,
        template_rollout=ctx.rollout.rollout,
        launch_template=lbvm.launch_template,
        applied=lbvm.applied_config_version,
    )


def _never_served(lbvm: Lbvm) -> bool:
    """Ended before it ever served: EC2 refused its launch (a failure, no heartbeat ever), or no healthy
    heartbeat came in time (an image or agent that never comes up)."""
    if lbvm.state != "Terminated":
        return False
    return lbvm.drain_reason == "pending-timeout" or (lbvm.failure is not None and lbvm.last_heartbeat_at is None)


def _failed_launches(ctx: PlanContext) -> list[Lbvm]:
    """This generation's LBVMs that ended without serving, launched after the last one that served."""
    generation = ctx.record.generation
    ours = [lbvm for lbvm in ctx.fleet.records if lbvm.launched_generation == generation]
    served = [lbvm.created_at for lbvm in ours if not _never_served(lbvm) and lbvm.last_heartbeat_at is not None]
    newest = max(served, default=None)
    failed = [lbvm for lbvm in ours if _never_served(lbvm) and (newest is None or lbvm.created_at > newest)]
    return sorted(failed, key=lambda lbvm: lbvm.created_at)


def _ending(lbvm: Lbvm, ctx: PlanContext) -> str:
    if lbvm.failure is not None:
        return f"{lbvm.lbvm_id}: {lbvm.failure}"
    timeout = ctx.record.spec.lifecycle.pending_timeout_seconds
    return f"{lbvm.lbvm_id}: no healthy heartbeat within {timeout} s of its launch"


def _failure_facts(ctx: PlanContext) -> dict[str, Any]:
    """What says the fleet cannot converge: the reconciler's failure streak, if it is about this
    generation (a new spec starts from a clean slate), and the launches that keep ending unserved."""
    facts: dict[str, Any] = {}
    launches = _failed_launches(ctx)
    if launches:
        facts["failed_launches"] = [lbvm.created_at for lbvm in launches]
        facts["last_launch_failure"] = _ending(launches[-1], ctx)
    streak = ctx.retry
    if streak is not None and streak.generation == ctx.record.generation:
        facts |= {
            "failures": streak.failures,
            "failing_since": streak.first_failed_at,
            "last_error": streak.last_error,
            "next_attempt_at": streak.not_before,
        }
    return facts


def status(ctx: PlanContext) -> LoadBalancerStatus:
    record, fleet = ctx.record, ctx.fleet
    desired = record.status.desired_capacity
    # This plan's drains take effect now, whatever the records still say.
    leaving = ctx.leaving
    serving = [lbvm for lbvm in fleet.routable if lbvm.lbvm_id not in leaving]
    routable = len(serving)
    draining = len(fleet.draining) + len(leaving)
    launching = sum(1 for job in ctx.jobs if isinstance(job, Launch))
    phase: Phase
    if record.deletion_requested_at is not None:
        left = len(fleet.not_terminated)
        message = f"tearing down: {left} LBVM(s) left" if left else "tearing down the entry"
        parts = deleting(message)
        phase = phase_of(parts, deleting=True)
    else:
        config = ctx.config
        # Outdated: not running the version it is told (a staged config tells some LBVMs an older one).
        outdated = [lbvm for lbvm in serving if lbvm.applied_config_version != _told(ctx, lbvm)]
        staying = [lbvm for lbvm in fleet.routable + fleet.starting if lbvm.lbvm_id not in leaving]
        to_replace = len(replacements(record.spec, staying, ctx.rollout.template.description))
        starting_since = [lbvm.state_since for lbvm in fleet.starting if lbvm.lbvm_id not in leaving]
        unroutable_since = [lbvm.state_since for lbvm in fleet.unroutable if lbvm.lbvm_id not in leaving]
        told = [_told(ctx, lbvm) for lbvm in serving]
        facts = Facts(
            desired=desired,
            routable=routable,
            entry_ready=ctx.observed.entry.ready,
            starting=starting_since,
            launching=launching,
            unroutable=unroutable_since,
            draining=draining,
            outdated=len(outdated),
            told_version=max(set(told), key=told.count) if told else None,
            to_replace=to_replace,
            template=ctx.rollout.template.description,
            rollout=ctx.rollout.rollout,
            rollout_held_back=ctx.rollout.held_back,
            config_rollout=config.rollout if config is not None else None,
            config_held_back=config is not None and config.held_back,
            generation=record.generation,
            agent_errors=[(lbvm.lbvm_id, lbvm.agent_error) for lbvm in serving if lbvm.agent_error],
            # The scaler's memory comes with the record: ScalingLimited costs no read (conditions.py).
            scaling=record.scaling,
            capacity_min=record.spec.capacity.min,
            capacity_max=record.spec.capacity.max,
            cooldown=settings_from_spec(record.spec).cooldown,
            **_failure_facts(ctx),
        )
        parts = drafts(facts)
        phase = phase_of(parts, deleting=False)
        message = f"{routable} of {desired} LBVMs routable"
        starting = len(starting_since) + launching
        unroutable = len(unroutable_since)
        if starting:
            message += f", {starting} starting"
        if unroutable:
            message += f", {unroutable} unroutable"
        if draining:
            message += f", {draining} draining"
        if outdated:
            message += f", {len(outdated)} on an older config"
        if to_replace:
            message += f", {to_replace} to replace"
        if ctx.rollout.held_back and ctx.rollout.rollout is not None:
            rejected = ctx.rollout.rollout
            message += (
                f"; the spec asks for {rejected.to_template.description}, which rollout {rejected.id} rejected: "
                f"running {rejected.from_template.description}"
            )
        if config is not None and config.held_back and config.rollout is not None:
            held = config.rollout
            message += (
                f"; the spec asks for config version {record.generation}, whose config config rollout {held.id} "
                f"rejected (as version {held.to_version}): running config version {held.from_version}"
            )
    return LoadBalancerStatus(
        phase=phase,
        observed_generation=record.generation,
        desired_capacity=desired,
        entry=EntryStatus(mode=record.spec.entry.mode, dns_name=ctx.observed.entry.dns_name),
        lbvms=[
            LbvmStatus(
                lbvm_id=lbvm.lbvm_id,
                instance_id=lbvm.instance_id,
                subnet_id=lbvm.subnet_id,
                availability_zone=lbvm.availability_zone,
                state=lbvm.state,
                since=lbvm.state_since,
                config_version=str(lbvm.applied_config_version) if lbvm.applied_config_version else None,
                launch_reason=lbvm.launch_reason,
                drain_reason=lbvm.drain_reason,
                end_reason=lbvm.end_reason,
                agent_error=lbvm.agent_error,
                backends=parse_backend_health_text(lbvm.backend_health) if lbvm.backend_health is not None else None,
            )
            for lbvm in sorted(fleet.not_terminated, key=lambda lbvm: (lbvm.subnet_id, lbvm.created_at))
        ],
        message=message,
        conditions=stamped(parts, record.status.conditions, ctx.now),
        rollout=ctx.rollout.rollout,
        config=ctx.config.served if ctx.config is not None else record.status.config,
        config_rollout=ctx.config.rollout if ctx.config is not None else record.status.config_rollout,
    )
