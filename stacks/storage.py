"""The control plane's single DynamoDB table, declared from ``lbcp.dal.schema``.

Keys, index and stream come from the same constants the local runtime uses
to create its table, and ``tests/cdk`` checks the synthesized table against
``create_table_request()``, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from lbcp.dal.schema import (
    GSI_BY_KIND,
    GSI_BY_KIND_KEYS,
    GSI_BY_KIND_KEYS_PARTITION_KEY,
    GSI_BY_KIND_KEYS_SORT_KEY,
    GSI_BY_KIND_PARTITION_KEY,
    GSI_BY_KIND_SORT_KEY,
    PARTITION_KEY,
    SORT_KEY,
    TTL_ATTRIBUTE,
)

# What the functions and state machines may do to the table: item-level actions
# only (no Scan, no batch writes, no table management), granted by name.

# The repository and TransactWriteItems (the API, the reconciler): reads, the
# lease, status and events, LBVM markers and drain requests, the finalizer's deletes.
ITEM_ACTIONS: Final = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:Query",
)
# Read a record, update it under its version condition, put its event (the
# scaler's ``set_desired_capacity`` transaction, the lifecycle tasks).
RECORD_UPDATE_ACTIONS: Final = ("dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem")
# The drain machine reads the LBVM record; the lifecycle machine updates it.
RECORD_READ_ACTIONS: Final = ("dynamodb:GetItem",)
RECORD_WRITE_ACTIONS: Final = ("dynamodb:UpdateItem",)
# Listing records by kind through the index.
INDEX_QUERY_ACTIONS: Final = ("dynamodb:Query",)
# Batch reads, 100 keys a call rather than one GetItem each (the same units, a hundredth of the calls):
# the scaler's memory items (``LB#<id>``/``SCALER``), the LBVM records their keys-only index lists
# (lbcp.dal.schema). Reads only: no batch writes.
BATCH_READ_ACTIONS: Final = ("dynamodb:BatchGetItem",)


class ControlPlaneTable(Construct):
    """Specs, status, events, name claims and idempotency records of every LB."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=SORT_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            # The reconciler is triggered by spec changes on the stream.
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            # Events and idempotency records expire.
            time_to_live_attribute=TTL_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=True,
            # The table is the only record of what the control plane owns: never
            # delete it with the stack.
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.table.add_global_secondary_index(
            index_name=GSI_BY_KIND,
            partition_key=dynamodb.Attribute(name=GSI_BY_KIND_PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=GSI_BY_KIND_SORT_KEY, type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        # LBVM records, rewritten by every minute's heartbeat: keys only, so those writes cost it nothing
        # (lbcp.dal.schema). One index added, none removed: CloudFormation allows one of each per update.
        self.table.add_global_secondary_index(
            index_name=GSI_BY_KIND_KEYS,
            partition_key=dynamodb.Attribute(name=GSI_BY_KIND_KEYS_PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=GSI_BY_KIND_KEYS_SORT_KEY, type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )

    def index_arn(self, index_name: str) -> str:
        """The ARN of one named index (scoped, unlike ``<table>/index/*``)."""
        return f"{self.table.table_arn}/index/{index_name}"

    def items_statement(self, actions: Sequence[str], *, sid: str = "TableItems") -> iam.PolicyStatement:
        """``actions`` (one of the ``*_ACTIONS`` above) on the table's items."""
        return iam.PolicyStatement(sid=sid, actions=list(actions), resources=[self.table.table_arn])

    def index_query_statement(self, *, sid: str, index_names: Sequence[str] = (GSI_BY_KIND,)) -> iam.PolicyStatement:
        """``Query`` on named indexes (by default ``byKind``: every record of a kind)."""
        return iam.PolicyStatement(
            sid=sid, actions=list(INDEX_QUERY_ACTIONS), resources=[self.index_arn(name) for name in index_names]
        )

    def lbvm_listing_statements(self) -> list[iam.PolicyStatement]:
        """What ``LbvmRepository.list_all`` needs: both indexes' keys, then the records, 100 a call."""
        return [
            self.index_query_statement(sid="ListByKind", index_names=(GSI_BY_KIND, GSI_BY_KIND_KEYS)),
            self.items_statement(BATCH_READ_ACTIONS, sid="ReadLbvmRecords"),
        ]
