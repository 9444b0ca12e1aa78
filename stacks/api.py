"""The public API: an HTTP API with IAM auth in front of the API function.

Every route, including ``$default``, requires SigV4 (``AWS_IAM``) and goes to
the same function, which answers unknown paths and methods with its own
``application/problem+json`` 404/405. The routes are explicit so that access
logs and metrics carry a meaningful ``routeKey``. The LBVM agents' routes are
the agent endpoint's (``stacks.agent_endpoint``), with one exception kept for
upgrades: ``LEGACY_AGENT_ROUTES``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Final

import jsii
from aws_cdk import Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from lbcp.models.agent import AGENT_CONFIG_PATH, AGENT_HEARTBEAT_PATH
from lbcp.models.app_metrics import SERVICE_API
from lbcp.models.metrics import NAMESPACE as METRICS_NAMESPACE
from lbcp.settings import ENV_CONSISTENCY_FUNCTION, ENV_IDEMPOTENCY_TTL_SECONDS
from stacks import arns, nag
from stacks.config import ControlPlaneConfig
from stacks.entry_permissions import ENTRY_DESCRIBE_ACTIONS
from stacks.functions import FunctionContext, LbcpFunction
from stacks.storage import ITEM_ACTIONS

if TYPE_CHECKING:
    from stacks.fleet import FleetConfig

API_HANDLER: Final = "handlers.api.lambda_handler"
API_SERVICE_NAME: Final = SERVICE_API

# (method, path) of every explicit route; ``$default`` catches the rest.
ROUTES: Final[tuple[tuple[apigwv2.HttpMethod, str], ...]] = (
    (apigwv2.HttpMethod.GET, "/v1/load-balancers"),
    (apigwv2.HttpMethod.POST, "/v1/load-balancers"),
    (apigwv2.HttpMethod.GET, "/v1/load-balancers/{id}"),
    (apigwv2.HttpMethod.PATCH, "/v1/load-balancers/{id}"),
    (apigwv2.HttpMethod.DELETE, "/v1/load-balancers/{id}"),
    (apigwv2.HttpMethod.GET, "/v1/load-balancers/{id}/events"),
    (apigwv2.HttpMethod.GET, "/v1/load-balancers/{id}/lbvms/{lbvmId}"),
    (apigwv2.HttpMethod.GET, "/v1/load-balancers/{id}/plan"),
    (apigwv2.HttpMethod.POST, "/v1/load-balancers/{id}/warm"),
    (apigwv2.HttpMethod.POST, "/v1/load-balancers/{id}/rollout/pause"),
    (apigwv2.HttpMethod.POST, "/v1/load-balancers/{id}/rollout/resume"),
    (apigwv2.HttpMethod.POST, "/v1/load-balancers/{id}/rollout/abort"),
    (apigwv2.HttpMethod.GET, "/v1/load-balancers/{id}/rollouts"),
    (apigwv2.HttpMethod.GET, "/v1/consistency"),
    (apigwv2.HttpMethod.POST, "/v1/consistency/sweep"),
    (apigwv2.HttpMethod.GET, "/v1/consistency/audit"),
    (apigwv2.HttpMethod.GET, "/v1/openapi.json"),
)

# The agents' two routes as LBVMs launched before the agent endpoint call them: their user data
# names this API, and they keep it until they are replaced. Without these routes an upgraded
# control plane would hear none of its running LBVMs and deregister them all after
# ``unhealthyTimeoutSeconds``. They go to the agent endpoint's function (an HTTP API event is
# payload 2.0, as a function URL's), which counts them (``AgentRequestsViaHttpApi``): once that
# stays at 0, every LBVM calls the function URL and a later release can drop the routes.
LEGACY_AGENT_ROUTES: Final[tuple[tuple[apigwv2.HttpMethod, str], ...]] = (
    (apigwv2.HttpMethod.GET, AGENT_CONFIG_PATH),
    (apigwv2.HttpMethod.POST, AGENT_HEARTBEAT_PATH),
)

# One JSON object per request. Field names follow the API Gateway examples.
ACCESS_LOG_FIELDS: Final = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "routeKey": "$context.routeKey",
    "path": "$context.path",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationStatus": "$context.integrationStatus",
    "integrationError": "$context.integrationErrorMessage",
    "errorMessage": "$context.error.message",
    "caller": "$context.identity.caller",
    "userArn": "$context.identity.userArn",
    "accountId": "$context.identity.accountId",
    "userAgent": "$context.identity.userAgent",
}


class ApiFunction(LbcpFunction):
    """The API function: validates specs (EC2, ACM) and writes them to the table."""

    def __init__(self, scope: Construct, construct_id: str, *, context: FunctionContext) -> None:
        super().__init__(
            scope,
            construct_id,
            context=context,
            description="lbcp API: validates and stores load-balancer specs",
            handler=API_HANDLER,
            service_name=API_SERVICE_NAME,
            environment={
                ENV_IDEMPOTENCY_TTL_SECONDS: str(context.config.idempotency_ttl_seconds),
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            },
        )
        table = context.table
        self.add_to_role_policy(table.items_statement(ITEM_ACTIONS))
        self.add_to_role_policy(table.index_query_statement(sid="TableIndexQuery"))
        # ACM supports resource-level permissions, but the certificates are the
        # users' own, named in specs at run time: scope to this account and region.
        self.add_to_role_policy(
            iam.PolicyStatement(
                sid="ReadCertificates",
                actions=["acm:DescribeCertificate"],
                resources=[arns.certificates()],
            )
        )
        # A policy of its own, so that its Resource "*" is acknowledged apart
        # from X-Ray's: EC2 Describe actions have no resource-level permissions.
        self.network_read_policy = self.add_policy(
            "DescribeNetworkPolicy",
            iam.PolicyStatement(
                sid="DescribeNetwork",
                actions=["ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeImages"],
                resources=["*"],
            ),
        )
        nag.acknowledge_api_function(self)

    def observe_fleet(self, fleet_config: FleetConfig) -> None:
        """The plan preview observes what the reconciler observes, with the same reads and nothing else.

        Its Describe actions accept only Resource "*" (EC2 and ELBv2 have no
        resource-level permissions for them): alone in a policy, acknowledged apart.
        The zone's records are listed on the zone itself.
        """
        for name, value in fleet_config.environment().items():
            self.function.add_environment(name, value)
        self.observe_policy = self.add_policy(
            "ObserveFleetPolicy",
            iam.PolicyStatement(
                sid="ObserveFleet",
                actions=sorted({*ENTRY_DESCRIBE_ACTIONS, "ec2:DescribeNetworkInterfaces"}),
                resources=["*"],
            ),
        )
        if fleet_config.hosted_zone_id:
            self.add_to_role_policy(
                iam.PolicyStatement(
                    sid="ListZoneRecords",
                    actions=["route53:ListResourceRecordSets"],
                    resources=[arns.hosted_zone(fleet_config.hosted_zone_id)],
                )
            )
        nag.acknowledge_api_observation(self.observe_policy)

    def use_consistency_function(self, function: lambda_.IFunction) -> None:
        """Dry runs and sweeps run in the consistency function: the API only invokes it (by name)."""
        self.function.add_environment(ENV_CONSISTENCY_FUNCTION, function.function_name)
        self.add_to_role_policy(
            iam.PolicyStatement(
                sid="InvokeConsistencyChecker", actions=["lambda:InvokeFunction"], resources=[function.function_arn]
            )
        )


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogSettings:
    """``IAccessLogSettings`` is a jsii interface, not a struct: implement it."""

    def __init__(self, destination: apigwv2.IAccessLogDestination, log_format: apigw.AccessLogFormat):
        self._destination = destination
        self._format = log_format

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format


class HttpApiFrontend(Construct):
    """The HTTP API, its ``$default`` stage and the stage's access log group."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: lambda_.IFunction,
        agent_handler: lambda_.IFunction,
        config: ControlPlaneConfig,
    ) -> None:
        super().__init__(scope, construct_id)
        # One integration for every route; one invoke permission for the API
        # rather than one per route.
        integration = integrations.HttpLambdaIntegration(
            "ApiIntegration",
            handler,
            payload_format_version=apigwv2.PayloadFormatVersion.VERSION_2_0,
            scope_permission_to_route=False,
        )
        self.http_api = apigwv2.HttpApi(
            self,
            "HttpApi",
            api_name=f"{Stack.of(self).stack_name}-api",
            description="lbcp control plane API (SigV4)",
            default_authorizer=authorizers.HttpIamAuthorizer(),
            default_integration=integration,
            create_default_stage=False,
        )
        for method, path in ROUTES:
            self.http_api.add_routes(path=path, methods=[method], integration=integration)
        # Scoped to the routes: this API may invoke the agent endpoint's function for them only.
        agent_integration = integrations.HttpLambdaIntegration(
            "LegacyAgentIntegration",
            agent_handler,
            payload_format_version=apigwv2.PayloadFormatVersion.VERSION_2_0,
            scope_permission_to_route=True,
        )
        for method, path in LEGACY_AGENT_ROUTES:
            self.http_api.add_routes(path=path, methods=[method], integration=agent_integration)

        self.access_log_group = logs.LogGroup(self, "AccessLogs", retention=config.log_retention)
        self.stage = apigwv2.HttpStage(
            self,
            "DefaultStage",
            http_api=self.http_api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=config.api_throttling_rate_limit,
                burst_limit=config.api_throttling_burst_limit,
            ),
            access_log_settings=_AccessLogSettings(
                apigwv2.LogGroupLogDestination(self.access_log_group),
                apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS, separators=(",", ":"))),
            ),
        )

    @property
    def url(self) -> str:
        return self.stage.url
