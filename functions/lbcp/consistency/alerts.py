"""The checker's alerts: one CloudWatch metric per finding kind (the stack's alarms watch them).

Every run publishes all four kinds, zeros included, so that an alarm sees a
datapoint per run and returns to OK once the findings are gone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lbcp.consistency.findings import FindingKind
from lbcp.models.metrics import DIMENSION_FINDING_KIND, METRIC_CONSISTENCY_FINDINGS, NAMESPACE


class CloudWatchFindingsMetrics:
    def __init__(self, cloudwatch_client: Any) -> None:
        self._client = cloudwatch_client

    def publish(self, counts: dict[FindingKind, int], now: datetime) -> None:
        self._client.put_metric_data(
            Namespace=NAMESPACE,
            MetricData=[
                {
                    "MetricName": METRIC_CONSISTENCY_FINDINGS,
                    "Dimensions": [{"Name": DIMENSION_FINDING_KIND, "Value": kind}],
                    "Timestamp": now,
                    "Value": float(count),
                    "Unit": "Count",
                }
                for kind, count in sorted(counts.items())
            ],
        )
