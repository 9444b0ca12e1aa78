"""The minute ticks: an EventBridge rule that runs a function every minute, never late.

The reconciler and the scaler are both level-triggered: a missed tick is
healed by the next one, so a tick is never retried and never delivered more
than a minute late (a stale run would only redo, late, what the next one does).
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

EVERY_MINUTE: Final = events.Schedule.rate(Duration.minutes(1))
# Older ticks are dropped rather than delivered late.
MAX_TICK_AGE: Final = Duration.minutes(1)


def every_minute(scope: Construct, construct_id: str, *, function: lambda_.IFunction, description: str) -> events.Rule:
    """A rule that invokes ``function`` every minute, without retries or late deliveries."""
    return events.Rule(
        scope,
        construct_id,
        description=description,
        schedule=EVERY_MINUTE,
        targets=[targets.LambdaFunction(function, retry_attempts=0, max_event_age=MAX_TICK_AGE)],
    )
