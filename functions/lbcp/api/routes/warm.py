"""Warming: an operator's floor under a load balancer's capacity, ahead of a known spike."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body

from lbcp.api.dependencies import dependencies
from lbcp.api.operations import WARM
from lbcp.api.resolver import principal, route
from lbcp.api.responses import json_response
from lbcp.api.routes.openapi_parts import NO_SUCH_LOAD_BALANCER, LbRef, ok, problem
from lbcp.models.scaling import WarmRequest, WarmResponse


@route(
    WARM,
    summary="Pre-warm a load balancer ahead of a known spike",
    description="Keep at least `floor` LBVMs, or `extra` more than now, until the expiry; the scaler may go higher "
    "but not lower meanwhile. Visible in status.scaling.warm and in events.",
    responses={
        200: ok("The floor in force and the desired capacity now", WarmResponse),
        404: NO_SUCH_LOAD_BALANCER,
        409: problem("The load balancer is being deleted, or the scaler decided concurrently"),
        422: problem("The floor does not fit within capacity.max"),
    },
    tags=["load balancers"],
)
def warm(id: LbRef, request: Annotated[WarmRequest, Body()]) -> Response[Any]:
    result = dependencies().service.warm(id, request, principal())
    return json_response(200, result.to_json())
