"""Every exception a request can end in, as problem+json naming the field (or the path) at fault.

Both endpoints (the HTTP API and the agent endpoint) answer errors alike:
``register`` puts every handler on a resolver, with that endpoint's own
resources for the 404 and 405 answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from lbcp.api.operations import Resource, resource_at
from lbcp.api.problems import ApiProblem, field_summary, invalid
from lbcp.api.resolver import logger
from lbcp.api.responses import etag, problem_response
from lbcp.dal.repository import BeingDeleted, GenerationMismatch, InvalidPageToken, NameInUse, NotFound
from lbcp.errors import FieldError, Location, SpecRejected
from lbcp.heartbeats import ConfigVersionGone, Forbidden, UnknownLbvm, VersionNotOffered
from lbcp.inspection import LbvmNotFound
from lbcp.service import NoRollout, RolloutAmbiguous, WarmContended
from lbcp.validation import errors_from_pydantic

_THROTTLING_CODES = frozenset({"ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded"})

Handler = TypeVar("Handler", bound=Callable[..., Response[Any]])
# (exception class, handler) of every handler that needs nothing but the exception.
_HANDLERS: list[tuple[type[Exception], Callable[..., Response[Any]]]] = []


def _handles(exc_class: type[Exception]) -> Callable[[Handler], Handler]:
    def add(handler: Handler) -> Handler:
        _HANDLERS.append((exc_class, handler))
        return handler

    return add


def register(resolver: ApiGatewayResolver, resources: tuple[Resource, ...]) -> None:
    """Every error handler on ``resolver``; ``resources``: the paths it serves (404 and 405 are derived from them)."""
    for exc_class, handler in _HANDLERS:
        resolver.exception_handler(exc_class)(handler)

    @resolver.not_found
    def _on_route_not_found(exc: NotFoundError) -> Response[Any]:
        return _route_not_found(resolver, resources)

    @resolver.exception_handler(Exception)
    def _on_unexpected(exc: Exception) -> Response[Any]:
        return _unexpected(resolver, exc)


@_handles(ApiProblem)
def _on_problem(problem: ApiProblem) -> Response[Any]:
    return problem_response(problem)


@_handles(RequestValidationError)
def _on_validation_error(exc: RequestValidationError) -> Response[Any]:
    errors: list[FieldError] = []
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        where = str(loc[0]) if loc else "body"
        location: Location = where if where in ("body", "query", "header", "path") else "body"  # type: ignore[assignment]
        errors.extend(errors_from_pydantic([error], location=location, drop_prefix=1))
    return problem_response(invalid(errors))


@_handles(SpecRejected)
def _on_spec_rejected(exc: SpecRejected) -> Response[Any]:
    if exc.unprocessable:
        if len(exc.errors) == 1:
            detail = f"{exc.errors[0].field}: {exc.errors[0].message}"
        else:
            detail = f"{len(exc.errors)} problems with {field_summary(exc.errors)}; see errors[]"
        return problem_response(ApiProblem("unprocessable-spec", detail, exc.errors))
    return problem_response(invalid(exc.errors))


@_handles(InvalidPageToken)
def _on_invalid_page_token(exc: InvalidPageToken) -> Response[Any]:
    return problem_response(
        ApiProblem(
            "invalid-request",
            f"nextToken is not valid: {exc}",
            [FieldError(("nextToken",), str(exc), "invalid", "query")],
        )
    )


def _not_found_problem(ref: str) -> ApiProblem:
    return ApiProblem(
        "not-found",
        f"no load balancer has the id or name {ref[:80]!r}",
        [FieldError(("id",), "no such load balancer", "not_found", "path")],
    )


@_handles(NotFound)
def _on_not_found(exc: NotFound) -> Response[Any]:
    return problem_response(_not_found_problem(str(exc)))


@_handles(NameInUse)
def _on_name_in_use(exc: NameInUse) -> Response[Any]:
    return problem_response(
        ApiProblem("name-in-use", str(exc), [FieldError(("name",), "already in use", "name_in_use")])
    )


@_handles(GenerationMismatch)
def _on_generation_mismatch(exc: GenerationMismatch) -> Response[Any]:
    current = exc.current.generation
    return problem_response(
        ApiProblem(
            "precondition-failed",
            f"the load balancer is at generation {current}; read it again and reapply your change",
            [FieldError(("If-Match",), f"stale: current generation is {current}", "stale", "header")],
            headers={"ETag": etag(current)},
        )
    )


@_handles(BeingDeleted)
def _on_being_deleted(exc: BeingDeleted) -> Response[Any]:
    return problem_response(
        ApiProblem(
            "being-deleted",
            f"{exc.current.id} is being deleted (since {exc.current.deletion_requested_at:%Y-%m-%dT%H:%M:%SZ}); "
            "it cannot be changed",
            [FieldError(("id",), "being deleted", "being_deleted", "path")],
        )
    )


@_handles(WarmContended)
def _on_warm_contended(exc: WarmContended) -> Response[Any]:
    return problem_response(ApiProblem("scaling-contended", str(exc), headers={"Retry-After": "1"}))


@_handles(NoRollout)
def _on_no_rollout(exc: NoRollout) -> Response[Any]:
    errors = [FieldError(("kind",), "no rollout of this kind in progress", "no_rollout", "query")]
    return problem_response(ApiProblem("no-rollout", str(exc), errors if exc.kind_asked else ()))


@_handles(RolloutAmbiguous)
def _on_rollout_ambiguous(exc: RolloutAmbiguous) -> Response[Any]:
    return problem_response(
        ApiProblem(
            "rollout-ambiguous",
            str(exc),
            [FieldError(("kind",), "required while both kinds of rollout are in progress", "required", "query")],
        )
    )


@_handles(Forbidden)
def _on_forbidden(exc: Forbidden) -> Response[Any]:
    return problem_response(ApiProblem("forbidden", str(exc)))


@_handles(LbvmNotFound)
def _on_lbvm_not_found(exc: LbvmNotFound) -> Response[Any]:
    return problem_response(
        ApiProblem("not-found", str(exc), [FieldError(("lbvmId",), "no such LBVM", "not_found", "path")])
    )


@_handles(UnknownLbvm)
def _on_unknown_lbvm(exc: UnknownLbvm) -> Response[Any]:
    return problem_response(
        ApiProblem(
            "not-found",
            f"no LBVM {exc} is known: it may have been terminated",
            [FieldError(("lbvmId",), "no such LBVM", "not_found", "query")],
        )
    )


@_handles(ConfigVersionGone)
def _on_config_version_gone(exc: ConfigVersionGone) -> Response[Any]:
    # The agent keeps serving what it runs and asks again; the next PATCH stores the version it lacks.
    return problem_response(
        ApiProblem(
            "not-found",
            f"{exc}: this LBVM keeps its current config until the next spec change",
            [FieldError(("loadBalancerId",), f"config version {exc.version} is not stored", "not_found", "query")],
        )
    )


@_handles(VersionNotOffered)
def _on_version_not_offered(exc: VersionNotOffered) -> Response[Any]:
    return problem_response(
        ApiProblem(
            "version-not-offered",
            str(exc),
            [FieldError(("version",), f"config version {exc.version} is not offered", "not_offered", "query")],
        )
    )


def _route_not_found(resolver: ApiGatewayResolver, resources: tuple[Resource, ...]) -> Response[Any]:
    path = resolver.current_event.path
    method = resolver.current_event.http_method.upper()
    found = resource_at(path, resources)
    if found is None:
        return problem_response(ApiProblem("not-found", f"no resource at {path[:200]}"))
    resource, parameters = found
    if method in resource.methods:
        # A known operation whose {id} Powertools' pattern refuses (say, a quote in it): it names nothing.
        return problem_response(_not_found_problem(parameters.get("id", path)))
    allowed = ", ".join(resource.methods)
    return problem_response(
        ApiProblem(
            "method-not-allowed",
            f"{method} is not supported on {path}; use {allowed}",
            headers={"Allow": allowed},
        )
    )


def _unexpected(resolver: ApiGatewayResolver, exc: Exception) -> Response[Any]:
    request_id = resolver.current_event.raw_event.get("requestContext", {}).get("requestId", "unknown")
    if _is_throttling(exc):
        logger.warning("throttled by a dependency", exc_info=exc)
        return problem_response(ApiProblem("service-unavailable", "retry with backoff", headers={"Retry-After": "2"}))
    logger.exception("unexpected error")
    return problem_response(ApiProblem("internal-error", f"unexpected error; request id {request_id}"))


def _is_throttling(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return code in _THROTTLING_CODES
