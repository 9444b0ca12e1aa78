"""The reconciler: a function run every minute, and at once when a spec changes (DESIGN 2.2).

Two triggers, one code path: an EventBridge rule ticks every minute (a full
reconcile; a lost stream record or a crashed run is healed by it), and the
table's stream invokes it for the load balancers whose record changed.
Stream batches that keep failing go to a dead-letter queue with an alarm.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from lbcp import LB_ID_TAG_KEY, PRODUCT_TAG_KEY, PRODUCT_TAG_VALUE
from lbcp.dal.schema import GSI_BY_KIND
from lbcp.settings import ENV_AGENT_ARTIFACT_URL, ENV_API_ENDPOINT, ENV_EVENT_RETENTION_DAYS, ENV_TABLE_NAME
from stacks import nag
from stacks.config import ControlPlaneConfig
from stacks.fleet import FleetMachinery
from stacks.functions import LbcpFunction
from stacks.storage import ControlPlaneTable

RECONCILER_HANDLER: Final = "handlers.reconciler.lambda_handler"
RECONCILER_SERVICE_NAME: Final = "lbcp-reconciler"
SCHEDULE: Final = events.Schedule.rate(Duration.minutes(1))
# The public SSM parameters the default image comes from.
AL2023_PARAMETERS: Final = "parameter/aws/service/ami-amazon-linux-latest/*"

# Reads, the lease, status and events, LBVM markers and drain requests, and the
# finalizer's deletes: all item-level.
RECONCILER_TABLE_ACTIONS: Final = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:Query",
)


ONLY_LOAD_BALANCERS: Final = lambda_.FilterRule.is_equal("LB")


class ReconcilerFunction(LbcpFunction):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: ControlPlaneTable,
        code: lambda_.Code,
        layers: list[lambda_.ILayerVersion],
        config: ControlPlaneConfig,
        fleet: FleetMachinery,
        api_endpoint: str,
        agent_artifact_url: str,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description="lbcp reconciler: converges every load balancer's fleet to its spec",
            handler=RECONCILER_HANDLER,
            code=code,
            layers=layers,
            log_retention=config.log_retention,
            environment={
                ENV_TABLE_NAME: table.table.table_name,
                ENV_EVENT_RETENTION_DAYS: str(config.event_retention_days),
                ENV_API_ENDPOINT: api_endpoint,
                ENV_AGENT_ARTIFACT_URL: agent_artifact_url,
                **fleet.environment(),
                "POWERTOOLS_SERVICE_NAME": RECONCILER_SERVICE_NAME,
                "POWERTOOLS_LOG_LEVEL": "INFO",
                "PYDANTIC_DISABLE_PLUGINS": "__all__",
            },
            memory_size=1024,
            # Under the per-LB lease's 90 s, so a crashed run's lease lapses before anyone waits long.
            timeout=Duration.seconds(60),
        )
        self.add_to_role_policy(
            iam.PolicyStatement(
                sid="TableItems", actions=list(RECONCILER_TABLE_ACTIONS), resources=[table.table.table_arn]
            )
        )
        self.add_to_role_policy(
            iam.PolicyStatement(sid="ListByKind", actions=["dynamodb:Query"], resources=[table.index_arn(GSI_BY_KIND)])
        )
        self.add_to_role_policy(
            iam.PolicyStatement(
                sid="DefaultImage",
                actions=["ssm:GetParameter"],
                resources=[f"arn:{Aws.PARTITION}:ssm:{Aws.REGION}::{AL2023_PARAMETERS}"],
            )
        )
        # Terminations and interface deletions only of what carries our product tag
        # (the code also checks the load balancer's id before it acts).
        self.add_to_role_policy(
            iam.PolicyStatement(
                sid="RemoveOwnOrphans",
                actions=["ec2:TerminateInstances", "ec2:DeleteNetworkInterface"],
                resources=[
                    f"arn:{Aws.PARTITION}:ec2:{Aws.REGION}:{Aws.ACCOUNT_ID}:instance/*",
                    f"arn:{Aws.PARTITION}:ec2:{Aws.REGION}:{Aws.ACCOUNT_ID}:network-interface/*",
                ],
                conditions={
                    "StringEquals": {f"aws:ResourceTag/{PRODUCT_TAG_KEY}": PRODUCT_TAG_VALUE},
                    "Null": {f"aws:ResourceTag/{LB_ID_TAG_KEY}": "false"},
                },
            )
        )
        self.observe_policy = iam.Policy(
            self,
            "ObserveComputePolicy",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    sid="ObserveInstancesAndInterfaces",
                    actions=["ec2:DescribeInstances", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"],
                    resources=["*"],
                )
            ],
        )
        self.function.node.add_dependency(self.observe_policy)
        fleet.grant_start_lifecycle(self.role)
        self.entry_policy = fleet.grant_entry_management(self.role)
        self.function.node.add_dependency(self.entry_policy)
        nag.acknowledge_reconciler(self, self.observe_policy)


class Reconciler(Construct):
    """The reconciler function, its two triggers and its dead-letter queue."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: ControlPlaneTable,
        code: lambda_.Code,
        layers: list[lambda_.ILayerVersion],
        config: ControlPlaneConfig,
        fleet: FleetMachinery,
        api_endpoint: str,
        agent_artifact_url: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = ReconcilerFunction(
            self,
            "Function",
            table=table,
            code=code,
            layers=layers,
            config=config,
            fleet=fleet,
            api_endpoint=api_endpoint,
            agent_artifact_url=agent_artifact_url,
        )
        self.rule = events.Rule(
            self,
            "EveryMinute",
            description="Run the lbcp reconciler",
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
        self.dead_letters = sqs.Queue(
            self,
            "StreamDeadLetters",
            retention_period=Duration.days(14),
            enforce_ssl=True,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
        )
        self.function.function.add_event_source(
            sources.DynamoEventSource(
                table.table,
                starting_position=lambda_.StartingPosition.LATEST,
                batch_size=100,
                max_batching_window=Duration.seconds(1),
                retry_attempts=3,
                bisect_batch_on_error=True,
                on_failure=sources.SqsDlq(self.dead_letters),
                # Only load balancer records: events, LBVMs, leases and idempotency
                # records change far more often and are not spec changes.
                filters=[
                    lambda_.FilterCriteria.filter(
                        {"dynamodb": {"Keys": {"sk": {"S": lambda_.FilterRule.is_equal("LB")}}}}
                    )
                ],
            )
        )
        nag.acknowledge(self.dead_letters, nag.STREAM_DEAD_LETTER_QUEUE)
        self.dead_letter_alarm = cloudwatch.Alarm(
            self,
            "StreamDeadLettersAlarm",
            alarm_description="Spec changes the reconciler could not process (the minute tick still retries them)",
            metric=self.dead_letters.metric_approximate_number_of_messages_visible(period=Duration.minutes(5)),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
