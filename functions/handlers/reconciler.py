"""Lambda entry point of the reconciler.

Invoked by the schedule (every minute: a full tick), by the table's stream
when a spec changes (a tick for just those load balancers, at once), and by
EC2 when an instance is stopping or going away (a tick for its load balancer,
at once: a dead LBVM is deregistered from the entry within seconds, not at the
next minute).
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger

from lbcp.adapters.app_metrics import publish
from lbcp.models.app_metrics import SERVICE_RECONCILER
from lbcp.reconcile.compute import INSTANCE_STATE_CHANGE
from lbcp.reconcile.run import Reconciler, TickReport
from lbcp.reconcile.tick_metrics import tick_metrics

logger = Logger(service=SERVICE_RECONCILER)


@lru_cache(maxsize=1)
def reconciler() -> Reconciler:
    from botocore.config import Config
    from botocore.session import get_session

    from lbcp.reconcile.wiring import build_reconciler
    from lbcp.settings import settings

    session = get_session()
    config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=3, read_timeout=10)
    return build_reconciler(settings(), lambda service: session.create_client(service, config=config))


def changed_load_balancers(event: dict[str, Any]) -> set[str] | None:
    """The ids of load balancers whose record changed (stream event); None for a scheduled tick."""
    records = event.get("Records")
    if not records:
        return None
    ids: set[str] = set()
    for record in records:
        keys = record.get("dynamodb", {}).get("Keys", {})
        pk, sk = keys.get("pk", {}).get("S", ""), keys.get("sk", {}).get("S", "")
        if pk.startswith("LB#") and sk == "LB":
            ids.add(pk.removeprefix("LB#"))
    return ids


def changed_instances(event: dict[str, Any]) -> list[str] | None:
    """The instance of an EC2 state-change event; None for any other event."""
    if event.get("source") != "aws.ec2" or event.get("detail-type") != INSTANCE_STATE_CHANGE:
        return None
    instance_id = (event.get("detail") or {}).get("instance-id")
    return [instance_id] if isinstance(instance_id, str) else []


@logger.inject_lambda_context(log_event=False, clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    instances = changed_instances(event)
    # An instance in the account that is not ours (EC2 cannot filter these events by tag) ticks nothing.
    only = reconciler().owners_of(instances) if instances is not None else changed_load_balancers(event)
    if only is not None and not only:
        return {"loadBalancers": 0}
    started = time.monotonic()
    report: TickReport = reconciler().tick(only)
    # A tick that raises publishes nothing: the function's Errors metric counts it.
    publish(tick_metrics(report, (time.monotonic() - started) * 1000, full=only is None), SERVICE_RECONCILER)
    logger.info(
        "tick",
        load_balancers=report.load_balancers,
        acted=report.acted,
        locked=report.locked,
        jobs=report.jobs,
        failed=report.failed,
    )
    return {"loadBalancers": report.load_balancers, "acted": report.acted, "jobs": report.jobs, "failed": report.failed}
