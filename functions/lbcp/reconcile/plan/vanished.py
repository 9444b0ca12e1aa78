"""LBVMs whose instance vanished behind the control plane's back are replaced at once."""

from __future__ import annotations

from lbcp.reconcile.jobs import Job, RequestDrain
from lbcp.reconcile.plan.context import PlanContext


def vanished_instances(ctx: PlanContext) -> list[Job]:
    jobs: list[Job] = []
    for lbvm in ctx.fleet.live:
        if lbvm.instance_id is None:
            continue
        instance = ctx.instances.get(lbvm.instance_id)
        if instance is None and ctx.now - lbvm.state_since < ctx.settings.instance_visibility_grace:
            continue  # EC2 may not list a new instance yet
        if instance is not None and instance.alive:
            continue
        seen = f"is {instance.state}" if instance else "no longer exists"
        jobs.append(
            RequestDrain(
                reason=f"{lbvm.lbvm_id}: instance {lbvm.instance_id} {seen} (not terminated by the control "
                "plane); replacing it",
                lbvm_id=lbvm.lbvm_id,
                drain_reason="replace",
                instance_lost=True,
                deregister_now=True,
            )
        )
    return jobs
