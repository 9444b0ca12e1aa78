"""Capacity: as many LBVMs as desired, spread over the subnets, replacements within desired + rollout.maxSurge.

Routable and starting LBVMs count towards the desired capacity; Unroutable ones
do not: a replacement is launched at once, and if the sick one recovers, the
surplus is drained on a later tick. LBVMs the spec no longer describes still
serve, but are replaced (``roll``). In one tick the rule does one of: drain an
excess, launch what is missing, or rebalance the zones.
"""

from __future__ import annotations

from collections.abc import Sequence

from lbcp.logic.rollout_bounds import surge_count, unavailable_count
from lbcp.models.lbvm import Lbvm
from lbcp.models.rollout import LaunchTemplate
from lbcp.reconcile.jobs import Job, Launch, RequestDrain
from lbcp.reconcile.placement import subnets_for_launches
from lbcp.reconcile.plan.context import PlanContext
from lbcp.reconcile.plan.roll import Replacement, drain_replaced, replacements
from lbcp.scaling.victim import LbvmRef, Victim, draw_scale_in_victims


def capacity(ctx: PlanContext) -> list[Job]:
    spec = ctx.spec
    desired = ctx.record.status.desired_capacity
    leaving = ctx.leaving
    counted = [lbvm for lbvm in ctx.fleet.routable + ctx.fleet.starting if lbvm.lbvm_id not in leaving]
    why = replacements(spec, counted, ctx.rollout.template.description)
    outgoing = [lbvm for lbvm in counted if lbvm.lbvm_id in why]
    placed = [lbvm for lbvm in counted if lbvm.lbvm_id not in why]
    on_template = len(placed)
    held = _held_back(ctx, outgoing, why, on_template, desired)
    if held:
        # The canary's cap: these stay (they count as placed) until the rollout lets them go.
        outgoing = [lbvm for lbvm in outgoing if lbvm.lbvm_id not in held]
        placed = placed + [lbvm for lbvm in counted if lbvm.lbvm_id in held]

    jobs = drain_replaced(spec, desired, placed, outgoing, why, template=ctx.rollout.template.description)
    excess = len(placed) - desired
    if excess > 0:
        return jobs + _scale_in(ctx, placed, excess, desired)
    missing = desired - len(placed)
    if missing > 0:
        # Capacity that nothing live covers (a scale-out, a lost LBVM) is not a replacement:
        # maxSurge does not hold it back.
        uncovered = max(0, missing - len(outgoing) - _replacements_draining(ctx, jobs))
        launches = min(missing, launch_room(ctx, uncovered))
        return jobs + _launch(ctx, placed, outgoing, launches, desired=desired, on_template=on_template)
    if outgoing:
        return jobs  # rebalancing waits for the rollout
    return jobs + _rebalance(ctx, placed)


def launch_room(ctx: PlanContext, uncovered: int = 0) -> int:
    """How many launches fit: replacements within desired + maxSurge instances, as in a Deployment.

    Every instance that exists or is about to counts: alive instances (draining
    ones too: they cost as much), the instances of records not yet terminated
    (they may not be listed yet), and markers still waiting for their instance.
    ``uncovered`` launches (capacity nothing live covers: a scale-out, a lost
    LBVM) fit whatever is still draining. Nothing ever goes above the hard
    ceiling, capacity.max + maxSurge instances.
    """
    spec = ctx.spec
    desired = ctx.record.status.desired_capacity
    not_terminated = ctx.fleet.not_terminated
    in_flight = {lbvm.instance_id for lbvm in not_terminated if lbvm.instance_id}
    instances = len({i.instance_id for i in ctx.observed.instances if i.alive} | in_flight)
    instances += sum(1 for lbvm in not_terminated if lbvm.instance_id is None)
    surge = surge_count(spec.rollout, desired)
    room = max(desired + surge - instances, uncovered)
    return max(0, min(room, spec.capacity.max + surge - instances))


