"""The agent endpoint: the LBVM agents' two routes, entered through ``handle``.

A function of its own behind a Lambda function URL with IAM auth, not a route
of the HTTP API: heartbeats are most of the control plane's requests (every
LBVM, every ``heartbeatIntervalSeconds``), and a function URL costs nothing per
request where API Gateway charges for each. The agent signs for service
``lambda``. The routes, their errors (problem+json) and the identity rules
(``lbcp.heartbeats.instance_of_caller``) are the same code whichever way the
request came: a function URL event is API Gateway's payload 2.0, the caller's
verified ARN in ``requestContext.authorizer.iam.userArn``.

LBVMs launched before the agent endpoint existed call the same two routes on
the HTTP API (``stacks.api.LEGACY_AGENT_ROUTES``), which hands them to this
function too: they are served alike and counted (``AgentRequestsViaHttpApi``),
so that an operator sees when none is left.
"""

from __future__ import annotations

import time
from typing import Any

from lbcp.adapters.app_metrics import Tally, publish
from lbcp.api import error_handlers
from lbcp.api.operations import AGENT_RESOURCES
from lbcp.api.resolver import agent_app, logger
from lbcp.api.routes import agent  # noqa: F401  (registers the routes)
from lbcp.api.serving import serve
from lbcp.models.app_metrics import METRIC_AGENT_REQUESTS_VIA_HTTP_API, SERVICE_AGENT_API

__all__ = ["agent_app", "handle", "logger"]

error_handlers.register(agent_app, AGENT_RESOURCES)


# Requests this warm function got through the HTTP API, published about once a minute.
VIA_HTTP_API = Tally(METRIC_AGENT_REQUESTS_VIA_HTTP_API)


def came_through_http_api(event: dict[str, Any]) -> bool:
    """Whether API Gateway sent it: a function URL's requests carry the URL's host (``*.lambda-url.*``)."""
    return ".lambda-url." not in str(event.get("requestContext", {}).get("domainName", ""))


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Preflight the raw request, then route it. Logs one line per request."""
    if came_through_http_api(event):
        publish(VIA_HTTP_API.add(time.monotonic()), SERVICE_AGENT_API)
    return serve(agent_app, AGENT_RESOURCES, event, context)
