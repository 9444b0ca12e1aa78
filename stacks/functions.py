"""The Lambda functions of the control plane: what they share, and the one construct that builds them.

``FunctionContext`` is what every function shares: the code asset of
``functions/``, the dependency layer, Python 3.13 on arm64, X-Ray tracing, the
log retention and the base environment (table, event retention, log level,
pydantic plugins). ``LbcpFunction`` builds a function from it: the base
environment applied once, the function's service name, and only the settings
of its own on top; a function setting that would redefine a base one is
refused at synth time.

Each function gets a log group with the retention period and a role made here
with no managed policies. The only permissions a new role has are writing to
its own log group and X-Ray; callers add the rest with ``add_to_role_policy``
or a named ``iam.Policy`` on ``role``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from lbcp.settings import ENV_EVENT_RETENTION_DAYS, ENV_TABLE_NAME
from stacks import nag
from stacks.bundling import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME
from stacks.config import FUNCTIONS_DIR, ControlPlaneConfig
from stacks.dependencies import depend_on_policies_not_role
from stacks.storage import ControlPlaneTable

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

# Set by ``LbcpFunction`` from its ``service_name``: Powertools' logger, tracer and metrics read it.
ENV_SERVICE_NAME: Final = "POWERTOOLS_SERVICE_NAME"
ENV_LOG_LEVEL: Final = "POWERTOOLS_LOG_LEVEL"
ENV_PYDANTIC_DISABLE_PLUGINS: Final = "PYDANTIC_DISABLE_PLUGINS"
LOG_LEVEL: Final = "INFO"
DEFAULT_MEMORY_MB: Final = 512
DEFAULT_TIMEOUT: Final = Duration.seconds(10)


def functions_code() -> lambda_.AssetCode:
    """The code of every function: ``functions/`` (share one instance per stack)."""
    return lambda_.Code.from_asset(str(FUNCTIONS_DIR), exclude=CODE_EXCLUDES)


def base_environment(*, table_name: str, event_retention_days: int) -> dict[str, str]:
    """The settings every function reads (``lbcp.settings``, Powertools, pydantic)."""
    return {
        ENV_TABLE_NAME: table_name,
        ENV_EVENT_RETENTION_DAYS: str(event_retention_days),
        ENV_LOG_LEVEL: LOG_LEVEL,
        # We use no pydantic plugins; skipping their entry-point scan saves ~20 ms per cold start.
        ENV_PYDANTIC_DISABLE_PLUGINS: "__all__",
    }


class EnvironmentConflictError(ValueError):
    """A function's own environment would redefine a setting every function shares."""


@dataclass(frozen=True)
class FunctionContext:
    """What every function of one stack shares: build it once, pass it to every ``LbcpFunction``."""

    table: ControlPlaneTable
    config: ControlPlaneConfig
    code: lambda_.Code
    layers: Sequence[lambda_.ILayerVersion]
    runtime: lambda_.Runtime = LAMBDA_RUNTIME
    architecture: lambda_.Architecture = LAMBDA_ARCHITECTURE
    # Adds xray:PutTraceSegments and xray:PutTelemetryRecords to every role.
    tracing: lambda_.Tracing = lambda_.Tracing.ACTIVE

    @property
    def log_retention(self) -> logs.RetentionDays:
        return self.config.log_retention

    @property
    def base_environment(self) -> dict[str, str]:
        return base_environment(
            table_name=self.table.table.table_name, event_retention_days=self.config.event_retention_days
        )

    def environment(self, function: str, service_name: str, own: Mapping[str, str]) -> dict[str, str]:
        """The base environment, the service name, then ``own``: which may not redefine either."""
        shared = {**self.base_environment, ENV_SERVICE_NAME: service_name}
        clashes = sorted(shared.keys() & own.keys())
        if clashes:
            raise EnvironmentConflictError(
                f"function {function!r}: its environment sets {', '.join(clashes)}, which every function "
                "gets from FunctionContext (the base environment and the service name); change it there, "
                "or name a setting of the function's own"
            )
        return {**shared, **own}


class LbcpFunction(Construct):
    """A function, its role (``role``) and its log group (``log_group``), built from a ``FunctionContext``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        context: FunctionContext,
        handler: str,
        service_name: str,
        description: str,
        environment: Mapping[str, str] | None = None,
        memory_size: int = DEFAULT_MEMORY_MB,
        timeout: Duration = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(scope, construct_id)
        self.context = context
        variables = context.environment(construct_id, service_name, environment or {})
        self.log_group = logs.LogGroup(self, "LogGroup", retention=context.log_retention)
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
            runtime=context.runtime,
            architecture=context.architecture,
            handler=handler,
            code=context.code,
            layers=list(context.layers),
            role=self.role,
            log_group=self.log_group,
            memory_size=memory_size,
            timeout=timeout,
            tracing=context.tracing,
            environment=variables,
        )
        depend_on_policies_not_role(self.function, self.role)
        nag.acknowledge_function(self)

    def add_to_role_policy(self, statement: iam.PolicyStatement) -> None:
        self.role.add_to_policy(statement)

    def add_policy(self, construct_id: str, *statements: iam.PolicyStatement) -> iam.Policy:
        """A named policy of its own on the role (e.g. to acknowledge a Resource "*" alone),
        which the function waits for."""
        policy = iam.Policy(self, construct_id, roles=[self.role], statements=list(statements))
        self.function.node.add_dependency(policy)
        return policy

    @property
    def default_policy(self) -> iam.Policy:
        """The role's default policy (logs, X-Ray and what callers added)."""
        policy = self.role.node.find_child("DefaultPolicy")
        assert isinstance(policy, iam.Policy)
        return policy
