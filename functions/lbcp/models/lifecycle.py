"""The input of an LBVM's lifecycle execution and of its drain execution.

The reconciler builds ``LifecycleInput`` when it launches an LBVM and starts
the lifecycle state machine (``statemachines/lbvm-lifecycle.asl.json``) with it,
in an execution named after the LBVM, so a retry can never launch twice. The
lifecycle starts the drain state machine (``statemachines/lbvm-drain.asl.json``)
with ``DrainInput``. Field names are the JSON (camelCase) names the ASL reads.
"""

from __future__ import annotations

from pydantic import Field

from lbcp.models.status import StatusModel


class Tag(StatusModel):
    key: str = Field(alias="Key")
    value: str = Field(alias="Value")


class LaunchSettings(StatusModel):
    """What RunInstances needs besides the network interface (created first, in ``subnetId``)."""

    image_id: str
    instance_type: str
    user_data: str = Field(description="Base64, as RunInstances takes it.")
    instance_profile_arn: str | None = None
    tags: list[Tag] = Field(description="Owner tags plus the user's: on the ENI, the instance and its volumes.")


class Timeouts(StatusModel):
    pending_seconds: int
    unhealthy_seconds: int
    recovery_seconds: int = Field(description="How long an Unroutable LBVM may take to come back.")


class DrainSettings(StatusModel):
    connection_threshold: int
    timeout_seconds: int
    poll_seconds: int = 5
    grace_seconds: int = Field(default=0, description="The spec's drain.deregistrationGraceSeconds.")


class LifecycleInput(StatusModel):
    lbvm_id: str
    load_balancer_id: str
    table_name: str
    subnet_id: str
    security_group_ids: list[str]
    launch: LaunchSettings
    timeouts: Timeouts
    drain: DrainSettings
    tasks_function_arn: str
    drain_state_machine_arn: str


class DrainInput(StatusModel):
    lbvm_id: str
    load_balancer_id: str
    table_name: str
    reason: str
    drain: DrainSettings
    tasks_function_arn: str
