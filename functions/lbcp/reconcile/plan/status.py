"""The status a plan leaves behind: phase, counts and the LBVMs, as the API serves them."""

from __future__ import annotations

from lbcp.models.agent import parse_backend_health_text
from lbcp.models.config_rollout import served_config_version
from lbcp.models.lbvm import Lbvm
from lbcp.models.status import EntryStatus, LbvmStatus, LoadBalancerStatus, Phase
from lbcp.reconcile.jobs import Launch
from lbcp.reconcile.plan.context import PlanContext
from lbcp.reconcile.plan.roll import replacements


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
        phase = "Deleting"
        left = len(fleet.not_terminated)
        message = f"tearing down: {left} LBVM(s) left" if left else "tearing down the entry"
    else:
        config = ctx.config
        # Outdated: not running the version it is told (a staged config tells some LBVMs an older one).
        outdated = [lbvm for lbvm in serving if lbvm.applied_config_version != _told(ctx, lbvm)]
        staying = [lbvm for lbvm in fleet.routable + fleet.starting if lbvm.lbvm_id not in leaving]
        to_replace = len(replacements(record.spec, staying, ctx.rollout.template.description))
        if routable >= desired and ctx.observed.entry.ready and not outdated and not to_replace:
            phase = "Active"
        elif routable == 0:
            phase = "Provisioning"
        elif routable >= desired and (outdated or to_replace):
            phase = "Updating"
        else:
            phase = "Degraded"
        message = f"{routable} of {desired} LBVMs routable"
        starting = len([lbvm for lbvm in fleet.starting if lbvm.lbvm_id not in leaving]) + launching
        unroutable = len([lbvm for lbvm in fleet.unroutable if lbvm.lbvm_id not in leaving])
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
        rollout=ctx.rollout.rollout,
        config=ctx.config.served if ctx.config is not None else record.status.config,
        config_rollout=ctx.config.rollout if ctx.config is not None else record.status.config_rollout,
    )
