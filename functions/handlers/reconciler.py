"""Lambda entry point of the reconciler.

Invoked by the schedule (every minute), by the table's stream when a spec
changes (a tick for just those load balancers, at once), and by EC2 when an
instance is stopping or going away (a tick for its load balancer, at once: a
dead LBVM is deregistered from the entry within seconds, not at the next minute).

The schedule's invocation, with a work queue configured (``LBCP_RECONCILE_WORK_QUEUE_URL``),
is a dispatcher (``lbcp.reconcile.dispatch``): it sends the due load balancers in shards
to the queue, and workers (``reconcile_worker.py``) reconcile them; without one, it
reconciles every load balancer itself (a full tick). The stream's and EC2's
invocations always reconcile inline: their few load balancers, observed alone
(``Reconciler.tick(only=...)`` reads only theirs), so the latency from a change to
its first action stays flat however large the fleet, and no queue sits in between.

A load balancer whose attempts keep failing is backed off (``lbcp.reconcile.backoff``),
but not from what concerns it directly: an instance's state change, or something
new asked of it (a new spec, a deletion, a rollout pause/resume/abort, a desired
capacity the scaler changed: a fleet with one job failing still scales). The
reconciler's own status writes reach the stream too; they are not urgent, or a
failing load balancer would re-trigger itself at every failed attempt.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger

from lbcp.adapters.app_metrics import publish
from lbcp.models.app_metrics import SERVICE_RECONCILER
from lbcp.reconcile.compute import INSTANCE_STATE_CHANGE
from lbcp.reconcile.dispatch import SqsWorkQueue, WorkQueuePort, dispatch
from lbcp.reconcile.run import Reconciler, TickReport
from lbcp.reconcile.tick_metrics import fleet_metrics, tick_metrics

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


# What a user or the scaler asks of a load balancer: its spec (generation), its deletion, a rollout pause,
# resume or abort, a new desired capacity. Status and phase are the reconciler's own writes; the scaler's
# state-only writes (its memory) change none of these.
_INTENT_ATTRIBUTES = ("generation", "deletionRequestedAt", "rolloutControl", "desiredCapacity")


def user_changes(event: dict[str, Any]) -> set[str]:
    """The ids of load balancers asked something new: created, a new spec, deletion, rollout control, capacity."""
    ids: set[str] = set()
    for record in event.get("Records") or []:
        change = record.get("dynamodb", {})
        keys = change.get("Keys", {})
        pk, sk = keys.get("pk", {}).get("S", ""), keys.get("sk", {}).get("S", "")
        if not pk.startswith("LB#") or sk != "LB" or record.get("eventName") == "REMOVE":
            continue
        new, old = change.get("NewImage", {}), change.get("OldImage", {})
        if record.get("eventName") == "INSERT" or any(new.get(name) != old.get(name) for name in _INTENT_ATTRIBUTES):
            ids.add(pk.removeprefix("LB#"))
    return ids


def changed_instances(event: dict[str, Any]) -> list[str] | None:
    """The instance of an EC2 state-change event; None for any other event."""
    if event.get("source") != "aws.ec2" or event.get("detail-type") != INSTANCE_STATE_CHANGE:
        return None
    instance_id = (event.get("detail") or {}).get("instance-id")
    return [instance_id] if isinstance(instance_id, str) else []


@lru_cache(maxsize=1)
def work_queue() -> SqsWorkQueue | None:
    """The work queue the schedule dispatches to; None: the schedule reconciles inline."""
    from botocore.session import get_session

    from lbcp.settings import settings

    url = settings().reconcile_work_queue_url
    return SqsWorkQueue(get_session().create_client("sqs"), url) if url else None


def report_tick(report: TickReport, started: float, *, full: bool) -> dict[str, Any]:
    """Publish a tick's metrics and log line (here and in the work queue's worker); returns its summary.

    A tick that raises never gets here: the function's Errors metric counts it.
    """
    publish(tick_metrics(report, (time.monotonic() - started) * 1000, full=full), SERVICE_RECONCILER)
    logger.info(
        "tick",
        load_balancers=report.load_balancers,
        acted=report.acted,
        locked=report.locked,
        jobs=report.jobs,
        failed=report.failed,
        failures=report.failures,
        backed_off=report.backed_off,
        dead_lettered=report.dead_lettered,
    )
    return {"loadBalancers": report.load_balancers, "acted": report.acted, "jobs": report.jobs, "failed": report.failed}


def dispatch_tick(queue: WorkQueuePort, reconciler: Reconciler, shard_size: int) -> dict[str, Any]:
    """The schedule's invocation with a work queue: send the due shards, publish the fleet's gauges."""
    report = dispatch(reconciler, queue, shard_size=shard_size)
    # The phases as the workers last wrote them: the Degraded alarm keeps its datapoint every minute.
    publish(fleet_metrics(report.statuses), SERVICE_RECONCILER)
    logger.info(
        "dispatched",
        load_balancers=report.load_balancers,
        due=report.due,
        shards=report.shards,
        backed_off=report.backed_off,
    )
    return {"loadBalancers": report.load_balancers, "due": report.due, "shards": report.shards}


@logger.inject_lambda_context(log_event=False, clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    instances = changed_instances(event)
    # An instance in the account that is not ours (EC2 cannot filter these events by tag) ticks nothing.
    only = reconciler().owners_of(instances) if instances is not None else changed_load_balancers(event)
    if only is not None and not only:
        return {"loadBalancers": 0}
    queue = work_queue()
    if only is None and queue is not None:
        from lbcp.settings import settings

        return dispatch_tick(queue, reconciler(), settings().reconcile_shard_size)
    started = time.monotonic()
    urgent = only if instances is not None else user_changes(event)
    report = reconciler().tick(only, urgent=urgent or ())
    return report_tick(report, started, full=only is None)
