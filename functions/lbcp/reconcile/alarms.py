"""CloudWatch alarms that gate rollouts (``rollout.alarmNames``), as the reconciler reads them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lbcp.reconcile.observed import ObservedAlarm

# DescribeAlarms takes at most 100 names per call.
NAMES_PER_CALL = 100


class CloudWatchAlarms:
    def __init__(self, cloudwatch: Any) -> None:
        self._cloudwatch = cloudwatch

    def read(self, names: Iterable[str]) -> dict[str, ObservedAlarm]:
        wanted = sorted(set(names))
        found: dict[str, ObservedAlarm] = {}
        for start in range(0, len(wanted), NAMES_PER_CALL):
            chunk = wanted[start : start + NAMES_PER_CALL]
            token: str | None = None
            while True:
                page = self._cloudwatch.describe_alarms(
                    AlarmNames=chunk,
                    AlarmTypes=["MetricAlarm", "CompositeAlarm"],
                    MaxRecords=NAMES_PER_CALL,
                    **({"NextToken": token} if token else {}),
                )
                for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                    found[alarm["AlarmName"]] = ObservedAlarm(
                        name=alarm["AlarmName"],
                        state=alarm.get("StateValue", "INSUFFICIENT_DATA"),
                        reason=alarm.get("StateReason", ""),
                        since=alarm.get("StateUpdatedTimestamp"),
                    )
                token = page.get("NextToken")
                if not token:
                    break
        return found
