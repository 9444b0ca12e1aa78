"""The LBVM agent's calls: fetch the configuration to run, report a heartbeat (the agent endpoint's routes)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from lbcp.adapters.app_metrics import Tally, publish
from lbcp.api.dependencies import dependencies
from lbcp.api.operations import AGENT_CONFIG, AGENT_HEARTBEAT
from lbcp.api.resolver import agent_app, principal, route
from lbcp.api.responses import json_response
from lbcp.api.routes.openapi_parts import ok, problem
from lbcp.models.agent import AgentConfig, Heartbeat, HeartbeatReply
from lbcp.models.app_metrics import METRIC_HEARTBEATS, SERVICE_AGENT_API
from lbcp.models.lbvm import LBVM_ID_PATTERN
from lbcp.models.spec import LB_ID_PATTERN

LbvmId = Annotated[str, Query(alias="lbvmId", pattern=LBVM_ID_PATTERN, description="The LBVM asking.")]
LoadBalancerId = Annotated[str, Query(alias="loadBalancerId", pattern=LB_ID_PATTERN)]
_NOT_ITS_INSTANCE = problem("Not this LBVM's instance")
# Heartbeats this warm function accepted, published about once a minute (lbcp.adapters.app_metrics).
HEARTBEATS = Tally(METRIC_HEARTBEATS)


@route(
    AGENT_CONFIG,
    agent_app,
    summary="An LBVM agent fetches the configuration it should run",
    description="Called by the agent with its instance role; an instance may ask only for its own LBVM.",
    responses={
        200: ok("The spec and its version", AgentConfig),
        403: _NOT_ITS_INSTANCE,
        409: problem("A version this LBVM is neither told to run nor to preload"),
    },
    tags=["agent"],
)
def agent_config(
    lbvm_id: LbvmId,
    load_balancer_id: LoadBalancerId,
    version: Annotated[
        int | None,
        Query(ge=1, le=2**53, description="A version the LBVM is told to run or to preload; unset: the one to run."),
    ] = None,
) -> Response[Any]:
    config = dependencies().heartbeats.config(principal(agent_app), load_balancer_id, lbvm_id, version)
    return json_response(200, config.model_dump(mode="json", by_alias=True))


@route(
    AGENT_HEARTBEAT,
    agent_app,
    summary="An LBVM agent reports that it is alive, and what it runs",
    description="Every heartbeatIntervalSeconds; the reply says which config version to run and whether to drain.",
    responses={200: ok("What the agent should do", HeartbeatReply), 403: _NOT_ITS_INSTANCE},
    tags=["agent"],
)
def agent_heartbeat(beat: Annotated[Heartbeat, Body()]) -> Response[Any]:
    reply = dependencies().heartbeats.heartbeat(principal(agent_app), beat)
    publish(HEARTBEATS.add(time.monotonic()), SERVICE_AGENT_API)
    return json_response(200, reply.model_dump(mode="json", by_alias=True))
