"""The control plane's own metrics: names, dimensions and units that the handlers emit and the stack graphs.

The handlers write them as CloudWatch embedded metric format (EMF) log lines
through Powertools Metrics (``lbcp.adapters.app_metrics``); CloudWatch turns
each line into datapoints, so publishing costs no API call. The stack's
alarms and dashboard (``stacks.monitoring``) name the same constants.

Every metric carries the ``service`` dimension (Powertools adds it: the
function's service name); a few have one more, always drawn from a small,
closed set (phases, job kinds, directions). Each metric and dimension set is
one custom metric at $0.30 a month, so nothing is dimensioned by load
balancer: these are fleet-wide series whose count does not grow with it.
"""

from __future__ import annotations

from typing import Final, get_args

from lbcp.models.metrics import NAMESPACE
from lbcp.models.status import Phase

__all__ = ["NAMESPACE"]

# The dimension Powertools adds to every metric, valued with the emitting function's service name.
DIMENSION_SERVICE: Final = "service"
SERVICE_RECONCILER: Final = "lbcp-reconciler"
SERVICE_SCALER: Final = "lbcp-scaler"
SERVICE_API: Final = "lbcp-api"
# The agent endpoint's function (the agents' heartbeats and config requests).
SERVICE_AGENT_API: Final = "lbcp-agent-api"

# --- the reconciler, once per tick ---------------------------------------------------------
# How long the tick took (observe, plan, act), without the function's cold start.
METRIC_TICK_DURATION: Final = "ReconcileDuration"  # Milliseconds
METRIC_TICK_LOAD_BALANCERS: Final = "LoadBalancersReconciled"  # Count: those the tick planned
METRIC_TICK_ACTED: Final = "LoadBalancersActedOn"  # Count: those it changed (jobs or status)
METRIC_TICK_LOCKED: Final = "LoadBalancersLocked"  # Count: left to another run holding the lease
# Per job kind (the job's class name: Launch, RequestDrain, RegisterTarget, ...), only when non-zero.
METRIC_JOBS_DONE: Final = "JobsDone"  # Count
METRIC_JOBS_FAILED: Final = "JobsFailed"  # Count
DIMENSION_JOB_KIND: Final = "JobKind"
# Gauges of the whole fleet, from full (scheduled) ticks only: a tick for a few
# load balancers (stream, EC2 events) would report a part as if it were all.
METRIC_LOAD_BALANCERS: Final = "LoadBalancers"  # Count per phase, every phase every tick (zeros too)
DIMENSION_PHASE: Final = "Phase"
PHASES: Final[tuple[str, ...]] = get_args(Phase)
METRIC_ROLLOUTS_ACTIVE: Final = "RolloutsActive"  # Count: template and config rollouts Progressing or Paused

# --- the scaler, once per run --------------------------------------------------------------
METRIC_SCALING_DECISIONS: Final = "ScalingDecisions"  # Count per direction, both every run (zeros too)
DIMENSION_DIRECTION: Final = "Direction"
DIRECTIONS: Final = ("out", "in")
# Load balancers with a metric absent or stale in a subnet where LBVMs serve: they cannot scale in.
METRIC_SCALER_METRICS_MISSING: Final = "LoadBalancersMissingMetrics"  # Count, every run (zeros too)

# --- the agent endpoint, per heartbeat ----------------------------------------------------
METRIC_HEARTBEATS: Final = "HeartbeatsReceived"  # Count
# Agent requests that came through the HTTP API's agent routes, not the function URL: LBVMs
# launched before the agent endpoint. At 0 for long enough, the routes can go (stacks.api).
METRIC_AGENT_REQUESTS_VIA_HTTP_API: Final = "AgentRequestsViaHttpApi"  # Count
