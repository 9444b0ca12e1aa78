"""Builds the checker and the sweeper from the settings and a client factory (the handler, the local runtime)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from lbcp.consistency.alerts import CloudWatchFindingsMetrics
from lbcp.consistency.autogc import AutoGc
from lbcp.consistency.aws_inventory import AwsInventory
from lbcp.consistency.gc_policy import GcPolicy
from lbcp.consistency.run import ConsistencyChecker
from lbcp.consistency.store import ConsistencyStore
from lbcp.consistency.sweep import Sweeper
from lbcp.dal.lbvms import LbvmRepository
from lbcp.dal.repository import LoadBalancerRepository
from lbcp.settings import Settings

RUN_PERIOD = timedelta(minutes=15)


def _now() -> datetime:
    return datetime.now(UTC)


def _repositories(settings: Settings, client: Callable[[str], Any]) -> tuple[LoadBalancerRepository, LbvmRepository]:
    dynamodb = client("dynamodb")
    return (
        LoadBalancerRepository(dynamodb, settings.table_name, timedelta(days=settings.event_retention_days)),
        LbvmRepository(dynamodb, settings.table_name),
    )


def build_checker(
    settings: Settings,
    client: Callable[[str], Any],
    *,
    clock: Callable[[], datetime] = _now,
    run_period: timedelta = RUN_PERIOD,
) -> ConsistencyChecker:
    load_balancers, lbvms = _repositories(settings, client)
    policy = GcPolicy.from_env(settings.gc_policy)
    store = ConsistencyStore(client("dynamodb"), settings.table_name)
    gc = (
        AutoGc(
            policy=policy,
            sweeper=build_sweeper(settings, client, clock=clock),
            store=store,
            load_balancers=load_balancers,
            clock=clock,
        )
        if policy.auto
        else None
    )
    return ConsistencyChecker(
        cloud=AwsInventory(
            client,
            hosted_zone_id=settings.hosted_zone_id,
            dns_domain=settings.dns_domain,
            state_machine_arns={
                "lifecycle": settings.lifecycle_state_machine_arn,
                "drain": settings.drain_state_machine_arn,
            },
            run_period=run_period,
        ),
        load_balancers=load_balancers,
        lbvms=lbvms,
        store=store,
        metrics=CloudWatchFindingsMetrics(client("cloudwatch")),
        clock=clock,
        gc=gc,
    )


def build_sweeper(settings: Settings, client: Callable[[str], Any], *, clock: Callable[[], datetime] = _now) -> Sweeper:
    load_balancers, lbvms = _repositories(settings, client)
    return Sweeper(
        client=client,
        load_balancers=load_balancers,
        lbvms=lbvms,
        store=ConsistencyStore(client("dynamodb"), settings.table_name),
        clock=clock,
        hosted_zone_id=settings.hosted_zone_id,
        dns_domain=settings.dns_domain,
        state_machine_arns=[
            arn for arn in (settings.lifecycle_state_machine_arn, settings.drain_state_machine_arn) if arn
        ],
    )
