"""Rolling replacement of LBVMs the spec no longer describes (a dropped subnet, another launch template)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lbcp.logic.rollout_bounds import unavailable_count
from lbcp.models.lbvm import DrainReason, Lbvm
from lbcp.models.spec import LoadBalancerSpec
from lbcp.reconcile.jobs import Job, RequestDrain
from lbcp.reconcile.launch import launch_template


@dataclass(frozen=True)
class Replacement:
    """Why a serving or starting LBVM must give way to a new one."""

    why: str
    drain_reason: DrainReason


def replacements(spec: LoadBalancerSpec, lbvms: Sequence[Lbvm], template: str | None = None) -> dict[str, Replacement]:
    """LBVMs the spec no longer describes: in a subnet it dropped, or launched from another template.

    ``template`` is what the fleet converges on: the spec's, unless a rollout
    says otherwise (a canary holds the rest back, a rollback returns to the old
    one, a rejected template is not rolled onto). Records written before LBVMs
    recorded their template (None) are never rolled for it.
    """
    template = template or launch_template(spec)
    wanted_by_spec = launch_template(spec)
    result = {}
    for lbvm in lbvms:
        if lbvm.subnet_id not in spec.subnet_ids:
            result[lbvm.lbvm_id] = Replacement(f"subnet {lbvm.subnet_id} is no longer in the spec", "replace")
        elif lbvm.launch_template is not None and lbvm.launch_template != template:
            asks = "the spec now asks for" if template == wanted_by_spec else "the fleet returns to"
            result[lbvm.lbvm_id] = Replacement(f"launched as {lbvm.launch_template}; {asks} {template}", "rollout")
    return result


def drain_replaced(
    spec: LoadBalancerSpec,
    desired: int,
    placed: Sequence[Lbvm],
    outgoing: Sequence[Lbvm],
    why: dict[str, Replacement],
    *,
    template: str,
) -> list[Job]:
    """Drain the LBVMs being replaced as fast as availability allows.

    The rule is a Deployment's: routable LBVMs never fall below
    ``desired - maxUnavailable``. A replacement counts only once it is
    routable, so an outgoing LBVM keeps serving while the LBVM that takes its
    place boots. Outgoing LBVMs that serve nothing yet go at once. Their
    replacements are launched by the capacity rule, within maxSurge.
    """
    routable_placed = sum(1 for lbvm in placed if lbvm.state == "Routable")
    serving_outgoing = [lbvm for lbvm in outgoing if lbvm.state == "Routable"]
    floor = max(0, desired - unavailable_count(spec.rollout, desired))
    budget = max(0, routable_placed + len(serving_outgoing) - floor)
    # Subnets the spec dropped go first, then the oldest LBVMs.
    order = sorted(serving_outgoing, key=lambda lbvm: (why[lbvm.lbvm_id].drain_reason != "replace", lbvm.created_at))
    leaving = [lbvm for lbvm in outgoing if lbvm.state != "Routable"] + order[:budget]
    # Outgoing LBVMs a canary holds back count as placed for availability, not in the words.
    described = sum(1 for lbvm in placed if lbvm.state == "Routable" and lbvm.launch_template in (None, template))
    to_replace = len(outgoing) + sum(1 for lbvm in placed if lbvm.launch_template not in (None, template))
    progress = (
        f"{described} of {desired} LBVMs routable as the spec describes, {to_replace} to replace "
        f"(maxSurge {spec.rollout.max_surge}, maxUnavailable {spec.rollout.max_unavailable})"
    )
    return [
        RequestDrain(
            reason=f"{lbvm.lbvm_id}: {why[lbvm.lbvm_id].why}; replacing it: {progress}",
            lbvm_id=lbvm.lbvm_id,
            drain_reason=why[lbvm.lbvm_id].drain_reason,
        )
        for lbvm in leaving
    ]
