"""One load-balancer VM as the control plane records it.

The record is written by three parties, each owning different fields:

- the reconciler creates it (the "pending marker", before anything is
  launched) and requests drains;
- the LBVM's lifecycle state machine moves ``state`` along and fills in the
  instance, its network interface and address;
- the heartbeat handler stores what the agent last reported.

Every write is a conditional update on the fields it depends on, so the
parties never overwrite each other.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field

from lbcp.models.agent import MetricsSample
from lbcp.models.status import DrainReason, LbvmState, StatusModel

__all__ = ["DrainReason"]  # re-exported: defined with the status, which shows it

LBVM_ID_PATTERN = r"^lbvm-[0-9a-f]{12}$"

# An agent's report is stored when something changed, and at least this often
# otherwise: a stored heartbeat may be this much older than the agent's last one.
# One metrics period: the minute's sample is a change and stores the report anyway,
# so a serving LBVM costs one write a minute (a write of its ~2 KB record; none in
# the indexes, which it changes no key of: bench/steady_hour.py). Liveness does not wait on
# it (Step Functions' task heartbeats do); the reconciler's backstop allows for it.
HEARTBEAT_PERSIST_INTERVAL = timedelta(seconds=60)

# Metrics samples kept on the record (one per minute, newest): the scaler reads the complete minutes of
# its lookback (lbcp.adapters.metrics.DEFAULT_LOOKBACK, 5) and the minute in progress may hold one more.
# A count, not a duration, so that the item's size is bounded whatever the agent's period.
RECENT_METRICS_KEPT = 6

# Which callback the lifecycle execution is waiting on (see statemachines/).
#   first-heartbeat  Pending: the agent's first heartbeat completes it
#   heartbeats       Routable: every heartbeat resets its heartbeat clock; a drain request completes it
#   recovery         Unroutable: a heartbeat completes it (the LBVM is back)
CallbackKind = Literal["first-heartbeat", "heartbeats", "recovery"]


LIVE_STATES: frozenset[str] = frozenset({"Launching", "Pending", "Routable", "Unroutable"})


class LbvmConflict(Exception):
    """The record changed since it was read (or does not exist): every writer updates conditionally."""


class Lbvm(StatusModel):
    lbvm_id: str
    load_balancer_id: str
    subnet_id: str
    availability_zone: str | None = None
    state: LbvmState
    state_since: datetime
    version: int = Field(ge=1, description="Incremented on every write; the condition of the next one.")
    launched_generation: int = Field(ge=1, description="The spec generation this LBVM was launched with.")
    # What its instance was launched from (reconcile.launch.launch_template): a spec
    # that now asks for something else rolls the LBVM. None on records written before
    # the field existed, which are never rolled for it.
    launch_template: str | None = None
    launch_reason: str
    created_at: datetime

    # Filled in by the lifecycle execution.
    execution_arn: str | None = None
    instance_id: str | None = None
    network_interface_id: str | None = None
    private_ip: str | None = None

    # The callback the lifecycle execution waits on (task tokens are secrets: never in the API).
    callback_kind: CallbackKind | None = None
    callback_token: str | None = None

    # Reported by the agent.
    last_heartbeat_at: datetime | None = None
    agent_state: str | None = None
    active_connections: int | None = None
    applied_config_version: int | None = None
    boot_id: str | None = None
    heartbeat_sequence: int | None = None
    agent_error: str | None = None
    # Per backend, targets passing health checks (lbcp.models.agent.backend_health_text);
    # None where the proxy cannot tell.
    backend_health: str | None = None
    # HTTP answers since the agent's boot (``boot_id``), as of the last stored heartbeat (at most
    # HEARTBEAT_PERSIST_INTERVAL old): a rollout's gate compares canaries' 5xx with the others'.
    http_requests: int | None = None
    http_server_errors: int | None = None
    # Config preloading (agents that announce it): the version rendered and validated next to the one
    # served, or why the version it was told to preload failed. None/False for agents without it.
    preloads: bool = False
    preload_version: int | None = None
    preload_error: str | None = None
    # The agent's last metrics samples (at most RECENT_METRICS_KEPT, oldest first), which the scaler
    # averages per subnet and minute (lbcp.adapters.metrics). Stored as one compact text attribute.
    recent_metrics: tuple[MetricsSample, ...] = ()

    def preloaded(self, version: int) -> bool:
        """Its agent reports ``version`` rendered and validated, ready to switch to."""
        return self.preload_version == version and self.preload_error is None

    # Drain and end of life.
    drain_requested_at: datetime | None = None
    drain_reason: DrainReason | None = None
    drain_deadline: datetime | None = None
    # Draining, it still accepts new connections until then (the entry's deregistration catching up).
    accepting_until: datetime | None = None
    terminated_at: datetime | None = None
    end_reason: str | None = None
    # The lifecycle's last failure ("launch step failed (Lbcp.LaunchFailed: ...)"), when one ended it.
    failure: str | None = None

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES and self.drain_requested_at is None
