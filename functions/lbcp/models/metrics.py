"""The metrics LBVM agents publish and the scaler reads: one contract, one place.

Every agent publishes, once per ``PUBLISH_PERIOD_SECONDS``, its CPU and memory
utilisation and its proxy's active connections, with the dimensions below.
CloudWatch aggregates datapoints that share a metric and dimension set, so the
scaler's per-period Average over (LoadBalancerId, SubnetId) is the mean over
the LBVMs of that load balancer in that subnet, without per-instance metrics.
"""

from __future__ import annotations

from typing import Final, Literal

NAMESPACE: Final = "lbcp"
PUBLISH_PERIOD_SECONDS: Final = 60

DIMENSION_LOAD_BALANCER: Final = "LoadBalancerId"
DIMENSION_SUBNET: Final = "SubnetId"

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


def dimensions(load_balancer_id: str, subnet_id: str) -> list[dict[str, str]]:
    return [
        {"Name": DIMENSION_LOAD_BALANCER, "Value": load_balancer_id},
        {"Name": DIMENSION_SUBNET, "Value": subnet_id},
    ]


# The consistency checker's findings, one series per kind (orphan, drift, leak, stuck).
METRIC_CONSISTENCY_FINDINGS: Final = "ConsistencyFindings"
DIMENSION_FINDING_KIND: Final = "Kind"
