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
- The LBVM instance role: the agent endpoint (invoking its function through
  its IAM-authorized function URL, nothing else; and the HTTP API's two agent
  routes for LBVMs launched before it), metrics in the ``lbcp``
  namespace, certificate export.

Other functions get what they need through ``environment()`` and ``grant_*``
(the reconciler starts lifecycles; the heartbeat handler answers callbacks).
What the reconciler may do to the entries is ``stacks/entry_permissions.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aws_cdk import Aws, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from lbcp.lifecycle.protocol import DRAIN_STATE_MACHINE_FILE, LIFECYCLE_STATE_MACHINE_FILE
from lbcp.models.agent import AGENT_CONFIG_PATH, AGENT_HEARTBEAT_PATH
from lbcp.settings import (
    ENV_DNS_DOMAIN,
    ENV_DRAIN_STATE_MACHINE_ARN,
    ENV_HOSTED_ZONE_ID,
    ENV_INSTANCE_PROFILE_ARN,
    ENV_LIFECYCLE_STATE_MACHINE_ARN,
    ENV_TASKS_FUNCTION_ARN,
)
from stacks import arns, nag, owner_tags
from stacks.config import REPO_ROOT
from stacks.dependencies import depend_on_policies_not_role
from stacks.entry_permissions import TARGET_REGISTRATION_ACTIONS, records_statement
from stacks.functions import FunctionContext, LbcpFunction
from stacks.storage import RECORD_READ_ACTIONS, RECORD_UPDATE_ACTIONS, RECORD_WRITE_ACTIONS, ControlPlaneTable

STATEMACHINES_DIR: Final = REPO_ROOT / "statemachines"
TASKS_HANDLER: Final = "handlers.lifecycle_tasks.lambda_handler"
TASKS_SERVICE_NAME: Final = "lbcp-lifecycle"
# The managed rule through which Step Functions learns that a .sync child ended.
SYNC_EVENTS_RULE: Final = "StepFunctionsGetEventsForStepFunctionsExecutionRule"
CTX_HOSTED_ZONE_ID: Final = "lbcp:hostedZoneId"
CTX_DNS_DOMAIN: Final = "lbcp:dnsDomain"


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

    def environment(self) -> dict[str, str]:
        """The DNS settings of the functions that route (``lbcp.settings``): none without a zone."""
        if self.hosted_zone_id and self.dns_domain:
            return {ENV_HOSTED_ZONE_ID: self.hosted_zone_id, ENV_DNS_DOMAIN: self.dns_domain}
        return {}


