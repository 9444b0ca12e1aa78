"""The plan preview (pure): a ReconcilePlan in words, and the desired state against the observed one, field by field.

``GET /v1/load-balancers/{id}/plan`` runs the real planner on a fresh
observation and hands the result here; nothing is acted on. The diff uses the
same rules as the planner where they matter (LBVMs counted are the Routable and
starting ones nobody asked to leave; zones are balanced within one), so that a
field out of sync is one the planner would act on, now or once a grace passes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from lbcp.models.inspection import FieldDiff, PlannedJob, PlanView, RolloutNoteView
from lbcp.models.lbvm import Lbvm
from lbcp.models.resource import LoadBalancerRecord
from lbcp.models.rollout import LaunchTemplate, template_of
from lbcp.reconcile.jobs import Job, Launch, RequestDrain
from lbcp.reconcile.observed import LoadBalancerView
from lbcp.reconcile.plan import ReconcilePlan
from lbcp.reconcile.plan.context import Fleet


def plan_view(
    record: LoadBalancerRecord,
    lbvms: Sequence[Lbvm],
    observed: LoadBalancerView,
    decided: ReconcilePlan,
    now: datetime,
) -> PlanView:
    template = decided.template or template_of(record.spec)
    diff = field_diff(record, lbvms, observed, template)
    return PlanView(
        load_balancer_id=record.id,
        generation=record.generation,
        planned_at=now,
        phase=record.status.phase,
        planned_phase=decided.status.phase,
        message=decided.status.message,
        template=template.description,
        rollout=decided.status.rollout,
        noop=decided.is_noop(record.status),
        jobs=[planned_job(job, record) for job in decided.jobs],
        rollout_notes=[RolloutNoteView(reason=n.reason, message=n.message, type=n.type) for n in decided.notes],
        diff=diff,
        in_sync=all(field.in_sync for field in diff),
    )


def planned_job(job: Job, record: LoadBalancerRecord) -> PlannedJob:
    template = job.template or template_of(record.spec) if isinstance(job, Launch) else None
    drawn = job.drawn_from if isinstance(job, RequestDrain) and job.drawn_from else None
    return PlannedJob(
        action=type(job).__name__,
        event_reason=job.event_reason,
        reason=job.reason,
        warning=job.warning,
        lbvm_id=getattr(job, "lbvm_id", None),
        subnet_id=getattr(job, "subnet_id", None),
        availability_zone=getattr(job, "availability_zone", None),
        instance_id=getattr(job, "instance_id", None),
        network_interface_id=getattr(job, "network_interface_id", None),
        template=template.description if template else None,
        drain_reason=getattr(job, "drain_reason", None),
        drawn_from=list(drawn) if drawn else None,
    )


def field_diff(
    record: LoadBalancerRecord, lbvms: Sequence[Lbvm], observed: LoadBalancerView, template: LaunchTemplate
) -> list[FieldDiff]:
    fleet = Fleet(lbvms)
    deleting = record.deletion_requested_at is not None
    desired = 0 if deleting else record.status.desired_capacity
    counted = fleet.routable + fleet.starting
    diff = [_capacity(fleet, desired, deleting)]
    diff += _zones(record, counted, desired)
    diff.append(_instances(fleet, observed))
    if (registrations := _registrations(record, fleet, observed)) is not None:
        diff.append(registrations)
    for lbvm in sorted(fleet.live, key=lambda lbvm: lbvm.lbvm_id):
        diff.append(_config_version(lbvm, record.generation))
        diff.append(_launch_template(lbvm, template))
    diff += _entry(observed, deleting)
    return diff


def _capacity(fleet: Fleet, desired: int, deleting: bool) -> FieldDiff:
    counted = len(fleet.routable) + len(fleet.starting)
    parts = [f"{len(fleet.routable)} routable", f"{len(fleet.starting)} starting"]
    parts += [f"{len(fleet.unroutable)} unroutable", f"{len(fleet.draining)} draining"]
    return FieldDiff(
        field="capacity",
        desired=f"{desired}" + (" (deleting)" if deleting else ""),
        observed=str(counted),
        in_sync=counted == desired,
        note="routable and starting LBVMs count; " + ", ".join(parts),
    )


def _zones(record: LoadBalancerRecord, counted: Sequence[Lbvm], desired: int) -> list[FieldDiff]:
    """Per subnet, as many LBVMs as an even spread gives it: zones may differ by one (the planner's tolerance)."""
    subnets = list(record.spec.subnet_ids)
    per_subnet = Counter(lbvm.subnet_id for lbvm in counted)
    zones = {lbvm.subnet_id: lbvm.availability_zone for lbvm in counted if lbvm.availability_zone}
    low, extra = divmod(desired, len(subnets)) if subnets else (0, 0)
    high = low + (1 if extra else 0)
    diff = []
    for subnet_id in subnets + sorted(set(per_subnet) - set(subnets)):
        wanted = (low, high) if subnet_id in subnets else (0, 0)
        count = per_subnet.get(subnet_id, 0)
        zone = f" ({zones[subnet_id]})" if subnet_id in zones else ""
        diff.append(
            FieldDiff(
                field=f"lbvms[{subnet_id}]",
                desired=str(wanted[0]) if wanted[0] == wanted[1] else f"{wanted[0]}-{wanted[1]}",
                observed=str(count),
                in_sync=wanted[0] <= count <= wanted[1],
                note=f"subnet{zone}" if subnet_id in subnets else f"subnet{zone} no longer in the spec",
            )
        )
    return diff


def _instances(fleet: Fleet, observed: LoadBalancerView) -> FieldDiff:
    """Every alive instance carrying our tags belongs to an LBVM that is not terminated, and the other way round."""
    expected = {lbvm.instance_id for lbvm in fleet.not_terminated if lbvm.instance_id}
    alive = {instance.instance_id for instance in observed.instances if instance.alive}
    unaccounted, missing = sorted(alive - expected), sorted(expected - alive)
    notes = []
    if unaccounted:
        notes.append("no LBVM record: " + ", ".join(unaccounted))
    if missing:
        notes.append("not alive in EC2: " + ", ".join(missing))
    return FieldDiff(
        field="instances",
        desired=str(len(expected)),
        observed=str(len(alive)),
        in_sync=not unaccounted and not missing,
        note="; ".join(notes) or None,
    )


def _registrations(record: LoadBalancerRecord, fleet: Fleet, observed: LoadBalancerView) -> FieldDiff | None:
    """Routable LBVMs are in the entry; starting ones may be (the lifecycle registers before Routable); no other."""
    entry = observed.entry
    if not entry.ready:
        return None  # nothing to register with yet: the entry's own line says so
    if record.spec.entry.mode == "pool":
        required = {lbvm.instance_id for lbvm in fleet.routable if lbvm.instance_id}
        allowed = required | {lbvm.instance_id for lbvm in fleet.starting if lbvm.instance_id}
        found = entry.registered_instance_ids
    else:
        required = {lbvm.lbvm_id for lbvm in fleet.routable}
        allowed = required | {lbvm.lbvm_id for lbvm in fleet.starting}
        found = frozenset(entry.dns_record_ips) if entry.dns_record_ips is not None else None
    if found is None:
        return FieldDiff(
            field="registrations", desired=_ids(required), observed="not read", in_sync=True,
            note="registrations were not read in this observation",
        )  # fmt: skip
    missing, extra = sorted(required - found), sorted(found - allowed)
    notes = ([f"missing: {', '.join(missing)}"] if missing else []) + ([f"extra: {', '.join(extra)}"] if extra else [])
    what = "targets of the entry" if record.spec.entry.mode == "pool" else "DNS records"
    return FieldDiff(
        field="registrations",
        desired=_ids(required),
        observed=_ids(found),
        in_sync=not missing and not extra,
        note="; ".join([what, *notes]),
    )


def _config_version(lbvm: Lbvm, generation: int) -> FieldDiff:
    applied = lbvm.applied_config_version
    return FieldDiff(
        field=f"configVersion[{lbvm.lbvm_id}]",
        desired=str(generation),
        observed=str(applied) if applied is not None else "none reported",
        in_sync=applied == generation,
        note=f"{lbvm.state}; the spec generation its proxy runs",
    )


def _launch_template(lbvm: Lbvm, template: LaunchTemplate) -> FieldDiff:
    # A record from before templates were recorded is never rolled for it.
    return FieldDiff(
        field=f"launchTemplate[{lbvm.lbvm_id}]",
        desired=template.description,
        observed=lbvm.launch_template or "not recorded",
        in_sync=lbvm.launch_template in (None, template.description),
    )


def _entry(observed: LoadBalancerView, deleting: bool) -> list[FieldDiff]:
    entry = observed.entry
    if deleting:
        return [
            FieldDiff(
                field="entry", desired="torn down", observed=f"{entry.resources_left} resource(s) left",
                in_sync=entry.resources_left == 0,
            )
        ]  # fmt: skip
    diff = [
        FieldDiff(
            field="entry",
            desired="complete",
            observed="complete" if entry.ready else "incomplete",
            in_sync=entry.ready,
            note=f"DNS name {entry.dns_name}" if entry.dns_name else None,
        )
    ]
    diff += [FieldDiff(field="entry.drift", desired="as the spec says", observed=d, in_sync=False) for d in entry.drift]
    return diff


def _ids(ids: frozenset[str] | set[str]) -> str:
    return ", ".join(sorted(ids)) or "none"
