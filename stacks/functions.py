"""A Lambda function of the control plane, with its own least-privilege role.

Every function (API now; reconciler, scaler, checker later) is built the same
way: the shared code asset of ``functions/``, the shared dependency layer,
Python 3.13 on arm64, X-Ray tracing, a log group with a retention period, and
a role made here with no managed policies. The only permissions a new role has
are writing to its own log group and X-Ray; callers add the rest with
``add_to_role_policy`` or a named ``iam.Policy`` on ``role``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import jsii
from aws_cdk import CfnResource, Duration, IListProducer, IResolveContext, Lazy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks import nag
from stacks.bundling import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME
from stacks.config import FUNCTIONS_DIR

# What never belongs in the code asset (the dependencies are in the layer).
CODE_EXCLUDES: Final = [
    "**/__pycache__",
    "**/*.pyc",
    "requirements*.txt",
    "**/tests",
    "**/test_*.py",
    "**/conftest.py",
    "**/*.egg-info",
    "**/.mypy_cache",
    "**/.pytest_cache",
    "**/.ruff_cache",
    "**/.hypothesis",
]


def functions_code() -> lambda_.AssetCode:
    """The code of every function: ``functions/`` (share one instance per stack)."""
    return lambda_.Code.from_asset(str(FUNCTIONS_DIR), exclude=CODE_EXCLUDES)


class LbcpFunction(Construct):
    """A function, its role (``role``) and its log group (``log_group``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: str,
        code: lambda_.Code,
        layers: list[lambda_.ILayerVersion],
        log_retention: logs.RetentionDays,
        environment: Mapping[str, str],
        description: str,
        memory_size: int = 512,
        timeout: Duration | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(self, "LogGroup", retention=log_retention)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Execution role of the lbcp function {construct_id}",
        )
        # What AWSLambdaBasicExecutionRole would give, scoped to this log group.
        # The group exists before the function, so CreateLogGroup is not needed.
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=LAMBDA_RUNTIME,
            architecture=LAMBDA_ARCHITECTURE,
            handler=handler,
            code=code,
            layers=layers,
            role=self.role,
            log_group=self.log_group,
            memory_size=memory_size,
            timeout=timeout or Duration.seconds(10),
            # Adds xray:PutTraceSegments and xray:PutTelemetryRecords to the role.
            tracing=lambda_.Tracing.ACTIVE,
            environment=dict(environment),
        )
        cfn_function = self.function.node.default_child
        assert isinstance(cfn_function, CfnResource)
        cfn_function.add_override("DependsOn", Lazy.uncached_list(_DependsOnWithoutRole(cfn_function, self.role)))
        nag.acknowledge_function(self)

    def add_to_role_policy(self, statement: iam.PolicyStatement) -> None:
        self.role.add_to_policy(statement)

    @property
    def default_policy(self) -> iam.Policy:
        """The role's default policy (logs, X-Ray and what callers added)."""
        policy = self.role.node.find_child("DefaultPolicy")
        assert isinstance(policy, iam.Policy)
        return policy


@jsii.implements(IListProducer)
class _DependsOnWithoutRole:
    """A function's ``DependsOn`` minus its role.

    The Lambda L2 makes the function depend on its whole role construct: the
    role's policies (wanted: the function must not run before it may write its
    logs) and the role itself, which the ``Role`` GetAtt already orders, so
    cfn-lint reports it (W3005). Produced at resolve time, after CDK has turned
    every construct dependency into ``DependsOn``, so no other dependency is lost.
    """

    def __init__(self, resource: CfnResource, role: iam.Role) -> None:
        role_resource = role.node.default_child
        assert isinstance(role_resource, CfnResource)
        self._resource = resource
        self._role_path = role_resource.node.path

    def produce(self, context: IResolveContext) -> list[str] | None:
        keep = [
            dep
            for dep in self._resource.obtain_dependencies()
            if isinstance(dep, CfnResource) and dep.node.path != self._role_path
        ]
        if not keep:
            return None
        stack = Stack.of(self._resource)
        return [stack.get_logical_id(dep) for dep in sorted(keep, key=lambda dep: dep.node.path)]
