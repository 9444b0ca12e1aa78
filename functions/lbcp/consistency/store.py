"""The checker's DynamoDB items: the last report, and the append-only audit log of garbage collection.

==========================================  ===========================================
Item                                        Key
==========================================  ===========================================
The last report (one item, overwritten)     pk = ``CONSISTENCY``, sk = ``REPORT``
What the automatic GC quarantined           pk = ``CONSISTENCY``, sk = ``QUARANTINE``
One audit entry (never changed, no TTL)     pk = ``GC#AUDIT``, sk = ``<time>#<random>``
==========================================  ===========================================

The audit log lives in the control plane's own table, without TTL, each
entry written with ``attribute_not_exists`` so an entry is never overwritten:
the log is a handful of items a day (every mark, release, refusal and
deletion), read newest first by ``lbctl gc sweep`` and the API, covered by
the table's point-in-time recovery, deletion protection and RETAIN policy.
S3 with object lock would make it immutable even to an administrator, at the
price of a bucket, its key and its lifecycle, and a second store to read the
log from; the table is where every other record of what the control plane did
already is (its events), so the log stays there.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import Field

from lbcp.consistency.findings import ConsistencyReport
from lbcp.consistency.gc_policy import Quarantined
from lbcp.consistency.inventory import ResourceType
from lbcp.dal.schema import PARTITION_KEY, SORT_KEY
from lbcp.models.status import StatusModel
from lbcp.models.times import utc_iso

REPORT_KEY: Final = {PARTITION_KEY: {"S": "CONSISTENCY"}, SORT_KEY: {"S": "REPORT"}}
QUARANTINE_KEY: Final = {PARTITION_KEY: {"S": "CONSISTENCY"}, SORT_KEY: {"S": "QUARANTINE"}}
AUDIT_PARTITION: Final = "GC#AUDIT"
# A DynamoDB item holds at most 400 KB; a finding takes about 400 bytes.
MAX_STORED_FINDINGS: Final = 500

AuditAction = Literal["deleted", "refused", "gone", "marked", "quarantined", "released"]


class AuditEntry(StatusModel):
    time: datetime
    action: AuditAction
    resource_type: ResourceType
    resource_id: str
    load_balancer_id: str | None = None
    actor: str = Field(description="Who asked: the IAM principal of a manual sweep, or the automatic GC.")
    reason: str


class AuditLog(StatusModel):
    items: list[AuditEntry]


class QuarantineBook(StatusModel):
    items: list[Quarantined]


class ConsistencyStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def last_report(self) -> ConsistencyReport | None:
        item = self._client.get_item(TableName=self._table, Key=REPORT_KEY, ConsistentRead=True).get("Item")
        return ConsistencyReport.model_validate_json(item["report"]["S"]) if item else None

    def put_report(self, report: ConsistencyReport) -> ConsistencyReport:
        """Store the report (its first findings, if there are more than an item holds); returns what was stored."""
        if len(report.findings) > MAX_STORED_FINDINGS:
            report = report.model_copy(update={"findings": report.findings[:MAX_STORED_FINDINGS], "truncated": True})
        self._client.put_item(
            TableName=self._table,
            Item={**REPORT_KEY, "report": {"S": report.model_dump_json(by_alias=True)}},
        )
        return report

    def quarantined(self) -> list[Quarantined]:
        """What the automatic GC quarantined and has not deleted or released yet."""
        item = self._client.get_item(TableName=self._table, Key=QUARANTINE_KEY, ConsistentRead=True).get("Item")
        return QuarantineBook.model_validate_json(item["book"]["S"]).items if item else []

    def put_quarantined(self, items: list[Quarantined]) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={**QUARANTINE_KEY, "book": {"S": QuarantineBook(items=items).model_dump_json(by_alias=True)}},
        )

    def audit(self, entry: AuditEntry) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={
                PARTITION_KEY: {"S": AUDIT_PARTITION},
                SORT_KEY: {"S": f"{utc_iso(entry.time, 'microseconds')}#{secrets.token_hex(4)}"},
                "entry": {"S": entry.model_dump_json(by_alias=True, exclude_none=True)},
            },
            # Append-only: an entry is never overwritten.
            ConditionExpression="attribute_not_exists(#pk)",
            ExpressionAttributeNames={"#pk": PARTITION_KEY},
        )

    def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        """The newest entries first."""
        response = self._client.query(
            TableName=self._table,
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": PARTITION_KEY},
            ExpressionAttributeValues={":pk": {"S": AUDIT_PARTITION}},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [AuditEntry.model_validate(json.loads(item["entry"]["S"])) for item in response.get("Items", [])]