class LbvmInstanceRole(Construct):
    """The role (and instance profile) of every LBVM: what its agent may call."""

    def __init__(self, scope: Construct, construct_id: str, *, agent_function_arn: str, api_id: str) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="lbcp LBVM instances: the agent endpoint, certificate export",
        )
        self.profile = iam.InstanceProfile(self, "Profile", role=self.role)
        self.policy = iam.Policy(
            self,
            "AgentPolicy",
            roles=[self.role],
            statements=[
                # The agent endpoint's function URL with IAM auth, and that function only. Function URLs
                # created since October 2025 also need lambda:InvokeFunction, here only through the URL:
                # the role cannot invoke the function directly.
                iam.PolicyStatement(
                    sid="AgentEndpoint",
                    actions=["lambda:InvokeFunctionUrl"],
                    resources=[agent_function_arn],
                    conditions={"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}},
                ),
                iam.PolicyStatement(
                    sid="AgentEndpointInvoke",
                    actions=["lambda:InvokeFunction"],
                    resources=[agent_function_arn],
                    conditions={"Bool": {"lambda:InvokedViaFunctionUrl": "true"}},
                ),
                # LBVMs launched before the agent endpoint still call the agents' routes on the HTTP API
                # (``stacks.api.LEGACY_AGENT_ROUTES``): these two routes, any stage.
                iam.PolicyStatement(
                    sid="LegacyAgentRoutes",
                    actions=["execute-api:Invoke"],
                    resources=[
                        arns.api_route(api_id, "GET", AGENT_CONFIG_PATH),
                        arns.api_route(api_id, "POST", AGENT_HEARTBEAT_PATH),
                    ],
                ),
                iam.PolicyStatement(
                    sid="ExportListenerCertificates",
                    actions=["acm:ExportCertificate"],
                    resources=[arns.certificates()],
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
        context: FunctionContext,
        fleet_config: FleetConfig,
        lifecycle_state_machine_arn: str,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            context=context,
            description="lbcp lifecycle tasks: entry registration, callback tokens and events for the LBVM machines",
            handler=TASKS_HANDLER,
            service_name=TASKS_SERVICE_NAME,
            environment=fleet_config.environment(),
        )
        # Read LBVM and load balancer records, version-conditioned LBVM updates, event puts.
        self.add_to_role_policy(context.table.items_statement(RECORD_UPDATE_ACTIONS))
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
                actions=list(TARGET_REGISTRATION_ACTIONS),
                resources=[arns.entry_target_groups()],
                conditions=owner_tags.RESOURCE_TAGGED,
            )
        )
        if fleet_config.hosted_zone_id:
            self.add_to_role_policy(records_statement("LbvmRecords", fleet_config.hosted_zone_id))
        # Describe actions accept only Resource "*": a policy of their own, acknowledged alone.
        self.describe_policy = self.add_policy(
            "DescribePolicy",
            iam.PolicyStatement(
                sid="DescribeEntry",
                actions=[
                    "elasticloadbalancing:DescribeLoadBalancers",
                    "elasticloadbalancing:DescribeTargetGroups",
                    "ec2:DescribeInstances",
                ],
                resources=["*"],
            ),
        )
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
        depend_on_policies_not_role(self.state_machine, self.role)

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
        context: FunctionContext,
        agent_function_arn: str,
        api_id: str,
        fleet_config: FleetConfig | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.fleet_config = fleet_config or FleetConfig.from_context(self)
        stack_name = Stack.of(self).stack_name
        lifecycle_name = f"{stack_name}-lbvm-lifecycle"
        drain_name = f"{stack_name}-lbvm-drain"
        # By name: a function that reads them (the consistency checker) must not depend on the API.
        self.lifecycle_name, self.drain_name = lifecycle_name, drain_name

        self.lbvm_role = LbvmInstanceRole(
            self, "LbvmInstanceRole", agent_function_arn=agent_function_arn, api_id=api_id
        )
        self.tasks = LifecycleTasksFunction(
            self,
            "LifecycleTasks",
            context=context,
            fleet_config=self.fleet_config,
            lifecycle_state_machine_arn=arns.state_machine(lifecycle_name),
        )
        self.drain = _StateMachine(
            self, "Drain", file_name=DRAIN_STATE_MACHINE_FILE, name=drain_name, log_retention=context.log_retention
        )
        self.lifecycle = _StateMachine(
            self,
            "Lifecycle",
            file_name=LIFECYCLE_STATE_MACHINE_FILE,
            name=lifecycle_name,
            log_retention=context.log_retention,
        )
        self._allow_drain(context.table)
        self._allow_lifecycle(context.table, drain_name)
        nag.acknowledge_state_machine(self.drain.default_policy, self.drain.describe_policy, launches=False)
        nag.acknowledge_state_machine(self.lifecycle.default_policy, self.lifecycle.describe_policy, launches=True)

    # --- the state machines' permissions ----------------------------------------------

    def _common(self, machine: _StateMachine, table: ControlPlaneTable, table_actions: tuple[str, ...]) -> None:
        function_arn = self.tasks.function.function_arn
        machine.allow(
            iam.PolicyStatement(
                sid="TasksFunction",
                actions=["lambda:InvokeFunction"],
                # Always invoked unqualified (the ARN in the execution input): no versions, no aliases.
                resources=[function_arn],
            )
        )
        machine.allow(table.items_statement(table_actions, sid="LbvmRecords"))

    def _allow_drain(self, table: ControlPlaneTable) -> None:
        machine = self.drain
        self._common(machine, table, RECORD_READ_ACTIONS)
        machine.allow(
            iam.PolicyStatement(
                sid="TerminateOwnInstances",
                actions=["ec2:TerminateInstances"],
                resources=[arns.ec2("instance")],
                conditions=owner_tags.EC2_RESOURCE_TAGGED,
            )
        )
        machine.allow(
            iam.PolicyStatement(
                sid="DeleteOwnInterfaces",
                actions=["ec2:DeleteNetworkInterface"],
                resources=[arns.ec2("network-interface")],
                conditions=owner_tags.EC2_RESOURCE_TAGGED,
            )
        )

    def _allow_lifecycle(self, table: ControlPlaneTable, drain_name: str) -> None:
        machine = self.lifecycle
        self._common(machine, table, RECORD_WRITE_ACTIONS)
        machine.allow(
            iam.PolicyStatement(
                sid="CreateTaggedInterface",
                actions=["ec2:CreateNetworkInterface"],
                resources=[arns.ec2("network-interface")],
                conditions=owner_tags.REQUEST_TAGGED,
            )
        )
        machine.allow(
            iam.PolicyStatement(
                sid="InterfaceSubnetAndGroups",
                actions=["ec2:CreateNetworkInterface", "ec2:RunInstances"],
                resources=[arns.ec2("subnet"), arns.ec2("security-group")],
            )
        )
        machine.allow(
            iam.PolicyStatement(
                sid="LaunchTaggedInstance",
                actions=["ec2:RunInstances"],
                resources=[arns.ec2("instance"), arns.ec2("volume")],
                conditions=owner_tags.REQUEST_TAGGED,
            )
        )
        machine.allow(
            iam.PolicyStatement(
                sid="LaunchOnOwnInterface",
                actions=["ec2:RunInstances"],
                resources=[arns.ec2("network-interface")],
                conditions=owner_tags.EC2_RESOURCE_TAGGED,
            )
        )
        machine.allow(
            iam.PolicyStatement(
                sid="LaunchFromAnyImage",
                actions=["ec2:RunInstances"],
                # Images are the users' (or AWS's) own; the spec names them at run time.
                resources=[arns.any_image()],
            )
        )
        machine.allow(
            iam.PolicyStatement(
                sid="TagOnCreateOnly",
                actions=["ec2:CreateTags"],
                resources=[arns.ec2("instance"), arns.ec2("volume"), arns.ec2("network-interface")],
                conditions=owner_tags.tagging_only_inside("ec2:CreateAction", "RunInstances", "CreateNetworkInterface"),
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
                resources=[arns.executions(drain_name)],
            )
        )
        machine.allow(
            iam.PolicyStatement(
                sid="SyncCompletionEvents",
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[arns.events_rule(SYNC_EVENTS_RULE)],
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
        return {
            ENV_LIFECYCLE_STATE_MACHINE_ARN: self.lifecycle.state_machine.state_machine_arn,
            ENV_DRAIN_STATE_MACHINE_ARN: self.drain.state_machine.state_machine_arn,
            ENV_TASKS_FUNCTION_ARN: self.tasks.function.function_arn,
            ENV_INSTANCE_PROFILE_ARN: self.lbvm_role.profile.instance_profile_arn,
            **self.fleet_config.environment(),
        }

    def grant_start_lifecycle(self, grantee: iam.IGrantable) -> None:
        """Start lifecycle executions and complete their callbacks (the reconciler)."""
        self.lifecycle.state_machine.grant_start_execution(grantee)
        self.grant_callbacks(grantee)

    def grant_callbacks(self, grantee: iam.IGrantable) -> None:
        """SendTaskSuccess and SendTaskHeartbeat on lifecycle callbacks (heartbeat handler, reconciler)."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["states:SendTaskSuccess", "states:SendTaskHeartbeat"],
            resource_arns=[self.lifecycle.state_machine.state_machine_arn],
        )
