"""Finalizers: a load balancer being deleted is drained, its entry torn down, then its records removed."""

from __future__ import annotations

from lbcp.reconcile.jobs import Job, RemoveLoadBalancer, RequestDrain, TeardownEntry
from lbcp.reconcile.plan.context import PlanContext


def finalize(ctx: PlanContext) -> list[Job]:
    """One step of ordered teardown per tick, each step waiting for the one before to be done.

    Drains first (every LBVM, lost or not), then the entry once nothing is left
    that could still need it, and the records last, once nothing of the load
    balancer exists any more: the record goes only when nothing is left.
    """
    fleet, observed = ctx.fleet, ctx.observed
    handled = ctx.leaving
    jobs: list[Job] = [
        RequestDrain(
            reason=f"{lbvm.lbvm_id}: the load balancer is being deleted",
            lbvm_id=lbvm.lbvm_id,
            drain_reason="delete",
            instance_lost=lbvm.instance_id is not None and not ctx.instance_alive(lbvm.instance_id),
        )
        for lbvm in fleet.live
        if lbvm.lbvm_id not in handled
    ]
    if jobs or handled or fleet.draining:
        return jobs  # entry teardown waits until every LBVM has drained
    if any(instance.alive for instance in observed.instances) or observed.network_interfaces:
        return []  # the orphans rule removes them first
    if observed.entry.ready or observed.entry.resources_left:
        return [TeardownEntry(reason="every LBVM is terminated; removing the entry")]
    return [
        RemoveLoadBalancer(
            reason="teardown complete: no LBVM, instance, interface or entry resource is left",
            lbvm_ids=tuple(lbvm.lbvm_id for lbvm in fleet.records),
        )
    ]
