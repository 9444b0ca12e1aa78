"""The protocol between the LBVM agent and the control plane: one contract, one place.

The agent calls two IAM-authorized routes with its instance role:

- ``GET /v1/agent/config?loadBalancerId=...&lbvmId=...`` -> ``AgentConfig``: the load balancer's
  spec and its version (the spec's generation); the agent renders and applies
  it, then reports the version it applied.
- ``POST /v1/agent/heartbeat`` with ``Heartbeat`` -> ``HeartbeatReply``: every
  ``heartbeatIntervalSeconds`` (from the spec's lifecycle section). The reply
  tells the agent which config version to run and whether to drain.

Both sides read tolerantly (unknown fields are dropped), and what an agent can
do beyond the first protocol it announces in ``capabilities``: the control
plane sends a newer reply field only to an agent that said it understands it,
because agents from before the tolerant reply refuse a reply with a field they
do not know. ``metrics``: once per ``PUBLISH_PERIOD_SECONDS`` the agent measures its CPU, memory and
active connections (``MetricsSample``) and sends the sample with its next heartbeat, and again with the
following ones until one is answered (at most ``MAX_HEARTBEAT_SAMPLES``); the control plane keeps the
last few on the LBVM's record for the scaler (``lbcp.models.lbvm.RECENT_METRICS_KEPT``) and emits them
for the users' graphs, once per ``periodEnd``. ``preload``: told ``preloadConfigVersion``, the agent fetches that
version (``&version=N``), renders and validates it next to the one it serves,
and reports how it went (``preload``: the version, and an error if it failed); a staged config
change waits for every such LBVM before any of them switches.

An instance may report only for itself: the control plane checks that the
caller's role session is the instance named in the heartbeat (EC2 instance
profiles name their sessions after the instance id).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import ConfigDict, Field

from lbcp.models.base import StatusModel
from lbcp.models.spec import MAX_BACKENDS, BackendName, LoadBalancerSpec

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

# What an agent announces it can do (``Heartbeat.capabilities``); unknown ones are ignored.
CAPABILITY_PRELOAD = "preload"
AGENT_CAPABILITIES: tuple[str, ...] = (CAPABILITY_PRELOAD,)


class AgentConfig(StatusModel):
    load_balancer_id: str
    lbvm_id: str
    config_version: int = Field(ge=1, description="The spec generation this config comes from.")
    spec: LoadBalancerSpec


class BackendHealth(StatusModel):
    """One spec backend as this LBVM's proxy sees it through its active health checks."""

    name: BackendName
    healthy_targets: int = Field(ge=0, description="Targets passing the backend's health check.")
    targets: int = Field(ge=0)

    @property
    def unavailable(self) -> bool:
        return self.targets > 0 and self.healthy_targets == 0


def backend_health_text(backends: list[BackendHealth]) -> str:
    """``app=2/2,db=0/1``, by name: one compact, comparable value to store on the LBVM's record."""
    return ",".join(f"{b.name}={b.healthy_targets}/{b.targets}" for b in sorted(backends, key=lambda b: b.name))


def parse_backend_health_text(text: str) -> list[BackendHealth]:
    result = []
    for part in filter(None, text.split(",")):
        name, _, counts = part.partition("=")
        healthy, _, targets = counts.partition("/")
        result.append(BackendHealth(name=name, healthy_targets=int(healthy), targets=int(targets)))
    return result


class HttpResponses(StatusModel):
    """HTTP requests this LBVM's proxy answered since its agent started (its ``bootId``), and those with a 5xx.

    Counted over every proxy worker, old ones included, so a reload does not reset it.
    """

    requests: int = Field(ge=0)
    server_errors: int = Field(ge=0, description="Answers with a 5xx status (the proxy's own, or a backend's).")


# Samples one heartbeat may carry: those of the periods whose heartbeats failed, newest kept.
MAX_HEARTBEAT_SAMPLES = 5


