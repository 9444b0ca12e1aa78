"""The local stand-in for the work queue's event source mapping: receive, invoke the worker, delete.

In AWS, Lambda polls the reconciler's FIFO work queue and invokes the worker
function (``handlers/reconcile_worker.py``) with one message per event (batch
size 1), deleting the messages it did not report as batch item failures. Here
the reconciler's ticker does the same against the embedded moto server after
each dispatch, so ``make demo`` runs the path AWS runs: schedule -> dispatcher
-> queue -> worker. A failed message stays in the queue and comes back after
its visibility timeout, as it does in AWS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lbcp.reconcile.run import Reconciler

# Locally the work queue hands a failed shard back after this long (6x the worker's timeout in AWS).
LOCAL_VISIBILITY_TIMEOUT_SECONDS = 5

Worker = Callable[[dict[str, Any]], dict[str, Any]]


def sqs_event(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """The event Lambda's SQS event source hands a function for one message."""
    attributes = message.get("Attributes", {})
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": queue_arn.split(":")[3] if queue_arn.count(":") >= 5 else "",
            }
        ]
    }


@dataclass
class PumpReport:
    received: int = 0
    deleted: int = 0
    failed: int = 0


def pump(sqs: Any, queue_url: str, worker: Worker, *, max_messages: int = 1000) -> PumpReport:
    """Hand every visible message to ``worker``, one an event; delete those it did not report as failed.

    Stops when a receive finds nothing (a failed message is invisible until its timeout) or
    after ``max_messages``.
    """
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    report = PumpReport()
    while report.received < max_messages:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return report
        stopped: set[str] = set()  # message groups with a failed message: the rest wait behind it, in order
        for message in messages:
            group = message.get("Attributes", {}).get("MessageGroupId", "")
            if group in stopped:
                continue  # not handed over: visible again after the timeout, after the failed one
            report.received += 1
            result = worker(sqs_event(message, arn))
            failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
            if message["MessageId"] in failed:
                report.failed += 1
                stopped.add(group)
                continue
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            report.deleted += 1
    return report


def scheduled_tick(reconciler: Reconciler, sqs: Any, queue_url: str, shard_size: int) -> PumpReport:
    """One scheduled minute, as in AWS: the dispatcher, then the event source hands each shard to the worker."""
    from handlers.reconcile_worker import process
    from handlers.reconciler import dispatch_tick
    from lbcp.reconcile.dispatch import SqsWorkQueue

    dispatch_tick(SqsWorkQueue(sqs, queue_url), reconciler, shard_size)
    return pump(sqs, queue_url, lambda event: process(event, reconciler))
