"""The protocol between the LBVM agent and the control plane: one contract, one place.

The agent calls two IAM-authorized routes with its instance role:

- ``GET /v1/agent/config?loadBalancerId=...&lbvmId=...`` -> ``AgentConfig``: the load balancer's
  spec and its version (the spec's generation); the agent renders and applies
  it, then reports the version it applied.
- ``POST /v1/agent/heartbeat`` with ``Heartbeat`` -> ``HeartbeatReply``: every
  ``heartbeatIntervalSeconds`` (from the spec's lifecycle section). The reply
  tells the agent which config version to run and whether to drain.

An instance may report only for itself: the control plane checks that the
caller's role session is the instance named in the heartbeat (EC2 instance
profiles name their sessions after the instance id).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from lbcp.models.spec import LoadBalancerSpec
from lbcp.models.status import StatusModel

AGENT_CONFIG_PATH = "/v1/agent/config"
AGENT_HEARTBEAT_PATH = "/v1/agent/heartbeat"

# starting  booted, proxy not yet serving a validated config
# ready     serving the applied config version
# draining  refusing new connections, finishing in-flight ones
# drained   no connections left (or the drain deadline passed)
# failed    nothing is serving (the proxy is down); see ``error``. A refused new config
#           is not a failure while the last good one still serves: the agent stays
#           ready, reports the error, and its applied version stays behind.
AgentState = Literal["starting", "ready", "draining", "drained", "failed"]


class AgentConfig(StatusModel):
    load_balancer_id: str
    lbvm_id: str
    config_version: int = Field(ge=1, description="The spec generation this config comes from.")
    spec: LoadBalancerSpec


class Heartbeat(StatusModel):
    lbvm_id: str
    instance_id: str
    load_balancer_id: str
    boot_id: str = Field(description="Random per agent start: tells a restart from a late packet.")
    sequence: int = Field(ge=0, description="Increases by one per heartbeat within a boot.")
    sent_at: datetime
    state: AgentState
    active_connections: int = Field(ge=0)
    applied_config_version: int | None = None
    error: str | None = Field(default=None, max_length=1024)
    agent_version: str = Field(max_length=64)


class HeartbeatReply(StatusModel):
    desired_config_version: int = Field(description="Below 1: no config yet.")
    drain: bool = False
    drain_deadline: datetime | None = None
    heartbeat_interval_seconds: int