class MetricsSample(StatusModel):
    """One metrics period of an LBVM: what its agent measured, with the end of the period it covers.

    ``cpu`` is the machine's mean utilisation over the whole period (not an instant), ``memory`` and
    ``activeConnections`` the values at its end (lbcp.models.metrics names them for CloudWatch).
    ``periodEnd`` identifies the sample: a heartbeat that repeats one is stored (and emitted) once.
    """

    period_end: datetime = Field(description="When the period ended (the agent's clock); identifies the sample.")
    cpu: float = Field(ge=0, le=100, description="Mean CPU utilisation over the period, percent.")
    memory: float = Field(ge=0, le=100, description="Memory utilisation at the period's end, percent.")
    active_connections: int = Field(ge=0, description="The proxy's active connections at the period's end.")

    def stored(self) -> MetricsSample:
        """As an LBVM's record keeps it: UTC, whole milliseconds, percentages to a hundredth.

        What the storage's compact text holds exactly (``lbcp.dal.lbvms.encode_samples``), so a sample
        read back equals the one written.
        """
        moment = self.period_end if self.period_end.tzinfo is not None else self.period_end.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
        return self.model_copy(
            update={
                "period_end": moment.replace(microsecond=moment.microsecond // 1000 * 1000),
                "cpu": round(self.cpu, 2),
                "memory": round(self.memory, 2),
            }
        )


class Heartbeat(StatusModel):
    # A tolerant reader: an agent newer than its control plane (a stack rolled back under running LBVMs)
    # may send fields this version does not know. They are dropped, not refused: refusing would make
    # every LBVM of a newer agent look dead. Known fields are still validated strictly.
    model_config = ConfigDict(**{**StatusModel.model_config, "extra": "ignore"})

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
    backends: list[BackendHealth] | None = Field(
        default=None,
        max_length=MAX_BACKENDS,
        description="Per spec backend, what the proxy's active health checks see; null where the proxy "
        "cannot tell (NGINX open source has no active checks) or before a config serves.",
    )
    responses: HttpResponses | None = Field(
        default=None,
        description="HTTP answers since the agent started; null where the proxy cannot count 5xx "
        "(NGINX's stub status has no status codes) or serves no HTTP listener.",
    )
    capabilities: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="What this agent can do beyond the first protocol (preload); unknown names are ignored.",
    )
    preload: PreloadReport | None = Field(
        default=None, description="How the version it was told to preload went (preload capability only)."
    )
    metrics: list[MetricsSample] = Field(
        default_factory=list,
        max_length=MAX_HEARTBEAT_SAMPLES,
        # Absent, not [], when there is none: most heartbeats carry no sample.
        exclude_if=lambda value: not value,
        description="The metrics periods that ended since the agent's last answered heartbeat, oldest first "
        "(absent from agents before it; once a minute otherwise).",
    )

    @property
    def preloads(self) -> bool:
        return CAPABILITY_PRELOAD in self.capabilities


class PreloadReport(StatusModel):
    """A config version rendered and validated next to the one served, or why it could not be."""

    version: int = Field(ge=1)
    error: str | None = Field(default=None, max_length=1024, description="Unset: ready to switch to.")


class HeartbeatReply(StatusModel):
    # Tolerant, as the heartbeat is: a newer control plane may add fields (it sends them only to agents
    # that announce the capability, since agents from before this refuse what they do not know).
    model_config = ConfigDict(**{**StatusModel.model_config, "extra": "ignore"})

    desired_config_version: int = Field(description="Below 1: no config yet.")
    drain: bool = False
    drain_deadline: datetime | None = None
    heartbeat_interval_seconds: int
    preload_config_version: int | None = Field(
        default=None,
        exclude_if=lambda value: value is None,  # absent, not null: an agent without preload refuses the key
        description="Only to agents with the preload capability: fetch, render and validate this version now "
        "(a staged config change), without serving it yet.",
    )
