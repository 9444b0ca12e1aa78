"""The LBVM fleet machinery: the lifecycle and drain state machines, their tasks function, the LBVM role.

- The two state machines come from ``statemachines/*.asl.json`` through
  ``DefinitionBody.from_string``, so the template carries the definitions
  inline and cfn-lint validates them. They need no substitutions: the ARNs
  they call (the tasks function, the drain machine) arrive in the execution
  input (``LifecycleInput``), which keeps the ASL files identical in AWS and in
  the local runtime. Both log everything to a log group with retention and
  trace with X-Ray.
- Each state machine has a role of its own, with only what its states call:
  EC2 creates fenced by owner tags on create (``aws:RequestTag``), EC2
  deletes fenced by the owner tag on the resource (``ec2:ResourceTag``),
  ``iam:PassRole`` for the LBVM role only, item actions on the table, the
  tasks function, and for the lifecycle the drain machine plus the EventBridge
  rule ``.sync`` integrations use.
- The tasks function (``handlers.lifecycle_tasks``) registers and deregisters
  LBVMs with the entry, stores callback tokens, and writes events.
- The LBVM instance role: the agent's two API routes, metrics in the ``lbcp``
  namespace, certificate export.

Other functions get what they need through ``grant_*`` (the reconciler starts
lifecycles and manages the entry; the heartbeat handler answers callbacks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aws_cdk import Aws, CfnResource, Lazy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from lbcp import PRODUCT_TAG_KEY, PRODUCT_TAG_VALUE
from lbcp.entry.names import NAME_PREFIX
from lbcp.lifecycle.protocol import DRAIN_STATE_MACHINE_FILE, LIFECYCLE_STATE_MACHINE_FILE
from lbcp.models.agent import AGENT_CONFIG_PATH, AGENT_HEARTBEAT_PATH
from lbcp.settings import (
    ENV_DNS_DOMAIN,
    ENV_DRAIN_STATE_MACHINE_ARN,
    ENV_EVENT_RETENTION_DAYS,
    ENV_HOSTED_ZONE_ID,
    ENV_INSTANCE_PROFILE_ARN,
    ENV_LIFECYCLE_STATE_MACHINE_ARN,
    ENV_TABLE_NAME,
    ENV_TASKS_FUNCTION_ARN,
)
from stacks import nag
from stacks.config import REPO_ROOT, ControlPlaneConfig
from stacks.functions import LbcpFunction, _DependsOnWithoutRole
from stacks.storage import ControlPlaneTable

STATEMACHINES_DIR: Final = REPO_ROOT / "statemachines"
TASKS_HANDLER: Final = "handlers.lifecycle_tasks.lambda_handler"
TASKS_SERVICE_NAME: Final = "lbcp-lifecycle"
METRICS_NAMESPACE: Final = "lbcp"
# The managed rule through which Step Functions learns that a .sync child ended.
SYNC_EVENTS_RULE: Final = "StepFunctionsGetEventsForStepFunctionsExecutionRule"
CTX_HOSTED_ZONE_ID: Final = "lbcp:hostedZoneId"
CTX_DNS_DOMAIN: Final = "lbcp:dnsDomain"

# What the tasks function does to the table: read LBVM and load balancer
# records, version-conditioned LBVM updates, event puts.
TASKS_TABLE_ACTIONS: Final = ("dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem")

REQUEST_TAGGED: Final = {"StringEquals": {f"aws:RequestTag/{PRODUCT_TAG_KEY}": PRODUCT_TAG_VALUE}}
EC2_RESOURCE_TAGGED: Final = {"StringEquals": {f"ec2:ResourceTag/{PRODUCT_TAG_KEY}": PRODUCT_TAG_VALUE}}
RESOURCE_TAGGED: Final = {"StringEquals": {f"aws:ResourceTag/{PRODUCT_TAG_KEY}": PRODUCT_TAG_VALUE}}


@dataclass(frozen=True)
class FleetConfig:
    """Optional DNS settings (context ``lbcp:hostedZoneId`` and ``lbcp:dnsDomain``)."""

    hosted_zone_id: str | None
    dns_domain: str | None

    @staticmethod
    def from_context(scope: Construct) -> FleetConfig:
        zone = scope.node.try_get_context(CTX_HOSTED_ZONE_ID) or None
        domain = scope.node.try_get_context(CTX_DNS_DOMAIN) or None
        if (zone is None) != (domain is None):
            raise ValueError(f"set both {CTX_HOSTED_ZONE_ID!r} and {CTX_DNS_DOMAIN!r}, or neither")
        return FleetConfig(str(zone) if zone else None, str(domain).strip(".") if domain else None)


def _arn(service: str, resource: str, name: str, *, account: str | None = None, separator: str = "/") -> str:
    """An ARN pattern in pseudo parameters, never the stack's literal account or region: the
    template is the same in every environment, and so are the cdk-nag finding ids that embed it."""
    owner = Aws.ACCOUNT_ID if account is None else account
    return f"arn:{Aws.PARTITION}:{service}:{Aws.REGION}:{owner}:{resource}{separator}{name}"


def _ec2(resource: str) -> str:
    return _arn("ec2", resource, "*")


def _state_machine_arn(name: str) -> str:
    return _arn("states", "stateMachine", name, separator=":")


def hosted_zone_arn(zone_id: str) -> str:
    return f"arn:{Aws.PARTITION}:route53:::hostedzone/{zone_id}"


class LbvmInstanceRole(Construct):
    """The role (and instance profile) of every LBVM: what its agent may call."""

    def __init__(self, scope: Construct, construct_id: str, *, api_id: str) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="lbcp LBVM instances: the agent's API routes, metrics, certificate export",
        )
        self.profile = iam.InstanceProfile(self, "Profile", role=self.role)
        self.policy = iam.Policy(
            self,
            "AgentPolicy",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    sid="AgentRoutes",
                    actions=["execute-api:Invoke"],
                    # Any stage ($default today), these two routes only.
                    resources=[
                        _arn("execute-api", api_id, f"*/GET{AGENT_CONFIG_PATH}"),
                        _arn("execute-api", api_id, f"*/POST{AGENT_HEARTBEAT_PATH}"),
                    ],
                ),
                iam.PolicyStatement(
                    sid="AgentMetrics",
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
                ),
                iam.PolicyStatement(
                    sid="ExportListenerCertificates",
                    actions=["acm:ExportCertificate"],
                    resources=[_arn("acm", "certificate", "*")],
                ),
            ],
        )
        nag.acknowledge_lbvm_role(self.policy)


class LifecycleTasksFunction(LbcpFunction):
    """``handlers.lifecycle_tasks``: entry registration, callback tokens, events."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: ControlPlaneTable,
        code: lambda_.Code,
        layers: list[lambda_.ILayerVersion],
        config: ControlPlaneConfig,
        fleet_config: FleetConfig,
        lifecycle_state_machine_arn: str,
    ) -> None:
        environment = {
            ENV_TABLE_NAME: table.table.table_name,
            ENV_EVENT_RETENTION_DAYS: str(config.event_retention_days),
            "POWERTOOLS_SERVICE_NAME": TASKS_SERVICE_NAME,
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "PYDANTIC_DISABLE_PLUGINS": "__all__",
        }
        if fleet_config.hosted_zone_id and fleet_config.dns_domain:
            environment[ENV_HOSTED_ZONE_ID] = fleet_config.hosted_zone_id
            environment[ENV_DNS_DOMAIN] = fleet_config.dns_domain
        super().__init__(
            scope,
            construct_id,
            description="lbcp lifecycle tasks: entry registration, callback tokens and events for the LBVM machines",
            handler=TASKS_HANDLER,
            code=code,
            layers=layers,
            log_retention=config.log_retention,
            environment=environment,
            memory_size=512,
        )
        self.add_to_role_policy(
            iam.PolicyStatement(sid="TableItems", actions=list(TASKS_TABLE_ACTIONS), resources=[table.table.table_arn])
        )
        # A drain request that raced a state change is delivered by completing the new token at once.
        # The ARN is formatted, not referenced: the state machine's role references this function.
        self.add_to_role_policy(
            iam.PolicyStatement(
                sid="CompleteLifecycleCallbacks",
                actions=["states:SendTaskSuccess"],
                resources=[lifecycle_state_machine_arn],
            )
        )
        self.add_to_role_policy(
            iam.PolicyStatement(
                sid="RegisterTargets",
                actions=["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"],
                resources=[_arn("elasticloadbalancing", "targetgroup", f"{NAME_PREFIX}*/*")],
                conditions=RESOURCE_TAGGED,
            )
        )
        if fleet_config.hosted_zone_id:
            self.add_to_role_policy(
                iam.PolicyStatement(
                    sid="LbvmRecords",
                    actions=["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"],
                    resources=[hosted_zone_arn(fleet_config.hosted_zone_id)],
                )
            )
        # Describe actions accept only Resource "*": a policy of their own, acknowledged alone.
        self.describe_policy = iam.Policy(
            self,
            "DescribePolicy",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    sid="DescribeEntry",
                    actions=[
                        "elasticloadbalancing:DescribeLoadBalancers",
                        "elasticloadbalancing:DescribeTargetGroups",
                        "ec2:DescribeInstances",
                    ],
                    resources=["*"],
                )
            ],
        )
        self.function.node.add_dependency(self.describe_policy)
        nag.acknowledge_tasks_function(self, self.describe_policy)


