"""Deploy-time settings of the control plane, read from CDK context.

The defaults live in ``cdk.json`` (keys prefixed ``lbcp:``) and can be
overridden per synth with ``cdk synth -c lbcp:logRetentionDays=90``. The CLI
passes ``-c`` values as strings, so every value is parsed and validated here:
a bad value fails the synth with a message naming the key.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from aws_cdk import aws_logs as logs
from constructs import Construct

from lbcp.consistency.gc_policy import GcPolicy, parse_policy
from lbcp.settings import DEFAULT_RECONCILE_SHARD_SIZE

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
CDK_JSON: Final = REPO_ROOT / "cdk.json"
FUNCTIONS_DIR: Final = REPO_ROOT / "functions"

CTX_LOG_RETENTION_DAYS: Final = "lbcp:logRetentionDays"
CTX_API_THROTTLING_RATE_LIMIT: Final = "lbcp:apiThrottlingRateLimit"
CTX_API_THROTTLING_BURST_LIMIT: Final = "lbcp:apiThrottlingBurstLimit"
CTX_EVENT_RETENTION_DAYS: Final = "lbcp:eventRetentionDays"
CTX_IDEMPOTENCY_TTL_SECONDS: Final = "lbcp:idempotencyTtlSeconds"
# The reconciler's work queue: load balancers per shard (one worker invocation), and workers at once.
CTX_RECONCILE_SHARD_SIZE: Final = "lbcp:reconcileShardSize"
CTX_RECONCILE_WORKER_CONCURRENCY: Final = "lbcp:reconcileWorkerConcurrency"
# The automatic GC policy (lbcp.consistency.gc_policy.GcPolicy): an object, or its JSON from `-c`.
CTX_GC: Final = "lbcp:gc"
# Where alarms notify besides the topic itself: {"email": null | "ops@example.com"}, or its JSON from `-c`.
CTX_ALERTS: Final = "lbcp:alerts"
_ALERTS_KEYS: Final = frozenset({"email"})
# What SNS would accept as an email endpoint, loosely: one @, no spaces, a dot in the domain.
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

# CloudWatch Logs accepts only these retention periods.
_RETENTION: Final[dict[int, logs.RetentionDays]] = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def load_cdk_json_context(path: Path = CDK_JSON) -> dict[str, Any]:
    """The ``context`` block of ``cdk.json`` (feature flags and our settings).

    The CDK CLI passes it to the app itself; ``python app.py`` and the tests
    load it with this so that every synth sees the same flags and settings.
    """
    context = json.loads(path.read_text(encoding="utf-8")).get("context", {})
    if not isinstance(context, dict):
        raise ValueError(f"{path}: 'context' must be an object")
    return context


def _positive_int(scope: Construct, key: str) -> int:
    raw = scope.node.try_get_context(key)
    if raw is None:
        raise ValueError(f"context key {key!r} is not set (defaults live in cdk.json)")
    if isinstance(raw, bool):
        raise ValueError(f"context key {key!r} must be a positive integer, got {raw!r}")
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"context key {key!r} must be a positive integer, got {raw!r}") from None
    if value <= 0 or (isinstance(raw, float) and raw != value):
        raise ValueError(f"context key {key!r} must be a positive integer, got {raw!r}")
    return value


@dataclass(frozen=True)
class AlertsConfig:
    """Who the alarm topic notifies at deploy time (more subscriptions can be added by hand)."""

    email: str | None = None


def parse_alerts(raw: Any, source: str = CTX_ALERTS) -> AlertsConfig:
    """``lbcp:alerts`` as cdk.json (an object) or ``-c`` (its JSON text) gives it; unset means no subscription."""
    if raw is None:
        return AlertsConfig()
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"context key {source!r} must be a JSON object: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise ValueError(f'context key {source!r} must be an object like {{"email": null}}, got {raw!r}')
    unknown = sorted(set(raw) - _ALERTS_KEYS)
    if unknown:
        raise ValueError(f"context key {source!r}: unknown field(s) {', '.join(unknown)} (known: email)")
    email = raw.get("email")
    if email is None:
        return AlertsConfig()
    if not isinstance(email, str) or not _EMAIL.fullmatch(email.strip()):
        raise ValueError(f"context key {source!r}: 'email' must be null or an email address, got {email!r}")
    return AlertsConfig(email=email.strip())


@dataclass(frozen=True)
class ControlPlaneConfig:
    """Validated settings of one synth."""

    log_retention_days: int
    api_throttling_rate_limit: int
    api_throttling_burst_limit: int
    event_retention_days: int
    idempotency_ttl_seconds: int
    gc_policy: GcPolicy
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    reconcile_shard_size: int = DEFAULT_RECONCILE_SHARD_SIZE
    reconcile_worker_concurrency: int = 10

    @property
    def log_retention(self) -> logs.RetentionDays:
        return _RETENTION[self.log_retention_days]

    @staticmethod
    def from_context(scope: Construct) -> ControlPlaneConfig:
        config = ControlPlaneConfig(
            log_retention_days=_positive_int(scope, CTX_LOG_RETENTION_DAYS),
            api_throttling_rate_limit=_positive_int(scope, CTX_API_THROTTLING_RATE_LIMIT),
            api_throttling_burst_limit=_positive_int(scope, CTX_API_THROTTLING_BURST_LIMIT),
            event_retention_days=_positive_int(scope, CTX_EVENT_RETENTION_DAYS),
            idempotency_ttl_seconds=_positive_int(scope, CTX_IDEMPOTENCY_TTL_SECONDS),
            # InvalidGcPolicy is a ValueError naming the key and each bad field: a bad policy fails the synth.
            gc_policy=parse_policy(scope.node.try_get_context(CTX_GC), source=CTX_GC),
            alerts=parse_alerts(scope.node.try_get_context(CTX_ALERTS)),
            reconcile_shard_size=_positive_int(scope, CTX_RECONCILE_SHARD_SIZE),
            reconcile_worker_concurrency=_positive_int(scope, CTX_RECONCILE_WORKER_CONCURRENCY),
        )
        # Lambda's maximum concurrency of an SQS event source: 2 to 1,000.
        if not 2 <= config.reconcile_worker_concurrency <= 1000:
            raise ValueError(
                f"context key {CTX_RECONCILE_WORKER_CONCURRENCY!r} must be between 2 and 1000 "
                f"(Lambda's maximum concurrency of an SQS event source), got {config.reconcile_worker_concurrency}"
            )
        if config.log_retention_days not in _RETENTION:
            allowed = ", ".join(str(days) for days in _RETENTION)
            raise ValueError(
                f"context key {CTX_LOG_RETENTION_DAYS!r} must be one of {allowed} "
                f"(CloudWatch Logs retention periods), got {config.log_retention_days}"
            )
        return config
