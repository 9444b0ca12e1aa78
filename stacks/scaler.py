"""The scaler: a function run every minute by an EventBridge rule (DESIGN 2.5).

It reads every load balancer (the table's ``byKind`` index), their agents'
metrics (CloudWatch ``GetMetricData``, batched) and writes desired capacity,
its memory and an event with one conditional transaction per load balancer.
Nothing else: the reconciler converges the fleet to what it wrote.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from lbcp.dal.schema import GSI_BY_KIND
from lbcp.settings import ENV_EVENT_RETENTION_DAYS, ENV_TABLE_NAME
from stacks import nag
from stacks.config import ControlPlaneConfig
from stacks.functions import LbcpFunction
from stacks.storage import ControlPlaneTable

SCALER_HANDLER: Final = "handlers.scaler.lambda_handler"
SCALER_SERVICE_NAME: Final = "lbcp-scaler"
SCHEDULE: Final = events.Schedule.rate(Duration.minutes(1))

# What the scaler does to the table: read records (and re-read one after a lost
# conditional write), list them by kind, and the two writes of
# ``set_desired_capacity``'s transaction (the record's update, the event's put).
SCALER_TABLE_ACTIONS: Final = ("dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem")


class ScalerFunction(LbcpFunction):
    """The scaler's function and its least-privilege role."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: ControlPlaneTable,
        code: lambda_.Code,
        layers: list[lambda_.ILayerVersion],
        config: ControlPlaneConfig,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description="lbcp scaler: decides each load balancer's desired capacity from its metrics",
            handler=SCALER_HANDLER,
            code=code,
            layers=layers,
            log_retention=config.log_retention,
            environment={
                ENV_TABLE_NAME: table.table.table_name,
                ENV_EVENT_RETENTION_DAYS: str(config.event_retention_days),
                "POWERTOOLS_SERVICE_NAME": SCALER_SERVICE_NAME,
                "POWERTOOLS_LOG_LEVEL": "INFO",
                "PYDANTIC_DISABLE_PLUGINS": "__all__",
            },
            memory_size=512,
            # A run must end before the next tick starts one more (conditional
            # writes keep two runs safe, but they would only waste work).
            timeout=Duration.seconds(50),
        )
        self.add_to_role_policy(
            iam.PolicyStatement(sid="TableItems", actions=list(SCALER_TABLE_ACTIONS), resources=[table.table.table_arn])
        )
        self.add_to_role_policy(
            iam.PolicyStatement(
                sid="ListLoadBalancers", actions=["dynamodb:Query"], resources=[table.index_arn(GSI_BY_KIND)]
            )
        )
        # A policy of its own so that its Resource "*" is acknowledged apart from X-Ray's.
        self.metrics_read_policy = iam.Policy(
            self,
            "ReadMetricsPolicy",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(sid="ReadAgentMetrics", actions=["cloudwatch:GetMetricData"], resources=["*"])
            ],
        )
        self.function.node.add_dependency(self.metrics_read_policy)
        nag.acknowledge(self.metrics_read_policy, nag.CLOUDWATCH_GET_METRIC_DATA_WILDCARD)


class Scaler(Construct):
    """The scaler function and the rule that runs it every minute."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: ControlPlaneTable,
        code: lambda_.Code,
        layers: list[lambda_.ILayerVersion],
        config: ControlPlaneConfig,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = ScalerFunction(self, "Function", table=table, code=code, layers=layers, config=config)
        self.rule = events.Rule(
            self,
            "EveryMinute",
            description="Run the lbcp scaler",
            schedule=SCHEDULE,
            targets=[
                targets.LambdaFunction(
                    self.function.function,
                    # A missed tick is healed by the next one: never run a stale one late.
                    retry_attempts=0,
                    max_event_age=Duration.minutes(1),
                )
            ],
        )
