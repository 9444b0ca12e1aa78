"""Lambda entry point of the reconciler's workers: one shard of the work queue per message.

The schedule's dispatcher (``reconciler.py``, ``lbcp.reconcile.dispatch``) sends the
due load balancers in shards to a FIFO queue; this function, fed by the queue's
event source (batch size 1, ``ReportBatchItemFailures``, bounded concurrency),
reconciles each shard with ``tick(only=shard)``: its records, streaks, LBVMs,
instances and interfaces only, and the entry views the dispatcher observed for it
(``dispatch.shipped_entries``), so a worker's work follows its shard and not the
fleet. The tick's metrics and log line are the reconciler's own (``report_tick``).

A message fails (a batch item failure: it comes back after the visibility
timeout, and to the queue's dead-letter queue after 3 receives) only when its
tick raises as a whole (a read of the shard failed). One load balancer failing
inside the tick does not fail the message: it is recorded, backed off and, if
it keeps failing, dead-lettered on its own (``lbcp.reconcile.backoff``), and the
shard's other load balancers go on.
"""

from __future__ import annotations

import time
from typing import Any

from handlers.reconciler import logger, reconciler, report_tick
from lbcp.reconcile.dispatch import parse_work, shipped_entries
from lbcp.reconcile.run import Reconciler


def process(event: dict[str, Any], worker: Reconciler) -> dict[str, Any]:
    """Reconcile each message's shard; the messages that failed, as the event source mapping expects them.

    FIFO: once a message fails, the batch's later ones are failed too (unprocessed), so that a
    message group is never processed out of order.
    """
    failures: list[dict[str, str]] = []
    for record in event.get("Records") or []:
        message_id = str(record.get("messageId", ""))
        if failures:
            failures.append({"itemIdentifier": message_id})
            continue
        try:
            body = str(record.get("body", ""))
            ids = parse_work(body)
            entries = shipped_entries(body, now=worker.now(), period=worker.tick_period)
            started = time.monotonic()
            report_tick(worker.tick(ids, entries=entries), started, full=False)
        except Exception:
            logger.exception("shard failed", message_id=message_id)
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}


@logger.inject_lambda_context(log_event=False, clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process(event, reconciler())
