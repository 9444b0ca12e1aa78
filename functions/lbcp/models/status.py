"""Observed state as the API reports it (`status` of a load balancer)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from lbcp.models.agent import BackendHealth
from lbcp.models.base import StatusModel
from lbcp.models.config_rollout import ConfigRolloutStatus, ServedConfig
from lbcp.models.rollout import NewerImage, RolloutStatus
from lbcp.models.spec import EntryMode

__all__ = ["StatusModel"]  # re-exported: most models import it from here

# Phase of a load balancer as a whole.
#   Pending       accepted, not yet acted on by the reconciler
#   Provisioning  the reconciler is building the entry and the first LBVMs
#   Active        desired capacity is routable and the spec is observed
#   Updating      a newer generation is being rolled out
#   Degraded      fewer routable LBVMs than desired
#   Deleting      teardown in progress; the resource answers 404 when it ends
#   Failed        the reconciler cannot make progress (events say why)
Phase = Literal["Pending", "Provisioning", "Active", "Updating", "Degraded", "Deleting", "Failed"]

# Lifecycle of one LBVM (exact strings fixed by the design).
LbvmState = Literal["Launching", "Pending", "Routable", "Unroutable", "Draining", "Terminated"]

# Why an LBVM is being drained or replaced (machine-readable, in events too).
DrainReason = Literal["scale-in", "replace", "rollout", "delete", "unhealthy", "pending-timeout", "orphan"]


# Conditions (Kubernetes style): one per aspect of the load balancer, each True, False or Unknown with a
# reason from the vocabulary below and a sentence with the numbers. The phase is derived from them
# (``lbcp.reconcile.plan.conditions`` says how, and what each reason means).
ConditionType = Literal[
    "Ready", "EntryReady", "CapacityMet", "ConfigApplied", "RolloutProgressing", "ScalingLimited", "Degraded"
]
ConditionStatus = Literal["True", "False", "Unknown"]
ConditionReason = Literal[
    # Ready (when False, the reason of the first condition that keeps it from being Ready)
    "AsDesired",
    "Deleting",
    # EntryReady
    "EntryComplete",
    "EntryIncomplete",
    # CapacityMet
    "CapacityMet",
    "NoneDesired",
    "NoneRoutable",
    "LbvmsStarting",
    "LbvmsUnroutable",
    "BelowCapacity",
    # ConfigApplied
    "ConfigApplied",
    "ConfigHeldBack",
    "ConfigRollingOut",
    "ConfigPending",
    "NoRoutableLbvms",
    # RolloutProgressing
    "Replacing",
    "RolloutPaused",
    "RolloutWaiting",
    "RolloutComplete",
    "RolloutRejected",
    "RolloutEnded",
    "NoRollout",
    # ScalingLimited
    "AtMaximum",
    "AtMinimum",
    "MetricsMissing",
    "CoolingDown",
    "Stabilizing",
    "WarmingUp",
    "PoolShort",
    "MinPerZone",
    "WithinBounds",
    # Degraded (LbvmsUnroutable, BelowCapacity and EntryIncomplete as above)
    "AgentErrors",
    "ReconcileFailing",
    "LaunchesFailing",
    "AsExpected",
]


class Condition(StatusModel):
    type: ConditionType
    status: ConditionStatus
    reason: ConditionReason = Field(description="Why it has this status: CamelCase, from a fixed vocabulary.")
    message: str = Field(description="The same in a sentence, with the numbers.")
    last_transition_time: datetime = Field(
        description="When the status last changed (a new reason or message alone does not move it)."
    )


class LbvmStatus(StatusModel):
    lbvm_id: str | None = None
    instance_id: str | None = Field(default=None, description="Unset until the instance is launched.")
    subnet_id: str
    availability_zone: str | None = None
    state: LbvmState
    since: datetime | None = None
    config_version: str | None = None
    # Why it is there and why it is in its state: the planner's and the lifecycle's own sentences.
    launch_reason: str | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="Why it was launched (the reconciler's reason, as in its Launching event).",
    )
    drain_reason: DrainReason | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="Why it is draining or being replaced: scale-in, replace, rollout, delete, unhealthy, "
        "pending-timeout or orphan.",
    )
    end_reason: str | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="How its life ended (set once it is terminated, or forced to be).",
    )
    last_heartbeat_at: datetime | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="When its agent's last heartbeat was stored (stored at least every 30 s while the agent "
        "reports). Served from the LBVM records by GET of one load balancer; never part of the stored status, "
        "which must not change with every heartbeat.",
    )
    agent_error: str | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="The last error its agent reported (a proxy that failed to start, a config it refused).",
    )
    backends: list[BackendHealth] | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="Per backend, targets passing health checks as this LBVM's proxy sees them "
        "(absent where the proxy cannot tell: NGINX open source, a draining LBVM).",
    )


class EntryStatus(StatusModel):
    mode: EntryMode
    dns_name: str | None = None


class LocalEndpoint(StatusModel):
    listener_port: int = Field(description="The spec's listener port.")
    address: str = Field(description="host:port on this machine where the local entry listens for it.")


class EntryStatusView(EntryStatus):
    """The entry as the API serves it."""

    local_endpoints: list[LocalEndpoint] | None = Field(
        default=None,
        exclude_if=lambda value: value is None,  # absent, not null, where there is no local entry
        description="Local runtime only (make local): where a client connects, one per listener, through the "
        "local stand-in for the NLB. Absent in AWS, where clients use dnsName.",
    )


class LoadBalancerStatus(StatusModel):
    phase: Phase
    observed_generation: int = Field(ge=0)
    desired_capacity: int = Field(ge=0)
    entry: EntryStatus
    lbvms: list[LbvmStatus] = Field(default_factory=list)
    message: str | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, EntryReady, CapacityMet, ConfigApplied, RolloutProgressing, ScalingLimited and "
        "Degraded (empty until the reconciler first acts); the phase is derived from them.",
    )
    rollout: RolloutStatus | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="The current or last rollout (lbctl rollout history lists the earlier ones).",
    )
    newer_image: NewerImage | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="instance.imageId unset: AWS publishes a newer Amazon Linux 2023 image than some LBVMs run "
        "(rolled onto only with rollout.followLatestImage).",
    )
    config: ServedConfig | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="The config version LBVMs outside a config canary are told to run (the planner's decision).",
    )
    config_rollout: ConfigRolloutStatus | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="The current or last config rollout (a config change that needs no new instances, staged).",
    )
