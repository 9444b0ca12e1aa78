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

The schedule's invocation dispatches (``lbcp.reconcile.dispatch``): the due load
balancers, in shards, onto a FIFO work queue that the worker function consumes,
one shard an invocation, at most ``lbcp:reconcileWorkerConcurrency`` at once. The
worker is the same code with the same rights (``ReconcilerFunction``, another
handler); only the dispatcher may send to the queue, only the worker consumes it,
and a shard whose tick raised 3 times goes to a FIFO dead-letter queue with an alarm.
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
    ENV_RECONCILE_SHARD_SIZE,
    ENV_RECONCILE_WORK_QUEUE_URL,
)
from stacks import arns, nag, owner_tags
from stacks.alerting import Alerting, alarm_name, described
from stacks.entry_permissions import EntryPermissions
from stacks.fleet import FleetMachinery
from stacks.functions import FunctionContext, LbcpFunction
from stacks.schedule import every_minute
from stacks.storage import ITEM_ACTIONS

RECONCILER_HANDLER: Final = "handlers.reconciler.lambda_handler"
WORKER_HANDLER: Final = "handlers.reconcile_worker.lambda_handler"
RECONCILER_SERVICE_NAME: Final = SERVICE_RECONCILER
# Under the per-LB lease's 90 s, so a crashed run's lease lapses before anyone waits long.
RECONCILER_TIMEOUT: Final = Duration.seconds(60)
# A shard is planned and acted on within the same bound as an inline tick.
WORKER_TIMEOUT: Final = RECONCILER_TIMEOUT
# AWS's advice for an SQS event source: at least 6x the function's timeout, so a message is not handed to a
# second worker while the first (retried by Lambda on throttling) may still be at it.
WORK_VISIBILITY_TIMEOUT: Final = Duration.seconds(6 * WORKER_TIMEOUT.to_seconds())
# A shard whose tick raised three times goes to the work queue's dead-letter queue (the next minute's
# dispatch sends its load balancers again: the dead letter says something keeps failing, not that work is lost).
WORK_MAX_RECEIVES: Final = 3
# A shard waiting longer than two ticks: the minute's shards are not all taken within the minute.
WORK_BACKLOG_SECONDS: Final = 120


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
        handler: str = RECONCILER_HANDLER,
        description: str = "lbcp reconciler: converges every load balancer's fleet to its spec",
    ) -> None:
        """The reconciler's code and everything it may do; ``handler`` picks the entry point (the same rights)."""
        super().__init__(
            scope,
            construct_id,
            context=context,
            description=description,
            handler=handler,
            service_name=RECONCILER_SERVICE_NAME,
            environment={
                ENV_AGENT_ENDPOINT: agent_endpoint,
                ENV_AGENT_ARTIFACT_URL: agent_artifact_url,
                **fleet.environment(),
            },
            memory_size=1024,
            timeout=RECONCILER_TIMEOUT if handler == RECONCILER_HANDLER else WORKER_TIMEOUT,
        )
        # Reads, the lease, status and events, LBVM markers and drain requests, and the
        # finalizer's deletes: all item-level.
        self.add_to_role_policy(context.table.items_statement(ITEM_ACTIONS))
        # The LBVM listing's index keys and batch reads; a shard's tick batch-reads its records and
        # streaks by key with the same right (BatchGetItem on the table).
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
        self.worker = ReconcilerFunction(
            self,
            "Worker",
            context=context,
            fleet=fleet,
            agent_endpoint=agent_endpoint,
            agent_artifact_url=agent_artifact_url,
            handler=WORKER_HANDLER,
            description="lbcp reconciler worker: reconciles one shard of load balancers from the work queue",
        )
        # Both reconcile (inline, or a shard): both back off and dead-letter a failing load balancer.
        for reconciling in (self.function, self.worker):
            # Send only (not grant_send_messages, which adds GetQueueAttributes and GetQueueUrl): the URL is given.
            reconciling.add_to_role_policy(
                iam.PolicyStatement(
                    sid="SendFailingLoadBalancers",
                    actions=["sqs:SendMessage"],
                    resources=[self.failing_load_balancers.queue_arn],
                )
            )
            reconciling.function.add_environment(
                ENV_RECONCILE_DEAD_LETTER_QUEUE_URL, self.failing_load_balancers.queue_url
            )
            reconciling.function.add_environment(
                ENV_RECONCILE_DEAD_LETTER_AFTER, str(BackoffSettings().dead_letter_after)
            )
        self._work_queue(context, alerting)
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

    def _work_queue(self, context: FunctionContext, alerting: Alerting) -> None:
        """The FIFO work queue the schedule dispatches shards to, its dead letters, and the worker's event source."""
        self.work_dead_letters = sqs.Queue(
            self,
            "WorkDeadLetters",
            fifo=True,
            retention_period=Duration.days(14),
            enforce_ssl=True,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
        )
        self.work_queue = sqs.Queue(
            self,
            "WorkQueue",
            fifo=True,
            # The dispatcher names each message's deduplication id (tick minute and shard).
            content_based_deduplication=False,
            visibility_timeout=WORK_VISIBILITY_TIMEOUT,
            # A shard older than a few minutes is superseded by the dispatches since.
            retention_period=Duration.hours(1),
            enforce_ssl=True,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=WORK_MAX_RECEIVES, queue=self.work_dead_letters),
        )
        # The dispatcher may only send to it (the URL is given: no GetQueueUrl or attributes).
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                sid="DispatchShards", actions=["sqs:SendMessage"], resources=[self.work_queue.queue_arn]
            )
        )
        self.function.function.add_environment(ENV_RECONCILE_WORK_QUEUE_URL, self.work_queue.queue_url)
        self.function.function.add_environment(ENV_RECONCILE_SHARD_SIZE, str(context.config.reconcile_shard_size))
        # One shard an invocation; at most this many at once (the fleet's AWS calls, and the table's, in bounds).
        self.worker.function.add_event_source(
            sources.SqsEventSource(
                self.work_queue,
                batch_size=1,
                report_batch_item_failures=True,
                max_concurrency=context.config.reconcile_worker_concurrency,
            )
        )
        # Workers that do not keep up (shards x their duration > concurrency x a minute): the oldest shard ages.
        self.work_backlog_alarm = alerting.watch(
            cloudwatch.Alarm(
                self,
                "WorkBacklogAlarm",
                alarm_name=alarm_name(self, "reconcile-work-backlog"),
                alarm_description=described(
                    "reconcile-work-backlog",
                    f"The oldest shard in the reconciler's work queue waited over {WORK_BACKLOG_SECONDS} s "
                    "in 3 of the last 5 minutes: the workers do not keep up with the schedule",
                ),
                metric=self.work_queue.metric_approximate_age_of_oldest_message(
                    period=Duration.minutes(1), statistic="Maximum"
                ),
                threshold=WORK_BACKLOG_SECONDS,
                evaluation_periods=5,
                datapoints_to_alarm=3,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                # SQS publishes the queue's metrics while it exists; none is no backlog.
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
        self.work_dead_letters_alarm = alerting.watch(
            cloudwatch.Alarm(
                self,
                "WorkDeadLettersAlarm",
                alarm_name=alarm_name(self, "reconcile-work-dead-letters"),
                alarm_description=described(
                    "reconcile-work-dead-letters",
                    "Shards of load balancers whose reconcile raised 3 times in a row (the next minute dispatches "
                    "them again)",
                ),
                metric=self.work_dead_letters.metric_approximate_number_of_messages_visible(period=Duration.minutes(5)),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                # No datapoints while the queue is empty and idle: nothing dead-lettered.
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
