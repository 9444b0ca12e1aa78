"""The OpenAPI document, served by the API it describes."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from lbcp.api.operations import OPENAPI_DOCUMENT
from lbcp.api.resolver import app, route
from lbcp.api.responses import json_response


@route(OPENAPI_DOCUMENT, include_in_schema=False)
def openapi_document() -> Response[Any]:
    # Built on the first request that asks: most cold starts never pay for it.
    # The agent endpoint's routes too (documented here, served at the agent endpoint).
    from lbcp.api.agent_app import agent_app
    from lbcp.api.openapi_document import api_document

    return json_response(200, api_document(app, agent_app), {"Cache-Control": "max-age=300"})
