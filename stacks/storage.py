"""The control plane's single DynamoDB table, declared from ``lbcp.dal.schema``.

Keys, index and stream come from the same constants the local runtime uses
to create its table, and ``tests/cdk`` checks the synthesized table against
``create_table_request()``, so the two cannot drift.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from lbcp.dal.schema import (
    GSI_BY_KIND,
    GSI_BY_KIND_PARTITION_KEY,
    GSI_BY_KIND_SORT_KEY,
    PARTITION_KEY,
    SORT_KEY,
    TTL_ATTRIBUTE,
)


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

    def index_arn(self, index_name: str) -> str:
        """The ARN of one named index (scoped, unlike ``<table>/index/*``)."""
        return f"{self.table.table_arn}/index/{index_name}"
