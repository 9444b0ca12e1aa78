"""Drift of the entry: missing parts are created; registrations and DNS records follow the LBVM states."""

from __future__ import annotations

from lbcp.reconcile.jobs import DeregisterTarget, EnsureEntry, Job, RegisterTarget, RepairEntryDrift
from lbcp.reconcile.plan.context import PlanContext


def incomplete_entry(ctx: PlanContext) -> list[Job]:
    """What is missing is created; what drifted from the spec is converged back to it (the spec is the truth)."""
    entry = ctx.observed.entry
    if not entry.ready:
        return [EnsureEntry(reason="the entry is incomplete; creating what is missing")]
    if entry.drift:
        return [RepairEntryDrift(reason="entry drift: " + "; ".join(entry.drift) + "; converging it to the spec")]
    return []


def registration_drift(ctx: PlanContext) -> list[Job]:
    """Routable LBVMs missing from the entry are registered; whatever else is in it is taken out.

    Only LBVMs Routable for longer than the registration grace are repaired (the
    lifecycle registers them itself, and its call races with ours), and only on
    ticks whose observation verified the registrations (None otherwise).
    """
    fleet, entry, mode = ctx.fleet, ctx.observed.entry, ctx.spec.entry.mode
    settled = [lbvm for lbvm in fleet.routable if ctx.now - lbvm.state_since > ctx.settings.registration_grace]
    # The lifecycle registers a Pending LBVM before calling it Routable: leave those alone.
    allowed = {lbvm.lbvm_id for lbvm in fleet.routable + fleet.starting}
    jobs: list[Job] = []
    if mode == "pool" and entry.registered_instance_ids is not None:
        registered = entry.registered_instance_ids
        jobs += [
            RegisterTarget(
                reason=f"{lbvm.lbvm_id} is Routable but {lbvm.instance_id} is not registered with the entry",
                lbvm_id=lbvm.lbvm_id,
            )
            for lbvm in settled
            if lbvm.instance_id and lbvm.instance_id not in registered
        ]
        allowed_instances = {lbvm.instance_id for lbvm in fleet.records if lbvm.lbvm_id in allowed}
        jobs += [
            DeregisterTarget(
                reason=f"{instance_id} is registered with the entry but is not a routable LBVM",
                instance_id=instance_id,
            )
            for instance_id in sorted(registered - allowed_instances)
        ]
    if mode == "dns" and entry.dns_record_ips is not None:
        records = entry.dns_record_ips
        # Presence, not the address: which address is published (private or
        # public, by scheme) is the entry's business, and register() fixes it.
        jobs += [
            RegisterTarget(reason=f"{lbvm.lbvm_id} is Routable but has no DNS record", lbvm_id=lbvm.lbvm_id)
            for lbvm in settled
            if lbvm.instance_id and lbvm.lbvm_id not in records
        ]
        jobs += [
            DeregisterTarget(reason=f"a DNS record points at {lbvm_id}, which is not routable", lbvm_id=lbvm_id)
            for lbvm_id in sorted(set(records) - allowed)
        ]
    return jobs
