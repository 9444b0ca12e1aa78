"""The consistency checker: a function every 15 minutes and on demand, and its metrics' alarms.

The function lists everything carrying our owner tags, compares it with the
table and the specs, stores the report, publishes one metric per finding kind
and writes events; the API invokes it for dry runs and for sweeps (one
resource per call). Its deletes are fenced by the owner tags in IAM, as the
code also checks them. Two alarms (orphans, drift) notify the control plane's
alarm topic (``stacks.alerting``).
"""

from __future__ import annotations

from typing import Any, Final

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from constructs import Construct

from lbcp.consistency.gc_policy import QUARANTINE_TAG
from lbcp.models.metrics import DIMENSION_FINDING_KIND, METRIC_CONSISTENCY_FINDINGS, NAMESPACE
from lbcp.settings import ENV_DRAIN_STATE_MACHINE_ARN, ENV_GC_POLICY, ENV_LIFECYCLE_STATE_MACHINE_ARN
from stacks import arns, nag, owner_tags
from stacks.alerting import Alerting, alarm_name, described
from stacks.arns import ELB
from stacks.entry_permissions import records_statement
from stacks.fleet import FleetMachinery
from stacks.functions import FunctionContext, LbcpFunction

CONSISTENCY_HANDLER: Final = "handlers.consistency.lambda_handler"
CONSISTENCY_SERVICE_NAME: Final = "lbcp-consistency"
CHECK_PERIOD: Final = Duration.minutes(15)
# Findings of these kinds alarm: an orphan costs money and may be exposed, drift weakens the entry.
ALARMED_KINDS: Final = ("orphan", "drift")

DESCRIBE_ACTIONS: Final = (
    "ec2:DescribeInstances",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeAddresses",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeVpcs",
    f"{ELB}:DescribeLoadBalancers",
    f"{ELB}:DescribeTargetGroups",
    f"{ELB}:DescribeTags",
    f"{ELB}:DescribeListeners",
    f"{ELB}:DescribeTargetHealth",
)
EC2_SWEEP_ACTIONS: Final = (
    "ec2:TerminateInstances",
    "ec2:DeleteNetworkInterface",
    "ec2:ReleaseAddress",
    "ec2:DeleteSecurityGroup",
)
ELB_SWEEP_ACTIONS: Final = (f"{ELB}:DeleteLoadBalancer", f"{ELB}:DeleteListener", f"{ELB}:DeleteTargetGroup")
EC2_OWNED_KINDS: Final = ("instance", "network-interface", "elastic-ip", "security-group")
# Only with automatic GC on (cdk.json ``lbcp:gc``): quarantine stops an instance and tags what it holds.
EC2_QUARANTINE_TAG_ACTIONS: Final = ("ec2:CreateTags", "ec2:DeleteTags")
ELB_QUARANTINE_TAG_ACTIONS: Final = (f"{ELB}:AddTags", f"{ELB}:RemoveTags")


def quarantine_tag_only() -> dict[str, Any]:
    """Ours, made for a load balancer, and the request names the quarantine tag and no other.

    ``ForAllValues`` alone would also match a request naming no key at all, and an
    EC2 ``DeleteTags`` without keys removes every tag, owner tags included: the
    ``Null`` test on ``aws:TagKeys`` closes that.
    """
    fenced = owner_tags.RESOURCE_TAGGED_FOR_A_LOAD_BALANCER
    return {
        **fenced,
        "Null": {**fenced["Null"], "aws:TagKeys": "false"},
        "ForAllValues:StringEquals": {"aws:TagKeys": [QUARANTINE_TAG]},
    }


