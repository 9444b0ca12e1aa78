"""Why things are as they are: one LBVM's record and history, as the API serves them.

Read-only views built from the records; nothing here is stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import ConfigDict, Field

from lbcp.models.agent import BackendHealth, parse_backend_health_text
from lbcp.models.events import Event
from lbcp.models.lbvm import CallbackKind, Lbvm
from lbcp.models.rollout import RolloutStatus
from lbcp.models.status import DrainReason, LbvmState, StatusModel


def execution_console_url(execution_arn: str) -> str | None:
    """The Step Functions console page of an execution (its region is in its ARN)."""
    parts = execution_arn.split(":")
    if len(parts) < 8 or parts[2] != "states" or parts[5] != "execution":
        return None
    region = parts[3]
    return f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"


class LbvmDetail(StatusModel):
    """One LBVM: why it exists, why it is in its state, and what happened to it."""

    model_config = ConfigDict(defer_build=True)

    lbvm_id: str
    load_balancer_id: str
    subnet_id: str
    availability_zone: str | None = None
    state: LbvmState
    state_since: datetime
    created_at: datetime
    launched_generation: int = Field(description="The spec generation it was launched with.")
    launch_template: str | None = Field(default=None, description="What its instance was launched from.")
    launch_reason: str = Field(description="Why it was launched (the reconciler's reason).")
    execution_arn: str | None = Field(default=None, description="Its lifecycle execution (Step Functions).")
    execution_console_url: str | None = Field(
        default=None, description="The Step Functions console page of its lifecycle execution."
    )
    instance_id: str | None = None
    network_interface_id: str | None = None
    private_ip: str | None = None
    waiting_for: CallbackKind | None = Field(
        default=None, description="The callback its lifecycle execution waits on, if any."
    )
    last_heartbeat_at: datetime | None = None
    agent_state: str | None = None
    active_connections: int | None = None
    applied_config_version: int | None = Field(default=None, description="The spec generation its proxy runs.")
    agent_error: str | None = None
    backends: list[BackendHealth] | None = None
    drain_requested_at: datetime | None = None
    drain_reason: DrainReason | None = None
    drain_deadline: datetime | None = None
    terminated_at: datetime | None = None
    end_reason: str | None = None
    events: list[Event] = Field(description="Its events (by LBVM id or instance id), newest first.")
    events_truncated: bool = Field(
        description="True when older events of the load balancer were not searched (or more matched than listed)."
    )

    @classmethod
    def of(cls, lbvm: Lbvm, events: Sequence[Event], truncated: bool) -> LbvmDetail:
        # Never the callback token: it is a secret that completes the execution's wait.
        return cls(
            lbvm_id=lbvm.lbvm_id,
            load_balancer_id=lbvm.load_balancer_id,
            subnet_id=lbvm.subnet_id,
            availability_zone=lbvm.availability_zone,
            state=lbvm.state,
            state_since=lbvm.state_since,
            created_at=lbvm.created_at,
            launched_generation=lbvm.launched_generation,
            launch_template=lbvm.launch_template,
            launch_reason=lbvm.launch_reason,
            execution_arn=lbvm.execution_arn,
            execution_console_url=execution_console_url(lbvm.execution_arn) if lbvm.execution_arn else None,
            instance_id=lbvm.instance_id,
            network_interface_id=lbvm.network_interface_id,
            private_ip=lbvm.private_ip,
            waiting_for=lbvm.callback_kind,
            last_heartbeat_at=lbvm.last_heartbeat_at,
            agent_state=lbvm.agent_state,
            active_connections=lbvm.active_connections,
            applied_config_version=lbvm.applied_config_version,
            agent_error=lbvm.agent_error,
            backends=parse_backend_health_text(lbvm.backend_health) if lbvm.backend_health is not None else None,
            drain_requested_at=lbvm.drain_requested_at,
            drain_reason=lbvm.drain_reason,
            drain_deadline=lbvm.drain_deadline,
            terminated_at=lbvm.terminated_at,
            end_reason=lbvm.end_reason,
            events=list(events),
            events_truncated=truncated,
        )


class PlannedJob(StatusModel):
    """One job the reconciler would run now, with the reason it would record."""

    action: str = Field(description="The kind of job: Launch, RequestDrain, RegisterTarget, EnsureEntry, ...")
    event_reason: str = Field(description="The reason word of the event it would write.")
    reason: str
    warning: bool = False
    lbvm_id: str | None = None
    subnet_id: str | None = None
    availability_zone: str | None = None
    instance_id: str | None = None
    network_interface_id: str | None = None
    template: str | None = Field(default=None, description="What a launch would run.")
    drain_reason: DrainReason | None = None
    drawn_from: list[str] | None = Field(
        default=None,
        description="A scale-in victim is drawn at random from these LBVMs: the reconciler's own draw may pick "
        "another of them.",
    )


class RolloutNoteView(StatusModel):
    reason: str
    message: str
    type: str


class FieldDiff(StatusModel):
    """One field of the desired state against what is observed."""

    field: str = Field(
        description="capacity, lbvms[subnet], instances, registrations, configVersion[lbvm], launchTemplate[lbvm], "
        "entry or entry.drift"
    )
    desired: str
    observed: str
    in_sync: bool
    note: str | None = None


class PlanView(StatusModel):
    """What the reconciler would do now and why: the planner run on a fresh observation, with nothing acted on."""

    model_config = ConfigDict(defer_build=True)

    load_balancer_id: str
    generation: int
    planned_at: datetime
    phase: str = Field(description="The stored phase.")
    planned_phase: str = Field(description="The phase the plan would leave.")
    message: str | None = Field(default=None, description="The status message the plan would leave.")
    template: str | None = Field(default=None, description="What the fleet converges on now (the rollout's choice).")
    rollout: RolloutStatus | None = None
    noop: bool = Field(description="True when the reconciler would do nothing and write nothing.")
    jobs: list[PlannedJob]
    rollout_notes: list[RolloutNoteView] = Field(description="Rollout transitions the plan would record.")
    diff: list[FieldDiff]
    in_sync: bool = Field(description="Every field of the diff is in sync.")
