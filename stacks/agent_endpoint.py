"""The agent endpoint: the LBVM agents' two routes in a function of their own, behind a Lambda function URL.

Heartbeats are most of the control plane's requests (every LBVM, every
``heartbeatIntervalSeconds``). Through API Gateway each one cost a request fee;
a function URL costs nothing beyond the invocation. It has IAM auth
(``AuthType: AWS_IAM``): the agents sign for service ``lambda`` with the
instance role, which may invoke this function through its URL and nothing else
(``stacks.fleet.LbvmInstanceRole``), and the handler checks that the caller's
role session is the LBVM's own instance (``lbcp.heartbeats``), as before.

The function reads the load balancer and LBVM records (and stored config
versions), updates the LBVM record, writes events, and answers the
lifecycle's callbacks (granted by the fleet). Unlike the HTTP API, no stage
throttles it: only callers the instance role signs for get past IAM auth.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from lbcp.models.app_metrics import SERVICE_AGENT_API
from lbcp.models.metrics import NAMESPACE as METRICS_NAMESPACE
from stacks.functions import FunctionContext, LbcpFunction
from stacks.storage import RECORD_UPDATE_ACTIONS

AGENT_API_HANDLER: Final = "handlers.agent_api.lambda_handler"


class AgentEndpoint(LbcpFunction):
    """``handlers.agent_api`` and its function URL (``url``, ``AuthType: AWS_IAM``)."""

    def __init__(self, scope: Construct, construct_id: str, *, context: FunctionContext) -> None:
        super().__init__(
            scope,
            construct_id,
            context=context,
            description="lbcp agent endpoint: LBVM agents' heartbeats and config requests (function URL, IAM auth)",
            handler=AGENT_API_HANDLER,
            service_name=SERVICE_AGENT_API,
            environment={"POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE},
        )
        # Reads of the load balancer and LBVM records, version-conditioned LBVM updates, event puts.
        self.add_to_role_policy(context.table.items_statement(RECORD_UPDATE_ACTIONS))
        self.function_url = self.function.add_function_url(auth_type=lambda_.FunctionUrlAuthType.AWS_IAM)

    @property
    def url(self) -> str:
        """The base URL the agents call (``https://<url-id>.lambda-url.<region>.on.aws/``)."""
        return self.function_url.url
