"""The metrics LBVM agents measure and the scaler reads: one contract, one place.

Every agent measures, once per ``PUBLISH_PERIOD_SECONDS``, its CPU and memory
utilisation and its proxy's active connections (``lbcp.models.agent.MetricsSample``)
and sends them with its next heartbeat. The heartbeat handler keeps the last
few on the LBVM's record, which the scaler reads (one DynamoDB query per load
balancer: ``lbcp.adapters.metrics``), and writes each as CloudWatch metrics in
embedded metric format, for the users' graphs: the names below in ``NAMESPACE``
with the ``LoadBalancerId`` dimension only. CloudWatch averages the LBVMs' datapoints
of one minute into the load balancer's mean. That is three custom metrics per
load balancer ($0.30 each a month); per subnet it would be three per subnet,
and the per-subnet values the scaler needs are on the records anyway.
"""

from __future__ import annotations

from typing import Final, Literal

NAMESPACE: Final = "lbcp"
PUBLISH_PERIOD_SECONDS: Final = 60

DIMENSION_LOAD_BALANCER: Final = "LoadBalancerId"

METRIC_CPU: Final = "CPUUtilization"  # percent, 0-100
METRIC_MEMORY: Final = "MemoryUtilization"  # percent, 0-100
METRIC_ACTIVE_CONNECTIONS: Final = "ActiveConnections"  # count per LBVM

MetricName = Literal["CPUUtilization", "MemoryUtilization", "ActiveConnections"]
UNITS: Final[dict[str, str]] = {
    METRIC_CPU: "Percent",
    METRIC_MEMORY: "Percent",
    METRIC_ACTIVE_CONNECTIONS: "Count",
}

# The spec's names for them (``scaling.metrics.<name>``).
SPEC_METRIC_NAMES: Final[dict[str, str]] = {
    "cpu": METRIC_CPU,
    "memory": METRIC_MEMORY,
    "activeConnections": METRIC_ACTIVE_CONNECTIONS,
}


# The consistency checker's findings, one series per kind (orphan, drift, leak, stuck).
METRIC_CONSISTENCY_FINDINGS: Final = "ConsistencyFindings"
DIMENSION_FINDING_KIND: Final = "Kind"
