"""What every planner rule is given: the records, the observation, the time, and the jobs planned before it."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

from lbcp.models.lbvm import Lbvm
from lbcp.models.resource import LoadBalancerRecord
from lbcp.models.spec import LoadBalancerSpec
from lbcp.reconcile.backoff import RetryStreak
from lbcp.reconcile.jobs import ForceTerminate, Job, RequestDrain
from lbcp.reconcile.observed import LoadBalancerView, ObservedInstance
from lbcp.reconcile.plan.config_rollout import ConfigDecision
from lbcp.reconcile.plan.rollout import RolloutDecision


@dataclass(frozen=True)
class PlannerSettings:
    # A marker may exist this long without an execution before the execution is (re)started.
    launch_grace: timedelta = timedelta(seconds=60)
    # EC2 lists a new instance a little after RunInstances: do not call it lost before this.
    instance_visibility_grace: timedelta = timedelta(seconds=60)
    # Registrations race with the lifecycle's own; only repair ones older than this.
    registration_grace: timedelta = timedelta(seconds=30)
    # How far past its own timeouts a lifecycle may run before the backstop acts.
    stuck_margin: timedelta = timedelta(seconds=120)
    # An orphan must be this old before it is removed (it may be a launch in flight).
    orphan_grace: timedelta = timedelta(minutes=5)


@dataclass
class Fleet:
    """The LBVM records of one load balancer, sorted by what the rules need."""

    records: Sequence[Lbvm]
    routable: list[Lbvm] = field(default_factory=list)
    starting: list[Lbvm] = field(default_factory=list)  # Launching, Pending
    unroutable: list[Lbvm] = field(default_factory=list)
    draining: list[Lbvm] = field(default_factory=list)  # Draining, or a drain requested
    terminated: list[Lbvm] = field(default_factory=list)

    def __post_init__(self) -> None:
        for lbvm in self.records:
            if lbvm.state == "Terminated":
                self.terminated.append(lbvm)
            elif lbvm.state == "Draining" or lbvm.drain_requested_at is not None:
                self.draining.append(lbvm)
            elif lbvm.state == "Routable":
                self.routable.append(lbvm)
            elif lbvm.state == "Unroutable":
                self.unroutable.append(lbvm)
            else:
                self.starting.append(lbvm)

    @property
    def live(self) -> list[Lbvm]:
        """Routable, starting and unroutable: the LBVMs nobody has asked to leave yet."""
        return self.routable + self.starting + self.unroutable

    @property
    def not_terminated(self) -> list[Lbvm]:
        return [lbvm for lbvm in self.records if lbvm.state != "Terminated"]


@dataclass
class PlanContext:
    record: LoadBalancerRecord
    fleet: Fleet
    observed: LoadBalancerView
    now: datetime
    settings: PlannerSettings
    rng: random.Random
    # What the fleet converges on (the rollout's decision for this tick).
    rollout: RolloutDecision
    # Which config version each LBVM is told (the config rollout's decision for this tick); None: as before,
    # the current generation to everyone (a load balancer being deleted).
    config: ConfigDecision | None = None
    # What the rules before this one planned: a rule must not count, drain or
    # terminate again an LBVM that an earlier rule already takes out.
    jobs: list[Job] = field(default_factory=list)
    # The load balancer's failure streak, if its last attempts failed (``lbcp.reconcile.backoff``); None: the
    # last attempt did not fail. An input only: no rule reads it yet.
    retry: RetryStreak | None = None

    @property
    def spec(self) -> LoadBalancerSpec:
        return self.record.spec

    @cached_property
    def instances(self) -> dict[str, ObservedInstance]:
        return {instance.instance_id: instance for instance in self.observed.instances}

    @property
    def leaving(self) -> set[str]:
        """LBVMs that a job planned so far drains or terminates."""
        return {job.lbvm_id for job in self.jobs if isinstance(job, (RequestDrain, ForceTerminate))}

    def instance_alive(self, instance_id: str | None) -> bool:
        instance = self.instances.get(instance_id or "")
        return instance is not None and instance.alive


# A rule reads the context and returns the jobs it wants; ``plan`` runs them in order.
Rule = Callable[[PlanContext], list[Job]]


def seconds(value: int) -> timedelta:
    return timedelta(seconds=value)


def age_text(age: timedelta) -> str:
    return f"{int(age.total_seconds())} s"
