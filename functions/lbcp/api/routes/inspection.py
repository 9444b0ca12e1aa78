"""Why things are as they are: one LBVM's detail and history, and the reconciler's plan for now (read-only)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path

from lbcp.api.dependencies import dependencies
from lbcp.api.operations import GET_LBVM, GET_PLAN
from lbcp.api.resolver import route
from lbcp.api.responses import json_response
from lbcp.api.routes.openapi_parts import NO_SUCH_LOAD_BALANCER, LbRef, ok, problem
from lbcp.models.inspection import LbvmDetail, PlanView
from lbcp.models.lbvm import LBVM_ID_PATTERN

LbvmRef = Annotated[str, Path(pattern=LBVM_ID_PATTERN, description="The LBVM's id (lbvm- and 12 hex digits).")]


@route(
    GET_LBVM,
    summary="One LBVM: why it exists, why it is in its state, and its events",
    description="Its record (launch reason, drain and end reasons, the agent's last report, the config version it "
    "runs), its lifecycle execution (ARN and Step Functions console page) and its events, newest first.",
    responses={
        200: ok("The LBVM", LbvmDetail),
        400: problem("lbvmId is not an LBVM id"),
        404: problem("No such load balancer, or it has no such LBVM"),
    },
    tags=["load balancers"],
)
def get_lbvm(id: LbRef, lbvmId: LbvmRef) -> Response[Any]:  # noqa: N803 (the path's own name)
    detail = dependencies().inspection.lbvm(id, lbvmId)
    return json_response(200, detail.model_dump(mode="json", by_alias=True, exclude_none=True))


@route(
    GET_PLAN,
    summary="What the reconciler would do now, and why",
    description="The reconciler's planner run on a fresh observation of the account (instances, interfaces, the "
    "entry and its registrations), with nothing acted on and nothing written: the jobs it would run with their "
    "reasons, the template the fleet converges on, and the desired state against the observed one, field by field. "
    "A preview: the reconciler decides again from its own reads, and draws a scale-in victim at random from the "
    "LBVMs a job lists in drawnFrom.",
    responses={200: ok("The plan", PlanView), 404: NO_SUCH_LOAD_BALANCER},
    tags=["load balancers"],
)
def get_plan(id: LbRef) -> Response[Any]:
    view = dependencies().inspection.plan(id)
    return json_response(200, view.model_dump(mode="json", by_alias=True, exclude_none=True))
