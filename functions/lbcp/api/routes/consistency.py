"""The consistency checker's report, garbage collection of orphans, and its audit log.

``GET /v1/consistency`` answers 200 always: before the checker's first run,
an empty report with ``generatedAt`` null (a client needs no special case, and
404 would say the resource does not exist, which is not what "not run yet"
means). Sweeps run in the consistency function (``ConsistencyFunction``), one
resource per call, each re-checked there against the live records.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from lbcp.adapters.consistency_function import ConsistencyFunction
from lbcp.api.dependencies import dependencies
from lbcp.api.operations import GC_AUDIT, GET_CONSISTENCY, SWEEP
from lbcp.api.problems import ApiProblem, invalid
from lbcp.api.resolver import principal, route
from lbcp.api.responses import json_response
from lbcp.api.routes.openapi_parts import INVALID, ok, problem
from lbcp.consistency.findings import ConsistencyReport
from lbcp.consistency.store import AuditLog
from lbcp.consistency.sweep import SweepPlan, SweepRequest, SweepResult
from lbcp.errors import FieldError

NOT_DEPLOYED = problem("The consistency checker is not deployed here")


@route(
    GET_CONSISTENCY,
    summary="The consistency checker's last report",
    description="Every resource carrying our owner tags that no record explains (orphan), that differs from its "
    "spec (drift), every record with nothing behind it (leak) and every stuck execution or deletion. Before the "
    "first run: an empty report with generatedAt null.",
    responses={200: ok("The last report", ConsistencyReport)},
    tags=["consistency"],
)
def get_consistency() -> Response[Any]:
    report = dependencies().consistency_store.last_report() or ConsistencyReport()
    return json_response(200, report.model_dump(mode="json", by_alias=True))


def _function() -> ConsistencyFunction:
    function = dependencies().consistency_function
    if function is None:
        raise ApiProblem("service-unavailable", "the consistency checker is not deployed in this control plane")
    return function


@route(
    SWEEP,
    summary="Garbage-collect orphans: a dry run, or the removal of one",
    description="Without apply: run the checker now and answer the orphans a sweep would remove, in the order it "
    "removes them. With apply, resourceType and resourceId: re-check that one resource against the live records "
    "and remove it only if it carries our owner tags and nothing claims it; every outcome is audited.",
    responses={
        200: {
            "description": "The dry run's plan (SweepPlan), or what was done to the resource (SweepResult)",
            "content": {"application/json": {"model": SweepPlan | SweepResult}},
        },
        400: INVALID,
        503: NOT_DEPLOYED,
    },
    tags=["consistency"],
)
def sweep(request: Annotated[SweepRequest, Body()]) -> Response[Any]:
    function = _function()
    if not request.apply:
        plan = SweepPlan.model_validate(function.invoke({"action": "plan"}))
        return json_response(200, plan.model_dump(mode="json", by_alias=True))
    missing = [
        FieldError((name,), "required with apply", "missing")
        for name, value in (("resourceType", request.resource_type), ("resourceId", request.resource_id))
        if value is None
    ]
    if missing:
        raise invalid(missing)
    result = SweepResult.model_validate(
        function.invoke(
            {
                "action": "sweep",
                "resourceType": request.resource_type,
                "resourceId": request.resource_id,
                "actor": principal() or "unknown",
            }
        )
    )
    return json_response(200, result.model_dump(mode="json", by_alias=True))


@route(
    GC_AUDIT,
    summary="The garbage collector's audit log, newest first",
    description="Every deletion, refusal, mark and release, append-only.",
    responses={200: ok("The newest audit entries", AuditLog)},
    tags=["consistency"],
)
def audit(limit: Annotated[int, Query(ge=1, le=100, description="How many.")] = 50) -> Response[Any]:
    entries = dependencies().consistency_store.audit_log(limit)
    return json_response(200, AuditLog(items=entries).model_dump(mode="json", by_alias=True, exclude_none=True))
