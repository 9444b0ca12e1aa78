"""The planner: desired state + recorded LBVMs + observed world + now -> a ReconcilePlan (pure).

Level-triggered: the plan depends only on what is true now, never on what
happened in earlier ticks, so a lost event or a crashed run is healed by the
next tick. Most of the LBVM lifecycle (pending timeout, heartbeat loss,
recovery, draining) is driven by each LBVM's own state machine; the planner
decides how many LBVMs there should be, where, and repairs what drifted.

The plan is an ordered list of rules, one per module, the way Karpenter
composes its disruption methods. Each rule sees the jobs of the rules before
it, so an LBVM that one rule takes out is neither counted nor drained again by
the next.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from lbcp.models.config_rollout import ConfigRolloutStatus
from lbcp.models.lbvm import Lbvm
from lbcp.models.resource import LoadBalancerRecord
from lbcp.models.rollout import LaunchTemplate, RolloutStatus, template_of
from lbcp.models.status import LoadBalancerStatus
from lbcp.reconcile.backoff import RetryStreak
from lbcp.reconcile.jobs import Job
from lbcp.reconcile.observed import LoadBalancerView
from lbcp.reconcile.plan.backstops import stuck_lifecycles, stuck_lifecycles_while_deleting
from lbcp.reconcile.plan.capacity import capacity
from lbcp.reconcile.plan.config_rollout import ConfigDecision, decide_config_rollout
from lbcp.reconcile.plan.context import Fleet, PlanContext, PlannerSettings, Rule
from lbcp.reconcile.plan.drift import incomplete_entry, registration_drift
from lbcp.reconcile.plan.finalize import finalize
from lbcp.reconcile.plan.images import as_followed, followed_image, newer_image
from lbcp.reconcile.plan.orphans import orphans
from lbcp.reconcile.plan.rollout import RolloutDecision, RolloutNote, decide_rollout
from lbcp.reconcile.plan.status import status
from lbcp.reconcile.plan.vanished import vanished_instances

__all__ = ["DELETING", "RUNNING", "PlannerSettings", "ReconcilePlan", "plan"]

# A load balancer in service.
RUNNING: tuple[Rule, ...] = (
    # The entry first: launches need its security group, registrations its target groups.
    incomplete_entry,
    # LBVMs whose instance vanished behind our back are taken out and replaced at once.
    vanished_instances,
    # Lifecycles stuck past their own timeouts get a backstop (drain, restart, or force).
    stuck_lifecycles,
    # Launch what is missing, drain the excess, roll what the spec no longer describes,
    # rebalance the zones: after the rules above, so that it counts only LBVMs that stay.
    capacity,
    # Registrations and DNS records follow the LBVM states.
    registration_drift,
    # Whatever carries our tags and no live LBVM accounts for.
    orphans,
)

# A load balancer being deleted: ordered teardown (finalizers).
DELETING: tuple[Rule, ...] = (
    # Stuck lifecycles would block the drains forever; a marker never launched just goes.
    stuck_lifecycles_while_deleting,
    # Drain everything, then tear down the entry, then remove the records.
    finalize,
    # Orphans go before the entry does.
    orphans,
)


@dataclass(frozen=True)
class ReconcilePlan:
    load_balancer_id: str
    jobs: tuple[Job, ...]
    status: LoadBalancerStatus
    # Rollout transitions decided in this plan (events), and rollouts (template or config) that ended without
    # being status.rollout or status.configRollout: for the history.
    notes: tuple[RolloutNote, ...] = ()
    ended_rollouts: tuple[RolloutStatus | ConfigRolloutStatus, ...] = ()
    # What the fleet converges on in this plan (the rollout's decision): LBVMs on another template are replaced.
    template: LaunchTemplate | None = None

    def is_noop(self, stored: LoadBalancerStatus) -> bool:
        return not self.jobs and self.status == stored


def plan(
    record: LoadBalancerRecord,
    lbvms: Sequence[Lbvm],
    observed: LoadBalancerView,
    now: datetime,
    *,
    rng: random.Random,
    settings: PlannerSettings | None = None,
    retry: RetryStreak | None = None,
) -> ReconcilePlan:
    deleting = record.deletion_requested_at is not None
    config: ConfigDecision | None = None
    if deleting:
        decision = RolloutDecision(record.status.rollout, template_of(record.spec))
    else:
        # The image the fleet follows (rollout.followLatestImage), and the LBVMs as compared with it.
        following = followed_image(record.spec, observed.latest_image, record.status.rollout)
        lbvms = as_followed(lbvms, observed.instances, record.spec, following)
        decision = decide_rollout(
            record.status.rollout,
            record.rollout_control,
            record.spec,
            generation=record.generation,
            desired=record.status.desired_capacity,
            lbvms=lbvms,
            now=now,
            load_balancer_id=record.id,
            latest_image=following,
            alarms=observed.alarms,
        )
        config = decide_config_rollout(
            record.status.config_rollout,
            record.status.config,
            record.spec,
            generation=record.generation,
            desired=record.status.desired_capacity,
            lbvms=lbvms,
            now=now,
            template_rolling=decision.rollout is not None and decision.rollout.active,
            fleet_proxy=decision.rollout.from_template.proxy if decision.held_back and decision.rollout else None,
            template=decision.template.description,
            load_balancer_id=record.id,
            control=record.config_rollout_control,
        )
    ctx = PlanContext(
        record, Fleet(lbvms), observed, now, settings or PlannerSettings(), rng, decision, config, retry=retry
    )
    for rule in DELETING if deleting else RUNNING:
        ctx.jobs += rule(ctx)
    notes = decision.notes + (config.notes if config is not None else ())
    result = status(ctx)
    if not deleting:
        drift, said = newer_image(
            record.status.newer_image,
            record.spec,
            lbvms,
            observed.instances,
            latest=observed.latest_image,
            decision=decision,
            now=now,
        )
        result = result.model_copy(update={"newer_image": drift})
        notes += said
    ended = decision.ended + (config.ended if config is not None else ())
    return ReconcilePlan(record.id, tuple(ctx.jobs), result, notes, ended, template=decision.template)
