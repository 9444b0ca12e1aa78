"""Rollouts: an operator's pause, resume and abort, and the rollout history."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from lbcp.api.dependencies import dependencies
from lbcp.api.operations import ABORT_ROLLOUT, LIST_ROLLOUTS, PAUSE_ROLLOUT, RESUME_ROLLOUT
from lbcp.api.resolver import principal, route
from lbcp.api.responses import json_response
from lbcp.api.routes.openapi_parts import NO_SUCH_LOAD_BALANCER, LbRef, ok, problem
from lbcp.models.rollout import RolloutAction, RolloutList, RolloutStatus

_NO_ROLLOUT = problem("No rollout is in progress, or the load balancer is being deleted")
_RESPONSES = {
    200: ok("The rollout as the reconciler is about to make it (status.rollout shows the same)", RolloutStatus),
    404: NO_SUCH_LOAD_BALANCER,
    409: _NO_ROLLOUT,
}


def _act(id: str, action: RolloutAction) -> Response[Any]:
    rollout = dependencies().service.rollout_action(id, action, principal())
    return json_response(200, rollout.model_dump(mode="json", by_alias=True, exclude_none=True))


@route(
    PAUSE_ROLLOUT,
    summary="Pause the current rollout",
    description="No more LBVMs go onto the new template; the fleet stays as it is, serving (a replacement already "
    "serving still takes its predecessor's place). The progress deadline does not run while paused. Idempotent.",
    responses=_RESPONSES,
    tags=["rollouts"],
)
def pause_rollout(id: LbRef) -> Response[Any]:
    return _act(id, "pause")


@route(
    RESUME_ROLLOUT,
    summary="Resume a paused rollout",
    description="The rollout goes on from the step it was paused at, with fresh step clocks. Idempotent.",
    responses=_RESPONSES,
    tags=["rollouts"],
)
def resume_rollout(id: LbRef) -> Response[Any]:
    return _act(id, "resume")


@route(
    ABORT_ROLLOUT,
    summary="Abort the current rollout: roll back now",
    description="The fleet returns to the template it came from, within maxSurge and maxUnavailable, and the new "
    "template is rejected until the spec asks for something else. The spec is not changed. Idempotent.",
    responses=_RESPONSES,
    tags=["rollouts"],
)
def abort_rollout(id: LbRef) -> Response[Any]:
    return _act(id, "abort")


@route(
    LIST_ROLLOUTS,
    summary="A load balancer's rollouts, newest first, with their outcome",
    responses={200: ok("A page of rollouts", RolloutList), 404: NO_SUCH_LOAD_BALANCER},
    tags=["rollouts"],
)
def list_rollouts(
    id: LbRef,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    next_token: Annotated[str | None, Query(alias="nextToken", max_length=2048)] = None,
) -> Response[Any]:
    page = dependencies().service.rollouts(id, limit, next_token)
    items = [rollout.model_dump(mode="json", by_alias=True, exclude_none=True) for rollout in page.items]
    return json_response(200, {"items": items, "nextToken": page.next_token})