class _StateMachine(Construct):
    """One ASL file as a Standard state machine with its own role, logs and tracing."""

    def __init__(
        self, scope: Construct, construct_id: str, *, file_name: str, name: str, log_retention: logs.RetentionDays
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "states.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
            ),
            description=f"Execution role of the lbcp state machine {name}",
        )
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention)
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string((STATEMACHINES_DIR / file_name).read_text(encoding="utf-8")),
            role=self.role,
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
        )
        # Both machines find the LBVM's instance and interface by its tag; EC2
        # Describe actions accept only Resource "*", so they are alone in this policy.
        self.describe_policy = iam.Policy(
            self,
            "DescribePolicy",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    sid="FindByLbvmTag",
                    actions=["ec2:DescribeInstances", "ec2:DescribeNetworkInterfaces"],
                    resources=["*"],
                )
            ],
        )
        self.state_machine.node.add_dependency(self.describe_policy)
        # Depend on the role's policies (they must exist before the first execution),
        # not on the role itself, which the RoleArn GetAtt orders already (cfn-lint W3005).
        cfn_state_machine = self.state_machine.node.default_child
        assert isinstance(cfn_state_machine, CfnResource)
        cfn_state_machine.add_override(
            "DependsOn", Lazy.uncached_list(_DependsOnWithoutRole(cfn_state_machine, self.role))
        )

    def allow(self, statement: iam.PolicyStatement) -> None:
        self.role.add_to_policy(statement)

    @property
    def default_policy(self) -> iam.Policy:
        policy = self.role.node.find_child("DefaultPolicy")
        assert isinstance(policy, iam.Policy)
        return policy


