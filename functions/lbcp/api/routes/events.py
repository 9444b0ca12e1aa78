"""A load balancer's events: what happened to it and why, newest first."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from lbcp.api.dependencies import dependencies
from lbcp.api.operations import LIST_EVENTS
from lbcp.api.resolver import route
from lbcp.api.responses import json_response
from lbcp.api.routes.openapi_parts import NO_SUCH_LOAD_BALANCER, LbRef, ok
from lbcp.models.resource import EventList


@route(
    LIST_EVENTS,
    summary="A load balancer's events, newest first",
    responses={200: ok("A page of events", EventList), 404: NO_SUCH_LOAD_BALANCER},
    tags=["load balancers"],
)
def list_events(
    id: LbRef,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 50,
    next_token: Annotated[str | None, Query(alias="nextToken", max_length=2048)] = None,
) -> Response[Any]:
    page = dependencies().service.events(id, limit, next_token)
    items = [event.model_dump(mode="json", by_alias=True, exclude_none=True) for event in page.items]
    return json_response(200, {"items": items, "nextToken": page.next_token})
