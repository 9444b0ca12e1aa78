"""The metrics the scaler reads (lbcp.models.metrics): CPU, memory and active connections per LBVM.

Published once per ``PUBLISH_PERIOD_SECONDS`` with the (LoadBalancerId,
SubnetId) dimensions, so CloudWatch's Average over a period is the mean over
the LBVMs of one load balancer in one subnet. CPU is the machine's mean
utilisation over the whole period (from /proc/stat deltas), not a sample, so
a short spike between two publications is neither missed nor exaggerated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from lbcp.models.metrics import (
    METRIC_ACTIVE_CONNECTIONS,
    METRIC_CPU,
    METRIC_MEMORY,
    NAMESPACE,
    UNITS,
    dimensions,
)


@dataclass(frozen=True)
class Datum:
    name: str
    value: float
    timestamp: datetime


class MetricsSink(Protocol):
    def publish(self, load_balancer_id: str, subnet_id: str, data: Sequence[Datum]) -> None: ...


class CloudWatchSink:
    def __init__(self, cloudwatch_client: Any) -> None:
        self._client = cloudwatch_client

    def publish(self, load_balancer_id: str, subnet_id: str, data: Sequence[Datum]) -> None:
        self._client.put_metric_data(
            Namespace=NAMESPACE,
            MetricData=[
                {
                    "MetricName": datum.name,
                    "Dimensions": dimensions(load_balancer_id, subnet_id),
                    "Timestamp": datum.timestamp,
                    "Value": datum.value,
                    "Unit": UNITS[datum.name],
                }
                for datum in data
            ],
        )


class MemorySink:
    """Keeps what was published (the local runtime's agents, tests)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str, Datum]] = []

    def publish(self, load_balancer_id: str, subnet_id: str, data: Sequence[Datum]) -> None:
        self.published.extend((load_balancer_id, subnet_id, datum) for datum in data)


class Sampler(Protocol):
    def cpu_percent(self) -> float:
        """Mean CPU utilisation since the previous call."""
        ...

    def memory_percent(self) -> float: ...


class FixedSampler:
    """Utilisation that the caller sets: the local runtime's simulated LBVMs (and its demos of scaling)."""

    def __init__(self, cpu: float = 0.0, memory: float = 0.0) -> None:
        self.cpu = cpu
        self.memory = memory

    def cpu_percent(self) -> float:
        return self.cpu

    def memory_percent(self) -> float:
        return self.memory


class SystemSampler:
    """CPU and memory utilisation of the machine, from /proc (``root`` is replaceable for tests)."""

    def __init__(self, root: Path = Path("/proc")) -> None:
        self.root = root
        self._last = self._cpu_times()

    def _cpu_times(self) -> tuple[int, int]:
        # First line of /proc/stat: "cpu  user nice system idle iowait irq softirq steal guest guest_nice".
        fields = [int(value) for value in (self.root / "stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        # guest and guest_nice are already counted in user and nice.
        total = sum(fields[:8])
        return total - idle, total

    def cpu_percent(self) -> float:
        """Mean utilisation since the previous call (or since this sampler was made)."""
        busy, total = self._cpu_times()
        last_busy, last_total = self._last
        self._last = (busy, total)
        if total <= last_total:
            return 0.0
        return round(100.0 * (busy - last_busy) / (total - last_total), 2)

    def memory_percent(self) -> float:
        info: dict[str, int] = {}
        for line in (self.root / "meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            info[key] = int(rest.split()[0])
        total = info["MemTotal"]
        # MemAvailable counts reclaimable cache as free: what the kernel could hand out now.
        available = info.get("MemAvailable", info.get("MemFree", 0) + info.get("Cached", 0))
        return round(100.0 * (total - available) / total, 2) if total else 0.0


def collect(sampler: Sampler, active_connections: int, timestamp: datetime) -> list[Datum]:
    return [
        Datum(METRIC_CPU, sampler.cpu_percent(), timestamp),
        Datum(METRIC_MEMORY, sampler.memory_percent(), timestamp),
        Datum(METRIC_ACTIVE_CONNECTIONS, float(active_connections), timestamp),
    ]
