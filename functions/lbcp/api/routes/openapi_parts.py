"""OpenAPI descriptions the routes share: response bodies and the load balancer reference."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel

from lbcp.api.problems import Problem

LbRef = Annotated[str, Path(description="The load balancer's id (lb-...) or its name.")]


def ok(description: str, model: type[BaseModel]) -> OpenAPIResponse:
    return {"description": description, "content": {"application/json": {"model": model}}}


def problem(description: str) -> OpenAPIResponse:
    return {"description": description, "content": {"application/problem+json": {"model": Problem}}}


INVALID = problem("Invalid request; errors[] names each bad field")
NO_SUCH_LOAD_BALANCER = problem("No such load balancer")