class ConsistencyFunction(LbcpFunction):
    def __init__(self, scope: Construct, construct_id: str, *, context: FunctionContext, fleet: FleetMachinery) -> None:
        super().__init__(
            scope,
            construct_id,
            context=context,
            description="lbcp consistency checker: finds orphans, drift, leaks and stuck executions; sweeps orphans",
            handler=CONSISTENCY_HANDLER,
            service_name=CONSISTENCY_SERVICE_NAME,
            environment={
                ENV_LIFECYCLE_STATE_MACHINE_ARN: arns.state_machine(fleet.lifecycle_name),
                ENV_DRAIN_STATE_MACHINE_ARN: arns.state_machine(fleet.drain_name),
                # Always explicit, "auto": false included: what the function does is read off the template.
                ENV_GC_POLICY: context.config.gc_policy.to_env(),
                **fleet.fleet_config.environment(),
            },
            memory_size=1024,
            # A full listing of a large account, well under the API's 30 s for the dry run it also serves.
            timeout=Duration.seconds(25),
        )
        # Reads of records and LBVMs, the report (Get/Put) and the audit log (Put, Query).
        self.add_to_role_policy(
            context.table.items_statement(("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"))
        )
        for statement in context.table.lbvm_listing_statements():
            self.add_to_role_policy(statement)
        self.add_to_role_policy(
            iam.PolicyStatement(
                sid="RunningExecutions",
                actions=["states:ListExecutions"],
                resources=[arns.state_machine(fleet.lifecycle_name), arns.state_machine(fleet.drain_name)],
            )
        )
        self.add_to_role_policy(
            iam.PolicyStatement(
                # The sweep stops a stuck execution after re-reading it (lbctl gc sweep --apply).
                sid="StopStuckExecutions",
                actions=["states:DescribeExecution", "states:StopExecution"],
                resources=[arns.executions(fleet.lifecycle_name), arns.executions(fleet.drain_name)],
            )
        )
        self.add_to_role_policy(
            iam.PolicyStatement(
                sid="SweepOwnEc2Orphans",
                actions=list(EC2_SWEEP_ACTIONS),
                resources=[arns.ec2(kind) for kind in EC2_OWNED_KINDS],
                conditions=owner_tags.RESOURCE_TAGGED_FOR_A_LOAD_BALANCER,
            )
        )
        self.add_to_role_policy(
            iam.PolicyStatement(
                sid="SweepOwnEntryOrphans",
                actions=list(ELB_SWEEP_ACTIONS),
                resources=[arns.entry_load_balancers(), arns.entry_target_groups(), arns.entry_listeners()],
                conditions=owner_tags.RESOURCE_TAGGED_FOR_A_LOAD_BALANCER,
            )
        )
        if context.config.gc_policy.auto:
            self._allow_quarantine()
        if fleet.fleet_config.hosted_zone_id:
            self.add_to_role_policy(records_statement("ZoneRecords", fleet.fleet_config.hosted_zone_id))
        self.describe_policy = self.add_policy(
            "DescribePolicy",
            iam.PolicyStatement(sid="ListOwnedResources", actions=list(DESCRIBE_ACTIONS), resources=["*"]),
            iam.PolicyStatement(
                sid="PublishFindingMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": NAMESPACE}},
            ),
        )
        nag.acknowledge_consistency(self, self.describe_policy)

    def _allow_quarantine(self) -> None:
        """What automatic GC needs beyond the manual sweep's deletes, fenced like them by the owner tags.

        Not granted while ``auto`` is off: a role that cannot stop an instance
        cannot quarantine one by mistake.
        """
        self.add_to_role_policy(
            iam.PolicyStatement(
                sid="StopOwnOrphanInstances",
                actions=["ec2:StopInstances"],
                resources=[arns.ec2("instance")],
                conditions=owner_tags.RESOURCE_TAGGED_FOR_A_LOAD_BALANCER,
            )
        )
        self.add_to_role_policy(
            iam.PolicyStatement(
                sid="QuarantineTagOwnEc2Orphans",
                actions=list(EC2_QUARANTINE_TAG_ACTIONS),
                resources=[arns.ec2(kind) for kind in EC2_OWNED_KINDS],
                conditions=quarantine_tag_only(),
            )
        )
        self.add_to_role_policy(
            iam.PolicyStatement(
                sid="QuarantineTagOwnEntryOrphans",
                actions=list(ELB_QUARANTINE_TAG_ACTIONS),
                resources=[arns.entry_load_balancers(), arns.entry_target_groups()],
                conditions=quarantine_tag_only(),
            )
        )


class ConsistencyChecker(Construct):
    """The function, its 15-minute schedule and the alarms on orphans and drift (to the control plane's topic)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        context: FunctionContext,
        fleet: FleetMachinery,
        alerting: Alerting,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = ConsistencyFunction(self, "Function", context=context, fleet=fleet)
        self.rule = events.Rule(
            self,
            "Every15Minutes",
            description="Run the lbcp consistency checker",
            schedule=events.Schedule.rate(CHECK_PERIOD),
            # Level-triggered like the reconciler: a missed run is healed by the next one.
            targets=[targets.LambdaFunction(self.function.function, retry_attempts=0, max_event_age=CHECK_PERIOD)],
        )
        self.alarms = {
            kind: cloudwatch.Alarm(
                self,
                f"{kind.capitalize()}Alarm",
                alarm_name=alarm_name(self, f"consistency-{kind}"),
                alarm_description=described(
                    f"consistency-{kind}", f"The consistency checker found {kind} resources (lbctl gc report)"
                ),
                metric=cloudwatch.Metric(
                    namespace=NAMESPACE,
                    metric_name=METRIC_CONSISTENCY_FINDINGS,
                    dimensions_map={DIMENSION_FINDING_KIND: kind},
                    statistic="Maximum",
                    period=CHECK_PERIOD,
                ),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                # Every run publishes every kind (zeros too): no data means no run, not no findings.
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            for kind in ALARMED_KINDS
        }
        for alarm in self.alarms.values():
            alerting.watch(alarm)
