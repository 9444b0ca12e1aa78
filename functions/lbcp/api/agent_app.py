"""The agent endpoint: the LBVM agents' two routes, entered through ``handle``.

A function of its own behind a Lambda function URL with IAM auth, not a route
of the HTTP API: heartbeats are most of the control plane's requests (every
LBVM, every ``heartbeatIntervalSeconds``), and a function URL costs nothing per
request where API Gateway charges for each. The agent signs for service
``lambda``. The routes, their errors (problem+json) and the identity rules
(``lbcp.heartbeats.instance_of_caller``) are the same code whichever way the
request came: a function URL event is API Gateway's payload 2.0, the caller's
verified ARN in ``requestContext.authorizer.iam.userArn``.
"""

from __future__ import annotations

from typing import Any

from lbcp.api import error_handlers
from lbcp.api.operations import AGENT_RESOURCES
from lbcp.api.resolver import agent_app, logger
from lbcp.api.routes import agent  # noqa: F401  (registers the routes)
from lbcp.api.serving import serve

__all__ = ["agent_app", "handle", "logger"]

error_handlers.register(agent_app, AGENT_RESOURCES)


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Preflight the raw request, then route it. Logs one line per request."""
    return serve(agent_app, AGENT_RESOURCES, event, context)
