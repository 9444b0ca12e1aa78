"""Builds a Reconciler from the environment (settings) and AWS clients."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from lbcp.dal.lbvms import LbvmRepository
from lbcp.dal.repository import LoadBalancerRepository
from lbcp.dal.retries import RetryRepository
from lbcp.entry.adapter import EntryAdapter
from lbcp.reconcile.alarms import CloudWatchAlarms
from lbcp.reconcile.backoff import BackoffSettings
from lbcp.reconcile.compute import Ec2Compute
from lbcp.reconcile.dead_letters import SqsDeadLetters
from lbcp.reconcile.executor import Executor, ExecutorSettings
from lbcp.reconcile.launch import DefaultLaunchSettings, LatestImages
from lbcp.reconcile.lease import Leases
from lbcp.reconcile.lifecycle_port import StepFunctionsLifecycle
from lbcp.reconcile.plan import PlannerSettings
from lbcp.reconcile.run import Reconciler
from lbcp.settings import Settings


def _required(value: str | None, name: str) -> str:
    if not value:
        raise RuntimeError(f"the reconciler needs {name} in its environment")
    return value


def build_reconciler(
    settings: Settings,
    client: Callable[[str], Any],
    *,
    clock: Callable[[], datetime] | None = None,
    rng: random.Random | None = None,
    planner_settings: PlannerSettings | None = None,
    tick_period: timedelta = timedelta(minutes=1),
    owner: str | None = None,
    backoff: BackoffSettings | None = None,
) -> Reconciler:
    """``client(service)`` returns a boto3/botocore client for that service.

    ``backoff`` defaults to one tick period for the first delay, controller-runtime's 1000 s cap, and the
    settings' dead-letter threshold. Without a dead-letter queue URL, no dead letters are sent (backoff stays).
    """
    now = clock or (lambda: datetime.now(UTC))
    dynamodb = client("dynamodb")
    ec2 = client("ec2")
    load_balancers = LoadBalancerRepository(
        dynamodb, settings.table_name, timedelta(days=settings.event_retention_days)
    )
    lbvms = LbvmRepository(dynamodb, settings.table_name)
    entry = EntryAdapter(
        ec2=ec2,
        elbv2=client("elbv2"),
        route53=client("route53"),
        hosted_zone_id=settings.hosted_zone_id,
        dns_domain=settings.dns_domain,
    )
    compute = Ec2Compute(ec2)
    lifecycle = StepFunctionsLifecycle(
        client("stepfunctions"), _required(settings.lifecycle_state_machine_arn, "the lifecycle state machine ARN")
    )
    images = LatestImages(client("ssm"))
    launch_settings = DefaultLaunchSettings(
        images,
        agent_endpoint=_required(settings.agent_endpoint, "the agent endpoint"),
        agent_artifact_url=settings.agent_artifact_url or "",
        region=ec2.meta.region_name,
    )
    executor = Executor(
        load_balancers=load_balancers,
        lbvms=lbvms,
        compute=compute,
        entry=entry,
        lifecycle=lifecycle,
        launch_settings=launch_settings,
        settings=ExecutorSettings(
            table_name=settings.table_name,
            tasks_function_arn=_required(settings.tasks_function_arn, "the lifecycle tasks function ARN"),
            drain_state_machine_arn=_required(settings.drain_state_machine_arn, "the drain state machine ARN"),
            instance_profile_arn=settings.instance_profile_arn,
        ),
        clock=now,
    )
    return Reconciler(
        load_balancers=load_balancers,
        lbvms=lbvms,
        compute=compute,
        entry=entry,
        executor=executor,
        leases=Leases(dynamodb, settings.table_name, owner or f"reconciler-{os.getpid()}-{uuid.uuid4().hex[:8]}"),
        clock=now,
        rng=rng,
        planner_settings=planner_settings,
        tick_period=tick_period,
        images=images,
        alarms=CloudWatchAlarms(client("cloudwatch")),
        retries=RetryRepository(dynamodb, settings.table_name, load_balancers),
        dead_letters=SqsDeadLetters(client("sqs"), settings.reconcile_dead_letter_queue_url)
        if settings.reconcile_dead_letter_queue_url
        else None,
        backoff=backoff
        or BackoffSettings(
            base=tick_period,
            cap=max(tick_period, timedelta(seconds=1000)),
            dead_letter_after=settings.reconcile_dead_letter_after,
        ),
    )