def _replacements_draining(ctx: PlanContext, drains: Sequence[Job]) -> int:
    """LBVMs draining because a rollout replaces them: the capacity they leave is a replacement's, within maxSurge."""
    earlier = sum(
        1
        for lbvm in ctx.fleet.draining
        if lbvm.drain_reason == "rollout"
        or (lbvm.drain_reason == "replace" and lbvm.subnet_id not in ctx.spec.subnet_ids)
    )
    return earlier + len(drains)


def _scale_in(ctx: PlanContext, placed: Sequence[Lbvm], excess: int, desired: int) -> list[Job]:
    refs = [LbvmRef(lbvm.lbvm_id, lbvm.subnet_id, lbvm.state) for lbvm in placed]
    by_id = {lbvm.lbvm_id: lbvm for lbvm in placed}
    jobs: list[Job] = []
    for drawn in draw_scale_in_victims(refs, excess, ctx.rng):
        victim = by_id[drawn.lbvm.lbvm_id]
        jobs.append(
            RequestDrain(
                reason=f"{victim.lbvm_id} in {victim.subnet_id}: {len(placed)} LBVMs for a desired capacity of "
                f"{desired}; draining the excess (keeping Availability Zones balanced); {_drawn_text(drawn)}",
                lbvm_id=victim.lbvm_id,
                drain_reason="scale-in",
                drawn_from=tuple(ref.lbvm_id for ref in drawn.drawn_from),
            )
        )
    return jobs


def _drawn_text(drawn: Victim) -> str:
    """How the victim was chosen: the seed policy draws at random, so that no LBVM is always the one kept."""
    pool = drawn.drawn_from
    if len(pool) == 1:
        return "the only candidate in the fullest zone"
    idle = " serving no traffic" if all(ref.state != "Routable" for ref in pool) else ""
    zones = "zone" if len({ref.zone for ref in pool}) == 1 else "zones"
    return f"drawn at random from the {len(pool)} LBVMs{idle} of the fullest {zones}"


def _held_back(
    ctx: PlanContext, outgoing: Sequence[Lbvm], why: dict[str, Replacement], on_template: int, desired: int
) -> set[str]:
    """Outgoing LBVMs a rollout's cap keeps for now: desired - max(cap, LBVMs on the template) of them.

    Only those replaced for their template (a dropped subnet is vacated anyway);
    routable ones first, then the youngest, so that the choice is stable from
    tick to tick and the oldest go first when the cap lifts.
    """
    cap = ctx.rollout.cap
    if cap is None:
        return set()
    keep = max(0, desired - max(cap, on_template))
    eligible = [lbvm for lbvm in outgoing if why[lbvm.lbvm_id].drain_reason == "rollout"]
    # The reverse of drain_replaced's order (oldest first), routable ones before the rest.
    youngest_first = sorted(eligible, key=lambda lbvm: lbvm.created_at)[::-1]
    youngest_first.sort(key=lambda lbvm: lbvm.state != "Routable")
    return {lbvm.lbvm_id for lbvm in youngest_first[:keep]}


def _launch(
    ctx: PlanContext,
    placed: Sequence[Lbvm],
    outgoing: Sequence[Lbvm],
    launches: int,
    *,
    desired: int,
    on_template: int,
) -> list[Job]:
    """Launch onto the fleet's template, up to the rollout's cap; beyond it, onto the one known healthy."""
    zones = _zones(ctx)
    decision = ctx.rollout
    why = _launch_why(placed, outgoing, desired, decision.template.description)
    onto_template = launches if decision.cap is None else max(0, min(launches, decision.cap - on_template))
    jobs: list[Job] = []
    for index, subnet_id in enumerate(subnets_for_launches(ctx.spec.subnet_ids, placed, launches)):
        template = decision.template if index < onto_template or decision.fallback is None else decision.fallback
        jobs.append(
            Launch(
                reason=f"launching an LBVM in {subnet_id}{_zone_text(zones.get(subnet_id))} on "
                f"{template.description}: {why}{_rollout_text(ctx, template)}",
                subnet_id=subnet_id,
                availability_zone=zones.get(subnet_id),
                template=template,
            )
        )
    return jobs