class FleetMachinery(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: ControlPlaneTable,
        code: lambda_.Code,
        layers: list[lambda_.ILayerVersion],
        config: ControlPlaneConfig,
        api_id: str,
        fleet_config: FleetConfig | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.fleet_config = fleet_config or FleetConfig.from_context(self)
        stack_name = Stack.of(self).stack_name
        lifecycle_name = f"{stack_name}-lbvm-lifecycle"
        drain_name = f"{stack_name}-lbvm-drain"

        self.lbvm_role = LbvmInstanceRole(self, "LbvmInstanceRole", api_id=api_id)
        self.tasks = LifecycleTasksFunction(
            self,
            "LifecycleTasks",
            table=table,
            code=code,
            layers=layers,
            config=config,
            fleet_config=self.fleet_config,
            lifecycle_state_machine_arn=_state_machine_arn(lifecycle_name),
        )
        self.drain = _StateMachine(
            self, "Drain", file_name=DRAIN_STATE_MACHINE_FILE, name=drain_name, log_retention=config.log_retention
        )
        self.lifecycle = _StateMachine(
            self,
            "Lifecycle",
            file_name=LIFECYCLE_STATE_MACHINE_FILE,
            name=lifecycle_name,
            log_retention=config.log_retention,
        )
        self._allow_drain(table)
        self._allow_lifecycle(table, drain_name)
        nag.acknowledge_state_machine(self.drain.default_policy, self.drain.describe_policy, launches=False)
        nag.acknowledge_state_machine(self.lifecycle.default_policy, self.lifecycle.describe_policy, launches=True)

    # --- the state machines' permissions ----------------------------------------------

    def _common(self, machine: _StateMachine, table: ControlPlaneTable, table_actions: list[str]) -> None:
        function_arn = self.tasks.function.function_arn
        machine.allow(
            iam.PolicyStatement(
                sid="TasksFunction",
                actions=["lambda:InvokeFunction"],
                # Always invoked unqualified (the ARN in the execution input): no versions, no aliases.
                resources=[function_arn],
            )
        )
        machine.allow(iam.PolicyStatement(sid="LbvmRecords", actions=table_actions, resources=[table.table.table_arn]))

    def _allow_drain(self, table: ControlPlaneTable) -> None:
        machine = self.drain
        self._common(machine, table, ["dynamodb:GetItem"])
        machine.allow(
            iam.PolicyStatement(
                sid="TerminateOwnInstances",
                actions=["ec2:TerminateInstances"],
                resources=[_ec2("instance")],
                conditions=EC2_RESOURCE_TAGGED,
            )
        )
        machine.allow(
            iam.PolicyStatement(
                sid="DeleteOwnInterfaces",
                actions=["ec2:DeleteNetworkInterface"],
                resources=[_ec2("network-interface")],
                conditions=EC2_RESOURCE_TAGGED,
            )
        )

    def _allow_lifecycle(self, table: ControlPlaneTable, drain_name: str) -> None:
        machine = self.lifecycle
        self._common(machine, table, ["dynamodb:UpdateItem"])
        machine.allow(
            iam.PolicyStatement(
                sid="CreateTaggedInterface",
                actions=["ec2:CreateNetworkInterface"],
                resources=[_ec2("network-interface")],
                conditions=REQUEST_TAGGED,
            )
        )
        machine.allow(
            iam.PolicyStatement(
                sid="InterfaceSubnetAndGroups",
                actions=["ec2:CreateNetworkInterface", "ec2:RunInstances"],
                resources=[_ec2("subnet"), _ec2("security-group")],
            )
        )
        machine.allow(
            iam.PolicyStatement(
                sid="LaunchTaggedInstance",
                actions=["ec2:RunInstances"],
                resources=[_ec2("instance"), _ec2("volume")],
                conditions=REQUEST_TAGGED,
            )
        )
        machine.allow(
            iam.PolicyStatement(
                sid="LaunchOnOwnInterface",
                actions=["ec2:RunInstances"],
                resources=[_ec2("network-interface")],
                conditions=EC2_RESOURCE_TAGGED,
            )
        )
        machine.allow(
            iam.PolicyStatement(
                sid="LaunchFromAnyImage",
                actions=["ec2:RunInstances"],
                # Images are the users' (or AWS's) own; the spec names them at run time.
                resources=[_arn("ec2", "image", "*", account="")],
            )
        )
        machine.allow(
            iam.PolicyStatement(
                sid="TagOnCreateOnly",
                actions=["ec2:CreateTags"],
                resources=[_ec2("instance"), _ec2("volume"), _ec2("network-interface")],
                conditions={"StringEquals": {"ec2:CreateAction": ["RunInstances", "CreateNetworkInterface"]}},
            )
        )
        machine.allow(
            iam.PolicyStatement(
                sid="PassLbvmRole",
                actions=["iam:PassRole"],
                resources=[self.lbvm_role.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            )
        )
        machine.allow(
            iam.PolicyStatement(
                sid="StartDrain",
                actions=["states:StartExecution"],
                resources=[self.drain.state_machine.state_machine_arn],
            )
        )
        machine.allow(
            iam.PolicyStatement(
                sid="FollowDrain",
                actions=["states:DescribeExecution", "states:StopExecution"],
                resources=[_arn("states", "execution", f"{drain_name}:*", separator=":")],
            )
        )
        machine.allow(
            iam.PolicyStatement(
                sid="SyncCompletionEvents",
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[_arn("events", "rule", SYNC_EVENTS_RULE)],
            )
        )

    # --- for other functions ----------------------------------------------------------

    @property
    def lifecycle_state_machine(self) -> sfn.StateMachine:
        return self.lifecycle.state_machine

    @property
    def drain_state_machine(self) -> sfn.StateMachine:
        return self.drain.state_machine

    def environment(self) -> dict[str, str]:
        """Settings for a function that starts lifecycles (``lbcp.settings``)."""
        environment = {
            ENV_LIFECYCLE_STATE_MACHINE_ARN: self.lifecycle.state_machine.state_machine_arn,
            ENV_DRAIN_STATE_MACHINE_ARN: self.drain.state_machine.state_machine_arn,
            ENV_TASKS_FUNCTION_ARN: self.tasks.function.function_arn,
            ENV_INSTANCE_PROFILE_ARN: self.lbvm_role.profile.instance_profile_arn,
        }
        if self.fleet_config.hosted_zone_id and self.fleet_config.dns_domain:
            environment[ENV_HOSTED_ZONE_ID] = self.fleet_config.hosted_zone_id
            environment[ENV_DNS_DOMAIN] = self.fleet_config.dns_domain
        return environment

    def grant_start_lifecycle(self, grantee: iam.IGrantable) -> None:
        """Start lifecycle executions and complete their callbacks (the reconciler)."""
        self.lifecycle.state_machine.grant_start_execution(grantee)
        self.grant_callbacks(grantee)

    def grant_entry_management(self, role: iam.IRole) -> iam.Policy:
        """Build, change and tear down entries (the reconciler): a policy of this construct on ``role``.

        Creates require the owner tags on the request; changes and deletes
        require them on the resource; ELBv2 resources are also fenced by the
        ``lbcp-`` name prefix every entry resource has.
        """
        elb = "elasticloadbalancing"
        load_balancers = _arn(elb, "loadbalancer", f"net/{NAME_PREFIX}*/*")
        target_groups = _arn(elb, "targetgroup", f"{NAME_PREFIX}*/*")
        listeners = _arn(elb, "listener", f"net/{NAME_PREFIX}*/*/*")
        statements = [
            iam.PolicyStatement(
                sid="CreateTaggedSecurityGroup",
                actions=["ec2:CreateSecurityGroup"],
                resources=[_ec2("security-group")],
                conditions=REQUEST_TAGGED,
            ),
            iam.PolicyStatement(sid="SecurityGroupVpc", actions=["ec2:CreateSecurityGroup"], resources=[_ec2("vpc")]),
            iam.PolicyStatement(
                sid="TagSecurityGroupOnCreate",
                actions=["ec2:CreateTags"],
                resources=[_ec2("security-group")],
                conditions={"StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"}},
            ),
            iam.PolicyStatement(
                sid="ChangeOwnSecurityGroups",
                actions=[
                    "ec2:AuthorizeSecurityGroupIngress",
                    "ec2:RevokeSecurityGroupIngress",
                    "ec2:DeleteSecurityGroup",
                ],
                resources=[_ec2("security-group")],
                conditions=EC2_RESOURCE_TAGGED,
            ),
            iam.PolicyStatement(
                sid="CreateTaggedEntry",
                actions=[f"{elb}:CreateLoadBalancer", f"{elb}:CreateTargetGroup"],
                resources=[load_balancers, target_groups],
                conditions=REQUEST_TAGGED,
            ),
            iam.PolicyStatement(
                sid="CreateListeners",
                actions=[f"{elb}:CreateListener"],
                resources=[load_balancers, listeners],
                conditions=REQUEST_TAGGED,
            ),
            iam.PolicyStatement(
                sid="TagEntryOnCreate",
                actions=[f"{elb}:AddTags"],
                resources=[load_balancers, target_groups, listeners],
                conditions={
                    "StringEquals": {
                        f"{elb}:CreateAction": ["CreateLoadBalancer", "CreateTargetGroup", "CreateListener"]
                    }
                },
            ),
            iam.PolicyStatement(
                sid="ChangeOwnEntry",
                actions=[
                    f"{elb}:SetSubnets",
                    f"{elb}:DeleteLoadBalancer",
                    f"{elb}:ModifyTargetGroupAttributes",
                    f"{elb}:DeleteTargetGroup",
                    f"{elb}:RegisterTargets",
                    f"{elb}:DeregisterTargets",
                    f"{elb}:ModifyListener",
                    f"{elb}:DeleteListener",
                ],
                resources=[load_balancers, target_groups, listeners],
                conditions=RESOURCE_TAGGED,
            ),
        ]
        if self.fleet_config.hosted_zone_id:
            statements.append(
                iam.PolicyStatement(
                    sid="EntryRecords",
                    actions=["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"],
                    resources=[hosted_zone_arn(self.fleet_config.hosted_zone_id)],
                )
            )
        policy = iam.Policy(self, "EntryManagement", roles=[role], statements=statements)
        describe = iam.Policy(
            self,
            "EntryDescribe",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    sid="DescribeEntries",
                    actions=[
                        "ec2:DescribeSecurityGroups",
                        "ec2:DescribeVpcs",
                        "ec2:DescribeInstances",
                        f"{elb}:DescribeLoadBalancers",
                        f"{elb}:DescribeTargetGroups",
                        f"{elb}:DescribeTargetHealth",
                        f"{elb}:DescribeListeners",
                        f"{elb}:DescribeTags",
                    ],
                    resources=["*"],
                )
            ],
        )
        nag.acknowledge_entry_management(policy, describe)
        return policy

    def grant_callbacks(self, grantee: iam.IGrantable) -> None:
        """SendTaskSuccess and SendTaskHeartbeat on lifecycle callbacks (heartbeat handler, reconciler)."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["states:SendTaskSuccess", "states:SendTaskHeartbeat"],
            resource_arns=[self.lifecycle.state_machine.state_machine_arn],
        )
