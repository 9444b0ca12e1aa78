"""The reconciler: a function run every minute, and at once when a spec changes (DESIGN 2.2).

Three triggers, one code path: an EventBridge rule ticks every minute (a full
reconcile; a lost stream record or a crashed run is healed by it), the
table's stream invokes it for the load balancers whose record changed, and
EC2's state-change events invoke it for the load balancer of an instance that
is stopping or going away (so a lost LBVM leaves the entry in seconds).
Stream batches that keep failing go to a dead-letter queue with an alarm.
Load balancers whose attempts keep failing (``lbcp.reconcile.backoff``) go to
a second dead-letter queue, one message per failure streak, with an alarm of
its own: the function may only send to it, and nothing consumes it (the
reconciler keeps retrying at the backoff cap; a person reads why).
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from lbcp.models.app_metrics import SERVICE_RECONCILER
from lbcp.reconcile.backoff import BackoffSettings
from lbcp.reconcile.compute import INSTANCE_LOST_STATES, INSTANCE_STATE_CHANGE
from lbcp.settings import (
    ENV_AGENT_ARTIFACT_URL,
    ENV_AGENT_ENDPOINT,
    ENV_RECONCILE_DEAD_LETTER_AFTER,
    ENV_RECONCILE_DEAD_LETTER_QUEUE_URL,
)
from stacks import arns, nag, owner_tags
from stacks.alerting import Alerting, alarm_name, described
from stacks.entry_permissions import EntryPermissions
from stacks.fleet import FleetMachinery
from stacks.functions import FunctionContext, LbcpFunction
from stacks.schedule import every_minute
from stacks.storage import ITEM_ACTIONS

RECONCILER_HANDLER: Final = "handlers.reconciler.lambda_handler"
RECONCILER_SERVICE_NAME: Final = SERVICE_RECONCILER
# Under the per-LB lease's 90 s, so a crashed run's lease lapses before anyone waits long.
RECONCILER_TIMEOUT: Final = Duration.seconds(60)


class ReconcilerFunction(LbcpFunction):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        context: FunctionContext,
        fleet: FleetMachinery,
        agent_endpoint: str,
        agent_artifact_url: str,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            context=context,
            description="lbcp reconciler: converges every load balancer's fleet to its spec",
            handler=RECONCILER_HANDLER,
            service_name=RECONCILER_SERVICE_NAME,
            environment={
                ENV_AGENT_ENDPOINT: agent_endpoint,
                ENV_AGENT_ARTIFACT_URL: agent_artifact_url,
                **fleet.environment(),
            },
            memory_size=1024,
            timeout=RECONCILER_TIMEOUT,
        )
        # Reads, the lease, status and events, LBVM markers and drain requests, and the
        # finalizer's deletes: all item-level.
        self.add_to_role_policy(context.table.items_statement(ITEM_ACTIONS))
        for statement in context.table.lbvm_listing_statements():
            self.add_to_role_policy(statement)
        self.add_to_role_policy(
            iam.PolicyStatement(
                sid="DefaultImage",
                actions=["ssm:GetParameter"],
                resources=[arns.default_image_parameters()],
            )
        )
        # The alarms a rollout is gated on (rollout.alarmNames), read while it is active; read-only.
        self.add_to_role_policy(
            iam.PolicyStatement(
                sid="ReadRolloutAlarms", actions=["cloudwatch:DescribeAlarms"], resources=[arns.alarms()]
            )
        )
        # Terminations and interface deletions only of what carries our product tag
        # (the code also checks the load balancer's id before it acts).
        self.add_to_role_policy(
            iam.PolicyStatement(
                sid="RemoveOwnOrphans",
                actions=["ec2:TerminateInstances", "ec2:DeleteNetworkInterface"],
                resources=[arns.ec2("instance"), arns.ec2("network-interface")],
                conditions=owner_tags.RESOURCE_TAGGED_FOR_A_LOAD_BALANCER,
            )
        )
        self.observe_policy = self.add_policy(
            "ObserveComputePolicy",
            iam.PolicyStatement(
                sid="ObserveInstancesAndInterfaces",
                actions=["ec2:DescribeInstances", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"],
                resources=["*"],
            ),
        )
        fleet.grant_start_lifecycle(self.role)
        self.entry_permissions = EntryPermissions(
            self, "EntryPermissions", role=self.role, hosted_zone_id=fleet.fleet_config.hosted_zone_id
        )
        self.function.node.add_dependency(self.entry_permissions.management)
        nag.acknowledge_reconciler(self, self.observe_policy)


class Reconciler(Construct):
    """The reconciler function, its two triggers and its dead-letter queue."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        context: FunctionContext,
        fleet: FleetMachinery,
        agent_endpoint: str,
        agent_artifact_url: str,
        alerting: Alerting,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = ReconcilerFunction(
            self,
            "Function",
            context=context,
            fleet=fleet,
            agent_endpoint=agent_endpoint,
            agent_artifact_url=agent_artifact_url,
        )
        self.rule = every_minute(
            self, "EveryMinute", function=self.function.function, description="Run the lbcp reconciler"
        )
        # EC2 cannot filter these by tag: the function looks the instance's owner up, and ignores others.
        self.instance_state_rule = events.Rule(
            self,
            "InstanceStateChanges",
            description="Run the lbcp reconciler for the load balancer of an instance that stops serving",
            event_pattern=events.EventPattern(
                source=["aws.ec2"],
                detail_type=[INSTANCE_STATE_CHANGE],
                detail={"state": list(INSTANCE_LOST_STATES)},
            ),
            # A lost delivery is healed by the minute tick; a late one only repeats what it did.
            targets=[
                targets.LambdaFunction(self.function.function, retry_attempts=2, max_event_age=Duration.minutes(2))
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
                context.table.table,
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
        self.dead_letter_alarm = alerting.watch(
            cloudwatch.Alarm(
                self,
                "StreamDeadLettersAlarm",
                alarm_name=alarm_name(self, "stream-dead-letters"),
                alarm_description=described(
                    "stream-dead-letters",
                    "Spec changes the reconciler could not process (the minute tick still retries them)",
                ),
                metric=self.dead_letters.metric_approximate_number_of_messages_visible(period=Duration.minutes(5)),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                # No datapoints while the queue is empty and idle: nothing dead-lettered.
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
        self.failing_load_balancers = sqs.Queue(
            self,
            "FailingLoadBalancers",
            retention_period=Duration.days(14),
            enforce_ssl=True,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
        )
        nag.acknowledge(self.failing_load_balancers, nag.RECONCILE_DEAD_LETTER_QUEUE)
        # Send only (not grant_send_messages, which adds GetQueueAttributes and GetQueueUrl): the URL is given.
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                sid="SendFailingLoadBalancers",
                actions=["sqs:SendMessage"],
                resources=[self.failing_load_balancers.queue_arn],
            )
        )
        self.function.function.add_environment(
            ENV_RECONCILE_DEAD_LETTER_QUEUE_URL, self.failing_load_balancers.queue_url
        )
        self.function.function.add_environment(
            ENV_RECONCILE_DEAD_LETTER_AFTER, str(BackoffSettings().dead_letter_after)
        )
        self.failing_load_balancers_alarm = alerting.watch(
            cloudwatch.Alarm(
                self,
                "FailingLoadBalancersAlarm",
                alarm_name=alarm_name(self, "failing-load-balancers"),
                alarm_description=described(
                    "failing-load-balancers",
                    "Load balancers whose reconcile failed many times in a row (each message says which and why; "
                    "the reconciler keeps retrying them at its backoff cap)",
                ),
                metric=self.failing_load_balancers.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(5)
                ),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                # No datapoints while the queue is empty and idle: nothing dead-lettered.
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
