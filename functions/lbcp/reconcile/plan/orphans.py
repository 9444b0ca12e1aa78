"""Instances and interfaces that carry this load balancer's tags but that no live LBVM accounts for."""

from __future__ import annotations

from lbcp.reconcile.jobs import DeleteNetworkInterface, Job, TerminateInstance
from lbcp.reconcile.plan.context import PlanContext


def orphans(ctx: PlanContext) -> list[Job]:
    owners = {lbvm.lbvm_id: lbvm for lbvm in ctx.fleet.records}
    jobs: list[Job] = []
    for instance in ctx.observed.instances:
        if not instance.alive:
            continue
        owner = owners.get(instance.lbvm_id or "")
        if owner is not None and owner.state != "Terminated":
            continue
        if instance.launched_at is not None and ctx.now - instance.launched_at < ctx.settings.orphan_grace:
            continue  # it may be a launch in flight whose record the listing has not caught up with
        what = f"LBVM {instance.lbvm_id} is terminated" if owner else "no LBVM record claims it"
        jobs.append(
            TerminateInstance(
                reason=f"instance {instance.instance_id} carries this load balancer's tags but {what}",
                instance_id=instance.instance_id,
            )
        )
    for interface in ctx.observed.network_interfaces:
        if interface.status != "available":
            continue  # attached: it goes with its instance
        owner = owners.get(interface.lbvm_id or "")
        if owner is not None and owner.state not in ("Terminated", "Draining") and owner.drain_requested_at is None:
            continue
        jobs.append(
            DeleteNetworkInterface(
                reason=f"network interface {interface.network_interface_id} is detached and no live LBVM uses it",
                network_interface_id=interface.network_interface_id,
            )
        )
    return jobs
