"""The HTTP API: Powertools' HTTP API event handler, entered through ``handle``.

Routes parse and translate; the use cases live in ``lbcp.service``. Every
error leaves as application/problem+json naming the offending field. The
agents' routes are not here: they have an endpoint of their own
(``lbcp.api.agent_app``).
"""

from __future__ import annotations

from typing import Any

from lbcp.api import error_handlers
from lbcp.api.dependencies import dependencies
from lbcp.api.operations import RESOURCES
from lbcp.api.resolver import app, logger

# Imported for the routes they register on the resolver.
from lbcp.api.routes import (  # noqa: F401
    consistency,
    events,
    inspection,
    load_balancers,
    openapi,
    rollouts,
    warm,
)
from lbcp.api.serving import serve

__all__ = ["app", "dependencies", "handle", "logger"]

error_handlers.register(app, RESOURCES)


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Preflight the raw request, then route it. Logs one line per request."""
    return serve(app, RESOURCES, event, context)
