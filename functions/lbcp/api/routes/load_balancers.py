"""Load balancers: declare, list, read, change (JSON Merge Patch) and delete."""

from __future__ import annotations

import re
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query

from lbcp.api.dependencies import dependencies
from lbcp.api.operations import (
    CREATE_LOAD_BALANCER,
    DELETE_LOAD_BALANCER,
    GET_LOAD_BALANCER,
    LIST_LOAD_BALANCERS,
    LOAD_BALANCERS,
    PATCH_LOAD_BALANCER,
)
from lbcp.api.problems import ApiProblem
from lbcp.api.resolver import json_body, principal, route
from lbcp.api.responses import etag, json_response
from lbcp.api.routes.openapi_parts import INVALID, NO_SUCH_LOAD_BALANCER, LbRef, ok, problem
from lbcp.errors import FieldError
from lbcp.models.resource import LoadBalancer, LoadBalancerList, LoadBalancerRecord, representation
from lbcp.models.spec import LoadBalancerSpec
from lbcp.service import effective_rollout

_TAGS = ["load balancers"]


def _resource_response(status: int, record: LoadBalancerRecord) -> Response[Any]:
    deps = dependencies()
    body = representation(
        record, deps.clock(), deps.local_endpoints(record.id), effective_rollout(record, deps.clock())
    )
    return json_response(status, body, {"ETag": etag(record.generation)})


def _parse_if_match(value: str | None, required: bool) -> int | None:
    """``If-Match: 3``, ``"3"`` or ``*`` (any current version) -> the expected generation, None for ``*``."""
    if value is None or not value.strip():
        if required:
            raise ApiProblem(
                "precondition-required",
                "PATCH needs If-Match with the generation you read (the ETag), so that concurrent "
                "changes cannot overwrite each other",
                [FieldError(("If-Match",), "required", "missing", "header")],
            )
        return None
    text = value.strip()
    if text == "*":
        return None
    match = re.fullmatch(r'"?(\d{1,18})"?', text)
    if match is None:
        raise ApiProblem(
            "invalid-request",
            f'If-Match must be a generation such as 3 or "3", not {text[:40]!r}',
            [FieldError(("If-Match",), "must be a generation number (the ETag)", "invalid", "header")],
        )
    return int(match.group(1))


@route(
    CREATE_LOAD_BALANCER,
    summary="Declare a load balancer",
    description="Validates the spec (shape, then the VPC, subnets and certificates in the account) and stores it. "
    "The reconciler builds it; follow status and events.",
    responses={
        201: ok("Created", LoadBalancer),
        400: INVALID,
        409: problem("The name is in use, or the Idempotency-Key is in use"),
        413: problem("Body over 64 KiB"),
        415: problem("Body is not application/json"),
        422: problem("The spec names things that do not exist or cannot be used"),
    },
    tags=_TAGS,
)
def create_load_balancer(
    spec: Annotated[LoadBalancerSpec, Body(description="The spec of the load balancer to build.")],
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", description="Repeat a create safely: a repeat returns the first result."),
    ] = None,
) -> Response[Any]:
    deps = dependencies()
    caller = principal()

    def create() -> dict[str, Any]:
        record = deps.service.create(spec, caller)
        return representation(
            record, deps.clock(), deps.local_endpoints(record.id), effective_rollout(record, deps.clock())
        )

    if idempotency_key is None:
        body, replayed = create(), False
    else:
        from lbcp.api.idempotency import check_key

        body, replayed = deps.idempotency.run(
            key=check_key(idempotency_key), principal=caller, body=json_body(), create=create
        )
    headers = {"Location": f"{LOAD_BALANCERS}/{body['id']}", "ETag": etag(int(body["generation"]))}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(201, body, headers)


@route(
    LIST_LOAD_BALANCERS,
    summary="List load balancers",
    description="Ordered by name; pass nextToken from one page to get the next.",
    responses={200: ok("A page", LoadBalancerList)},
    tags=_TAGS,
)
def list_load_balancers(
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    next_token: Annotated[str | None, Query(alias="nextToken", max_length=2048)] = None,
) -> Response[Any]:
    deps = dependencies()
    page = deps.service.list(limit, next_token)
    items = [
        representation(record, deps.clock(), deps.local_endpoints(record.id), effective_rollout(record, deps.clock()))
        for record in page.items
    ]
    return json_response(200, {"items": items, "nextToken": page.next_token})


@route(
    GET_LOAD_BALANCER,
    summary="Get a load balancer: its spec and status",
    responses={200: ok("The load balancer", LoadBalancer), 404: NO_SUCH_LOAD_BALANCER},
    tags=_TAGS,
)
def get_load_balancer(id: LbRef) -> Response[Any]:
    deps = dependencies()
    record = deps.service.resolve(id)
    body = representation(
        record,
        deps.clock(),
        deps.local_endpoints(record.id),
        effective_rollout(record, deps.clock()),
        heartbeats=deps.inspection.heartbeats(record),
    )
    return json_response(200, body, {"ETag": etag(record.generation)})


@route(
    PATCH_LOAD_BALANCER,
    summary="Change a load balancer's spec (JSON Merge Patch, RFC 7386)",
    description="Send the fields to change; null resets a field to its default. name, type and vpcId are fixed. "
    "If-Match must carry the generation you read; a newer one gets 412.",
    responses={
        200: ok("The changed load balancer", LoadBalancer),
        400: INVALID,
        404: NO_SUCH_LOAD_BALANCER,
        409: problem("The load balancer is being deleted"),
        412: problem("The generation changed since you read it"),
        415: problem("Body is not merge-patch+json or json"),
        422: problem("Immutable field changed, or the spec cannot be satisfied"),
        428: problem("If-Match is missing"),
    },
    tags=_TAGS,
)
def patch_load_balancer(
    id: LbRef,
    if_match: Annotated[str | None, Header(alias="If-Match", description="The generation (ETag) you read.")] = None,
) -> Response[Any]:
    expected = _parse_if_match(if_match, required=True)
    service = dependencies().service
    if expected is None:  # If-Match: * applies to whatever is current
        expected = service.resolve(id).generation
    result = service.patch(id, expected, json_body(), principal())
    return _resource_response(200, result.record)


@route(
    DELETE_LOAD_BALANCER,
    summary="Delete a load balancer",
    description="Starts ordered teardown; the load balancer shows phase Deleting until nothing is left, then 404.",
    responses={
        202: ok("Teardown started", LoadBalancer),
        404: NO_SUCH_LOAD_BALANCER,
        412: problem("If-Match given and the generation changed"),
    },
    tags=_TAGS,
)
def delete_load_balancer(
    id: LbRef,
    if_match: Annotated[str | None, Header(alias="If-Match", description="Optional: the generation you read.")] = None,
) -> Response[Any]:
    expected = _parse_if_match(if_match, required=False)
    record = dependencies().service.delete(id, expected, principal())
    return _resource_response(202, record)
