"""The reconciler's dead-letter queue (SQS): load balancers whose attempts keep failing, for a person to look at.

One message per failure streak (``lbcp.reconcile.backoff``), sent when the
streak reaches its ``dead_letter_after``-th failure. The queue is not consumed
by the control plane: retrying goes on at the backoff cap, and the fleet heals
itself when the cause goes away. The queue's depth alarm says that someone
should read why.
"""

from __future__ import annotations

import json
from typing import Any

from lbcp.models.resource import LoadBalancerRecord
from lbcp.models.times import utc_iso
from lbcp.reconcile.backoff import RetryStreak


def dead_letter_body(record: LoadBalancerRecord, streak: RetryStreak) -> dict[str, Any]:
    return {
        "loadBalancerId": record.id,
        "name": record.spec.name,
        "generation": streak.generation,
        "failures": streak.failures,
        "firstFailedAt": utc_iso(streak.first_failed_at),
        "lastFailedAt": utc_iso(streak.last_failed_at),
        "nextAttemptAt": utc_iso(streak.not_before),
        "lastError": streak.last_error,
    }


class SqsDeadLetters:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def send(self, record: LoadBalancerRecord, streak: RetryStreak) -> None:
        self._client.send_message(
            QueueUrl=self._queue_url,
            MessageBody=json.dumps(dead_letter_body(record, streak), separators=(",", ":")),
            MessageAttributes={"loadBalancerId": {"DataType": "String", "StringValue": record.id}},
        )
