"""Rollouts: an operator's pause, resume and abort, and the rollout history.

The three actions act on whichever rollout is in progress, of a launch template
(``status.rollout``) or of a config version (``status.configRollout``). Both
are seldom in progress at once (a template rollout ends a config one, since new
instances come up with the current config), so ``kind`` is needed only then:
without it such a request is a 409 naming ``kind``, and a ``kind`` with no
rollout of that kind in progress is a 409 naming it too.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from lbcp.api.dependencies import dependencies
from lbcp.api.operations import ABORT_ROLLOUT, LIST_ROLLOUTS, PAUSE_ROLLOUT, RESUME_ROLLOUT
from lbcp.api.resolver import principal, route
from lbcp.api.responses import json_response
from lbcp.api.routes.openapi_parts import INVALID, NO_SUCH_LOAD_BALANCER, LbRef, ok, problem
from lbcp.models.rollout import RolloutAction, RolloutKind
from lbcp.models.rollout_history import AnyRolloutDocument, RolloutList

_CONFLICT = problem(
    "No rollout (of the kind asked for) is in progress; both kinds are and kind is missing; or the load balancer "
    "is being deleted"
)
_RESPONSES = {
    200: ok(
        "The rollout as the reconciler is about to make it (status.rollout or status.configRollout shows the same; "
        "kind says which)",
        AnyRolloutDocument,
    ),
    400: INVALID,
    404: NO_SUCH_LOAD_BALANCER,
    409: _CONFLICT,
}
Kind = Annotated[
    RolloutKind | None,
    Query(
        description="template (status.rollout) or config (status.configRollout): required only while both are in "
        "progress."
    ),
]


def _act(id: str, action: RolloutAction, kind: RolloutKind | None) -> Response[Any]:
    rollout = dependencies().service.rollout_action(id, action, principal(), kind)
    return json_response(200, rollout.model_dump(mode="json", by_alias=True, exclude_none=True))


@route(
    PAUSE_ROLLOUT,
    summary="Pause the current rollout",
    description="No more LBVMs go onto the new template or are told the new config version; the fleet stays as it "
    "is, serving (a replacement already serving still takes its predecessor's place; LBVMs already running the new "
    "config version keep it). Neither the health gate's deadline nor the bake runs while paused. Idempotent.",
    responses=_RESPONSES,
    tags=["rollouts"],
)
def pause_rollout(id: LbRef, kind: Kind = None) -> Response[Any]:
    return _act(id, "pause", kind)


@route(
    RESUME_ROLLOUT,
    summary="Resume a paused rollout",
    description="The rollout goes on from the step it was paused at, with fresh step clocks. Idempotent.",
    responses=_RESPONSES,
    tags=["rollouts"],
)
def resume_rollout(id: LbRef, kind: Kind = None) -> Response[Any]:
    return _act(id, "resume", kind)


@route(
    ABORT_ROLLOUT,
    summary="Abort the current rollout: roll back now",
    description="The fleet returns to the template it came from, within maxSurge and maxUnavailable, and the new "
    "template is rejected until the spec asks for something else; or, for a config rollout, every LBVM is told the "
    "previous config version again, and the new one is rejected until the spec's config changes. The spec is not "
    "changed. Idempotent.",
    responses=_RESPONSES,
    tags=["rollouts"],
)
def abort_rollout(id: LbRef, kind: Kind = None) -> Response[Any]:
    return _act(id, "abort", kind)


@route(
    LIST_ROLLOUTS,
    summary="A load balancer's rollouts, template and config ones (kind), newest first, with their outcome",
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
