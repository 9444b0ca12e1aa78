"""The HTTP API (DESIGN section 3) on Powertools' HTTP API event handler.

Routes parse and translate; the use cases live in ``lbcp.service``. Every
error leaves as application/problem+json naming the offending field.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel

from lbcp.adapters.account import AccountInspector
from lbcp.api.preflight import decode_json_body
from lbcp.api.problems import PROBLEM_CONTENT_TYPE, ApiProblem, Problem, field_summary, invalid
from lbcp.dal.repository import (
    BeingDeleted,
    GenerationMismatch,
    InvalidPageToken,
    LoadBalancerRepository,
    NameInUse,
    NotFound,
)
from lbcp.errors import FieldError, Location, SpecRejected
from lbcp.heartbeats import Forbidden, UnknownLbvm
from lbcp.models.agent import AgentConfig, Heartbeat, HeartbeatReply
from lbcp.models.resource import EventList, LoadBalancer, LoadBalancerList, LoadBalancerRecord, representation
from lbcp.models.scaling import WarmRequest, WarmResponse
from lbcp.models.spec import LoadBalancerSpec
from lbcp.service import LoadBalancerService, WarmContended
from lbcp.settings import settings
from lbcp.validation import errors_from_pydantic

if TYPE_CHECKING:
    from lbcp.api.idempotency import IdempotentCreates
    from lbcp.heartbeats import HeartbeatService

logger = Logger(service="lbcp-api")
app = APIGatewayHttpResolver(enable_validation=True)

BASE = "/v1"

# The API's routes, for telling an unknown path (404) from a known path with
# the wrong method (405). tests/api/test_openapi.py checks it against the routes.
ROUTE_TABLE: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    (re.compile(rf"^{BASE}/load-balancers$"), ("GET", "POST")),
    (re.compile(rf"^{BASE}/load-balancers/[^/]+$"), ("DELETE", "GET", "PATCH")),
    (re.compile(rf"^{BASE}/load-balancers/[^/]+/events$"), ("GET",)),
    (re.compile(rf"^{BASE}/openapi\.json$"), ("GET",)),
    (re.compile(rf"^{BASE}/load-balancers/[^/]+/warm$"), ("POST",)),
    (re.compile(rf"^{BASE}/agent/config$"), ("GET",)),
    (re.compile(rf"^{BASE}/agent/heartbeat$"), ("POST",)),
)
# The routes that read a JSON body (checked before routing, see preflight.py).
BODY_ROUTES: tuple[tuple[re.Pattern[str], str], ...] = (
    (ROUTE_TABLE[0][0], "POST"),
    (ROUTE_TABLE[1][0], "PATCH"),
    (ROUTE_TABLE[4][0], "POST"),
    (ROUTE_TABLE[6][0], "POST"),
)


# --- dependencies (created on first use, replaceable in tests) ----------------------


class Dependencies:
    """The clients and services a request needs, each built on first use.

    Cold starts pay only for what their first request uses: botocore (not
    boto3, which drags in s3transfer) for every request; EC2 and ACM clients
    only for validating a create or a change; Powertools' idempotency layer
    (which imports boto3) only for a create with an Idempotency-Key.
    """

    def __init__(self) -> None:
        from botocore.config import Config
        from botocore.session import get_session

        self._config = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=2, read_timeout=5)
        self._session = get_session()
        self.settings = settings()
        self.dynamodb = self._session.create_client("dynamodb", config=self._config)
        self.load_balancers = LoadBalancerRepository(
            self.dynamodb, self.settings.table_name, timedelta(days=self.settings.event_retention_days)
        )
        self._account_inspector: AccountInspector | None = None
        self.service = LoadBalancerService(self.load_balancers, self._inspector, self.clock)
        self._idempotency: IdempotentCreates | None = None
        self._heartbeats: HeartbeatService | None = None
        self._lambda_context: Any = None

    @staticmethod
    def clock() -> datetime:
        return datetime.now(UTC)

    def _inspector(self) -> AccountInspector:
        if self._account_inspector is None:
            from lbcp.adapters.account import AwsAccountInspector

            ec2 = self._session.create_client("ec2", config=self._config)
            acm = self._session.create_client("acm", config=self._config)
            self._account_inspector = AwsAccountInspector(ec2, acm, ec2.meta.region_name)
        return self._account_inspector

    @property
    def heartbeats(self) -> HeartbeatService:
        if self._heartbeats is None:
            from lbcp.dal.lbvms import LbvmRepository
            from lbcp.heartbeats import HeartbeatService
            from lbcp.reconcile.lifecycle_port import StepFunctionsCallbacks

            self._heartbeats = HeartbeatService(
                load_balancers=self.load_balancers,
                lbvms=LbvmRepository(self.dynamodb, self.settings.table_name),
                callbacks=StepFunctionsCallbacks(self._session.create_client("stepfunctions", config=self._config)),
                clock=self.clock,
            )
        return self._heartbeats

    def register_lambda_context(self, context: Any) -> None:
        self._lambda_context = context
        if self._idempotency is not None:
            self._idempotency.config.register_lambda_context(context)

    @property
    def idempotency(self) -> IdempotentCreates:
        if self._idempotency is None:
            from lbcp.api.idempotency import IdempotentCreates

            self._idempotency = IdempotentCreates(
                self.dynamodb, self.settings.table_name, self.settings.idempotency_ttl_seconds
            )
            if self._lambda_context is not None:
                self._idempotency.config.register_lambda_context(self._lambda_context)
        return self._idempotency


@lru_cache(maxsize=1)
def dependencies() -> Dependencies:
    return Dependencies()


# --- responses -----------------------------------------------------------------------


def _json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body),
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _resource_response(status: int, record: LoadBalancerRecord, headers: dict[str, str] | None = None) -> Response[Any]:
    body = representation(record, dependencies().clock())
    return _json_response(status, body, {"ETag": _etag(record.generation), **(headers or {})})


def _problem_response(problem: ApiProblem) -> Response[Any]:
    return Response(
        status_code=problem.status,
        content_type=PROBLEM_CONTENT_TYPE,
        body=problem.to_json(),
        headers={"Cache-Control": "no-store", **problem.headers},
    )


def _etag(generation: int) -> str:
    return f'"{generation}"'


def _principal() -> str | None:
    context = app.current_event.raw_event.get("requestContext", {})
    iam = (context.get("authorizer") or {}).get("iam") or {}
    arn = iam.get("userArn") or iam.get("callerId")
    return str(arn) if arn else None


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


# --- routes --------------------------------------------------------------------------


def _ok(description: str, model: type[BaseModel]) -> OpenAPIResponse:
    return {"description": description, "content": {"application/json": {"model": model}}}


def _problem(description: str) -> OpenAPIResponse:
    return {"description": description, "content": {"application/problem+json": {"model": Problem}}}


_COMMON: dict[int, OpenAPIResponse] = {
    400: _problem("Invalid request; errors[] names each bad field"),
    404: _problem("No such load balancer"),
}

LbRef = Annotated[str, Path(description="The load balancer's id (lb-...) or its name.")]


@app.post(
    f"{BASE}/load-balancers",
    summary="Declare a load balancer",
    description="Validates the spec (shape, then the VPC, subnets and certificates in the account) and stores it. "
    "The reconciler builds it; follow status and events.",
    responses={
        201: _ok("Created", LoadBalancer),
        400: _COMMON[400],
        409: _problem("The name is in use, or the Idempotency-Key is in use"),
        413: _problem("Body over 64 KiB"),
        415: _problem("Body is not application/json"),
        422: _problem("The spec names things that do not exist or cannot be used"),
    },
    tags=["load balancers"],
)
def create_load_balancer(
    spec: Annotated[LoadBalancerSpec, Body(description="The spec (DESIGN section 3).")],
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", description="Repeat a create safely: a repeat returns the first result."),
    ] = None,
) -> Response[Any]:
    deps = dependencies()
    principal = _principal()

    def create() -> dict[str, Any]:
        return representation(deps.service.create(spec, principal), deps.clock())

    if idempotency_key is None:
        body, replayed = create(), False
    else:
        document = app.context.get("json_body") or {}
        from lbcp.api.idempotency import check_key

        body, replayed = deps.idempotency.run(
            key=check_key(idempotency_key), principal=principal, body=document, create=create
        )
    headers = {"Location": f"{BASE}/load-balancers/{body['id']}", "ETag": _etag(int(body["generation"]))}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return _json_response(201, body, headers)


@app.get(
    f"{BASE}/load-balancers",
    summary="List load balancers",
    description="Ordered by name; pass nextToken from one page to get the next.",
    responses={200: _ok("A page", LoadBalancerList)},
    tags=["load balancers"],
)
def list_load_balancers(
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    next_token: Annotated[str | None, Query(alias="nextToken", max_length=2048)] = None,
) -> Response[Any]:
    try:
        page = dependencies().service.list(limit, next_token)
    except InvalidPageToken as exc:
        raise _bad_token(exc) from None
    items = [representation(record, dependencies().clock()) for record in page.items]
    return _json_response(200, {"items": items, "nextToken": page.next_token})


@app.get(
    f"{BASE}/load-balancers/<id>",
    summary="Get a load balancer: its spec and status",
    responses={
        200: _ok("The load balancer", LoadBalancer),
        404: _COMMON[404],
    },
    tags=["load balancers"],
)
def get_load_balancer(id: LbRef) -> Response[Any]:
    return _resource_response(200, dependencies().service.resolve(id))


@app.patch(
    f"{BASE}/load-balancers/<id>",
    summary="Change a load balancer's spec (JSON Merge Patch, RFC 7386)",
    description="Send the fields to change; null resets a field to its default. name, type and vpcId are fixed. "
    "If-Match must carry the generation you read; a newer one gets 412.",
    responses={
        200: _ok("The changed load balancer", LoadBalancer),
        **_COMMON,
        409: _problem("The load balancer is being deleted"),
        412: _problem("The generation changed since you read it"),
        415: _problem("Body is not merge-patch+json or json"),
        422: _problem("Immutable field changed, or the spec cannot be satisfied"),
        428: _problem("If-Match is missing"),
    },
    tags=["load balancers"],
)
def patch_load_balancer(
    id: LbRef,
    if_match: Annotated[str | None, Header(alias="If-Match", description="The generation (ETag) you read.")] = None,
) -> Response[Any]:
    expected = _parse_if_match(if_match, required=True)
    patch = app.context.get("json_body") or {}
    service = dependencies().service
    if expected is None:  # If-Match: * applies to whatever is current
        expected = service.resolve(id).generation
    result = service.patch(id, expected, patch, _principal())
    return _resource_response(200, result.record)


@app.delete(
    f"{BASE}/load-balancers/<id>",
    summary="Delete a load balancer",
    description="Starts ordered teardown; the load balancer shows phase Deleting until nothing is left, then 404.",
    responses={
        202: _ok("Teardown started", LoadBalancer),
        404: _COMMON[404],
        412: _problem("If-Match given and the generation changed"),
    },
    tags=["load balancers"],
)
def delete_load_balancer(
    id: LbRef,
    if_match: Annotated[str | None, Header(alias="If-Match", description="Optional: the generation you read.")] = None,
) -> Response[Any]:
    expected = _parse_if_match(if_match, required=False)
    record = dependencies().service.delete(id, expected, _principal())
    return _resource_response(202, record)


@app.get(
    f"{BASE}/load-balancers/<id>/events",
    summary="A load balancer's events, newest first",
    responses={
        200: _ok("A page of events", EventList),
        404: _COMMON[404],
    },
    tags=["load balancers"],
)
def list_events(
    id: LbRef,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 50,
    next_token: Annotated[str | None, Query(alias="nextToken", max_length=2048)] = None,
) -> Response[Any]:
    try:
        page = dependencies().service.events(id, limit, next_token)
    except InvalidPageToken as exc:
        raise _bad_token(exc) from None
    items = [event.model_dump(mode="json", by_alias=True, exclude_none=True) for event in page.items]
    return _json_response(200, {"items": items, "nextToken": page.next_token})


@app.post(
    f"{BASE}/load-balancers/<id>/warm",
    summary="Pre-warm a load balancer ahead of a known spike",
    description="Keep at least `floor` LBVMs, or `extra` more than now, until the expiry; the scaler may go higher "
    "but not lower meanwhile. Visible in status.scaling.warm and in events.",
    responses={
        200: _ok("The floor in force and the desired capacity now", WarmResponse),
        404: _COMMON[404],
        409: _problem("The load balancer is being deleted, or the scaler decided concurrently"),
        422: _problem("The floor does not fit within capacity.max"),
    },
    tags=["load balancers"],
)
def warm(id: LbRef, request: Annotated[WarmRequest, Body()]) -> Response[Any]:
    result = dependencies().service.warm(id, request, _principal())
    return _json_response(200, result.to_json())


LbvmId = Annotated[str, Query(alias="lbvmId", pattern=r"^lbvm-[0-9a-f]{12}$", description="The LBVM asking.")]
LoadBalancerId = Annotated[str, Query(alias="loadBalancerId", pattern=r"^lb-[0-9a-f]{17}$")]


@app.get(
    f"{BASE}/agent/config",
    summary="An LBVM agent fetches the configuration it should run",
    description="Called by the agent with its instance role; an instance may ask only for its own LBVM.",
    responses={200: _ok("The spec and its version", AgentConfig), 403: _problem("Not this LBVM's instance")},
    tags=["agent"],
)
def agent_config(lbvm_id: LbvmId, load_balancer_id: LoadBalancerId) -> Response[Any]:
    config = dependencies().heartbeats.config(_principal(), load_balancer_id, lbvm_id)
    return _json_response(200, config.model_dump(mode="json", by_alias=True))


@app.post(
    f"{BASE}/agent/heartbeat",
    summary="An LBVM agent reports that it is alive, and what it runs",
    description="Every heartbeatIntervalSeconds; the reply says which config version to run and whether to drain.",
    responses={200: _ok("What the agent should do", HeartbeatReply), 403: _problem("Not this LBVM's instance")},
    tags=["agent"],
)
def agent_heartbeat(beat: Annotated[Heartbeat, Body()]) -> Response[Any]:
    reply = dependencies().heartbeats.heartbeat(_principal(), beat)
    return _json_response(200, reply.model_dump(mode="json", by_alias=True))


@app.get(f"{BASE}/openapi.json", include_in_schema=False)
def openapi_document() -> Response[Any]:
    from lbcp.api.openapi import openapi_document as build

    return _json_response(200, build(), {"Cache-Control": "max-age=300"})


# --- errors --------------------------------------------------------------------------


def _bad_token(exc: Exception) -> ApiProblem:
    return ApiProblem(
        "invalid-request",
        f"nextToken is not valid: {exc}",
        [FieldError(("nextToken",), str(exc), "invalid", "query")],
    )


@app.exception_handler(ApiProblem)
def _on_problem(problem: ApiProblem) -> Response[Any]:
    return _problem_response(problem)


@app.exception_handler(RequestValidationError)
def _on_validation_error(exc: RequestValidationError) -> Response[Any]:
    errors: list[FieldError] = []
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        where = str(loc[0]) if loc else "body"
        location: Location = where if where in ("body", "query", "header", "path") else "body"  # type: ignore[assignment]
        errors.extend(errors_from_pydantic([error], location=location, drop_prefix=1))
    return _problem_response(invalid(errors))


@app.exception_handler(SpecRejected)
def _on_spec_rejected(exc: SpecRejected) -> Response[Any]:
    if exc.unprocessable:
        if len(exc.errors) == 1:
            detail = f"{exc.errors[0].field}: {exc.errors[0].message}"
        else:
            detail = f"{len(exc.errors)} problems with {field_summary(exc.errors)}; see errors[]"
        return _problem_response(ApiProblem("unprocessable-spec", detail, exc.errors))
    return _problem_response(invalid(exc.errors))


def _not_found_problem(ref: str) -> ApiProblem:
    return ApiProblem(
        "not-found",
        f"no load balancer has the id or name {ref[:80]!r}",
        [FieldError(("id",), "no such load balancer", "not_found", "path")],
    )


@app.exception_handler(NotFound)
def _on_not_found(exc: NotFound) -> Response[Any]:
    return _problem_response(_not_found_problem(str(exc)))


@app.exception_handler(NameInUse)
def _on_name_in_use(exc: NameInUse) -> Response[Any]:
    return _problem_response(
        ApiProblem("name-in-use", str(exc), [FieldError(("name",), "already in use", "name_in_use")])
    )


@app.exception_handler(GenerationMismatch)
def _on_generation_mismatch(exc: GenerationMismatch) -> Response[Any]:
    current = exc.current.generation
    return _problem_response(
        ApiProblem(
            "precondition-failed",
            f"the load balancer is at generation {current}; read it again and reapply your change",
            [FieldError(("If-Match",), f"stale: current generation is {current}", "stale", "header")],
            headers={"ETag": _etag(current)},
        )
    )


@app.exception_handler(BeingDeleted)
def _on_being_deleted(exc: BeingDeleted) -> Response[Any]:
    return _problem_response(
        ApiProblem(
            "being-deleted",
            f"{exc.current.id} is being deleted (since {exc.current.deletion_requested_at:%Y-%m-%dT%H:%M:%SZ}); "
            "it cannot be changed",
            [FieldError(("id",), "being deleted", "being_deleted", "path")],
        )
    )


@app.exception_handler(WarmContended)
def _on_warm_contended(exc: WarmContended) -> Response[Any]:
    return _problem_response(ApiProblem("scaling-contended", str(exc), headers={"Retry-After": "1"}))


@app.exception_handler(Forbidden)
def _on_forbidden(exc: Forbidden) -> Response[Any]:
    return _problem_response(ApiProblem("forbidden", str(exc)))


@app.exception_handler(UnknownLbvm)
def _on_unknown_lbvm(exc: UnknownLbvm) -> Response[Any]:
    return _problem_response(
        ApiProblem(
            "not-found",
            f"no LBVM {exc} is known: it may have been terminated",
            [FieldError(("lbvmId",), "no such LBVM", "not_found", "query")],
        )
    )


@app.not_found
def _on_route_not_found(exc: NotFoundError) -> Response[Any]:
    path = app.current_event.path
    method = app.current_event.http_method.upper()
    for pattern, methods in ROUTE_TABLE:
        if pattern.match(path) and method in methods:
            # A known route whose {id} cannot be an id or a name (say, a quote in it).
            parts = path.split("/")  # "", "v1", "load-balancers", "<id>", ...
            return _problem_response(_not_found_problem(parts[3] if len(parts) > 3 else path))
        if pattern.match(path):
            return _problem_response(
                ApiProblem(
                    "method-not-allowed",
                    f"{method} is not supported on {path}; use {', '.join(methods)}",
                    headers={"Allow": ", ".join(methods)},
                )
            )
    return _problem_response(ApiProblem("not-found", f"no resource at {path[:200]}"))


@app.exception_handler(Exception)
def _on_unexpected(exc: Exception) -> Response[Any]:
    request_id = app.current_event.raw_event.get("requestContext", {}).get("requestId", "unknown")
    if _is_throttling(exc):
        logger.warning("throttled by a dependency", exc_info=exc)
        return _problem_response(ApiProblem("service-unavailable", "retry with backoff", headers={"Retry-After": "2"}))
    logger.exception("unexpected error")
    return _problem_response(ApiProblem("internal-error", f"unexpected error; request id {request_id}"))


def _is_throttling(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return code in {"ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded"}


# --- entry point ---------------------------------------------------------------------


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Preflight the raw request, then route it. Logs one line per request."""
    started = time.perf_counter()
    http = event.get("requestContext", {}).get("http", {})
    method, path = str(http.get("method", "")).upper(), str(event.get("rawPath") or http.get("path") or "")
    try:
        body = None
        if any(pattern.match(path) and method == body_method for pattern, body_method in BODY_ROUTES):
            body, media_type = decode_json_body(event)
            # Powertools matches media types case-sensitively; hand it the canonical form.
            event = {**event, "headers": {**(event.get("headers") or {}), "content-type": media_type}}
    except ApiProblem as problem:
        response = _problem_response(problem)
        result: dict[str, Any] = {
            "statusCode": response.status_code,
            "headers": {"Content-Type": PROBLEM_CONTENT_TYPE, **response.headers},
            "body": response.body,
            "isBase64Encoded": False,
        }
    else:
        if body is not None:
            app.append_context(json_body=body)
        dependencies().register_lambda_context(context)
        result = app.resolve(event, context)
    logger.info(
        "request",
        method=method,
        path=path,
        status=result.get("statusCode"),
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return result