def _rollout_text(ctx: PlanContext, template: LaunchTemplate) -> str:
    rollout = ctx.rollout.rollout
    if rollout is None or not rollout.active:
        return ""
    if rollout.step in ("Canary", "Bake") and template == rollout.to_template:
        return f" (rollout {rollout.id}: canary {rollout.canary})"
    return f" (rollout {rollout.id}: {rollout.step or rollout.state})"


def _launch_why(placed: Sequence[Lbvm], outgoing: Sequence[Lbvm], desired: int, template: str) -> str:
    """Count what serves: during a rollout the LBVMs being replaced still carry the traffic."""
    # LBVMs a canary holds back are among the placed ones: in words they await replacement.
    described = [lbvm for lbvm in placed if lbvm.launch_template in (None, template)]
    old = [*outgoing, *(lbvm for lbvm in placed if lbvm.launch_template not in (None, template))]
    routable = sum(1 for lbvm in described if lbvm.state == "Routable")
    starting = len(described) - routable
    if not old:
        return f"{len(placed)} of {desired} desired LBVMs are routable ({routable}) or starting ({starting})"
    serving_old = sum(1 for lbvm in old if lbvm.state == "Routable")
    return (
        f"replacing LBVMs the spec no longer describes: {routable + serving_old} of {desired} desired LBVMs serve "
        f"({routable} as the spec describes, {serving_old} awaiting replacement), {starting} replacement(s) starting"
    )


def _rebalance(ctx: PlanContext, placed: Sequence[Lbvm]) -> list[Job]:
    """Rebalance, as Auto Scaling does: when the zones differ by more than one
    (a subnet was added, a zone lost LBVMs), launch one in the emptiest zone;
    the surplus that follows is drained from the fullest zone on a later tick.
    """
    spec = ctx.spec
    per_subnet = {subnet_id: 0 for subnet_id in spec.subnet_ids}
    for lbvm in placed:
        per_subnet[lbvm.subnet_id] += 1
    if max(per_subnet.values()) - min(per_subnet.values()) <= 1:
        return []
    if launch_room(ctx) > 0:
        zones = _zones(ctx)
        [subnet_id] = subnets_for_launches(spec.subnet_ids, placed, 1)
        return [
            Launch(
                reason=f"rebalancing Availability Zones: {_counts(per_subnet)}; launching one in {subnet_id}"
                f"{_zone_text(zones.get(subnet_id))}, then draining one from the fullest zone",
                subnet_id=subnet_id,
                availability_zone=zones.get(subnet_id),
                # The fleet's template (a followed image is pinned in it), not the spec's words.
                template=ctx.rollout.template,
            )
        ]
    if unavailable_count(spec.rollout, ctx.record.status.desired_capacity) > 0:
        # No room to surge: drain from the fullest zone first; the launch into the
        # emptiest follows once it is gone (within maxUnavailable).
        refs = [LbvmRef(lbvm.lbvm_id, lbvm.subnet_id, lbvm.state) for lbvm in placed]
        [drawn] = draw_scale_in_victims(refs, 1, ctx.rng)
        return [
            RequestDrain(
                reason=f"rebalancing Availability Zones: {_counts(per_subnet)}; no room to launch first "
                f"(maxSurge {spec.rollout.max_surge}), so draining {drawn.lbvm.lbvm_id} from the fullest zone "
                f"first; {_drawn_text(drawn)}",
                lbvm_id=drawn.lbvm.lbvm_id,
                drain_reason="scale-in",
                drawn_from=tuple(ref.lbvm_id for ref in drawn.drawn_from),
            )
        ]
    return []


def _counts(per_subnet: dict[str, int]) -> str:
    return ", ".join(f"{count} in {subnet_id}" for subnet_id, count in per_subnet.items())


def _zones(ctx: PlanContext) -> dict[str, str]:
    return {lbvm.subnet_id: lbvm.availability_zone for lbvm in ctx.fleet.records if lbvm.availability_zone}


def _zone_text(zone: str | None) -> str:
    return f" ({zone})" if zone else ""
