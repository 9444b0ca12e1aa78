"""Problem details (RFC 9457): every error the API returns, in one shape.

``type`` is a stable URN per kind of problem, ``title`` its fixed summary,
``detail`` what happened to this request, and ``errors`` one entry per bad
field (``field``, ``pointer``, ``in``, ``code``, ``message``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from lbcp.errors import FieldError

PROBLEM_CONTENT_TYPE = "application/problem+json"

# status, slug, title
_KINDS: dict[str, tuple[int, str]] = {
    "invalid-request": (400, "The request is invalid"),
    "forbidden": (403, "Not allowed for this caller"),
    "not-found": (404, "No such resource"),
    "method-not-allowed": (405, "Method not allowed on this resource"),
    "name-in-use": (409, "The name is already in use"),
    "being-deleted": (409, "The load balancer is being deleted"),
    "request-in-progress": (409, "A request with this Idempotency-Key is in progress"),
    "scaling-contended": (409, "The scaler decided at the same time"),
    "no-rollout": (409, "No rollout is in progress"),
    "rollout-ambiguous": (409, "A template and a config rollout are both in progress"),
    "version-not-offered": (409, "That config version is not offered to this LBVM"),
    "precondition-failed": (412, "The resource has changed"),
    "payload-too-large": (413, "The request body is too large"),
    "unsupported-media-type": (415, "Unsupported media type"),
    "unprocessable-spec": (422, "The spec cannot be satisfied in this account"),
    "idempotency-key-reused": (422, "The Idempotency-Key was used with a different request"),
    "precondition-required": (428, "A precondition is required"),
    "internal-error": (500, "Internal error"),
    "service-unavailable": (503, "The control plane is busy"),
}


class ProblemFieldError(BaseModel):
    field: str = Field(description="The offending field as a readable path, e.g. listeners[0].port.")
    pointer: str | None = Field(
        default=None, description="For body fields: a JSON pointer fragment, e.g. #/listeners/0/port."
    )
    in_: str = Field(alias="in", description="body, header, query or path.")
    code: str = Field(description="Machine-readable error code.")
    message: str


class Problem(BaseModel):
    type: str = Field(description="A URN naming the kind of problem, e.g. urn:lbcp:problem:invalid-request.")
    title: str
    status: int
    detail: str
    errors: list[ProblemFieldError] = Field(default_factory=list)


class ApiProblem(Exception):
    """Raised anywhere in request handling; rendered as application/problem+json."""

    def __init__(
        self,
        kind: str,
        detail: str,
        errors: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.title = _KINDS[kind]
        self.kind = kind
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "type": f"urn:lbcp:problem:{self.kind}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "errors": [error.to_json() for error in self.errors],
        }

    def to_json(self) -> str:
        return json.dumps(self.body())


def field_summary(errors: Sequence[FieldError], limit: int = 5) -> str:
    """``listeners[1].port, capacity.min`` (the details are in ``errors[]``)."""
    fields = list(dict.fromkeys(error.field for error in errors))
    text = ", ".join(fields[:limit])
    return text + (f" and {len(fields) - limit} more" if len(fields) > limit else "")


def invalid(errors: Sequence[FieldError], detail: str | None = None) -> ApiProblem:
    if detail is None:
        if len(errors) == 1:
            detail = f"{errors[0].field}: {errors[0].message}"
        else:
            detail = f"{len(errors)} problems with {field_summary(errors)}; see errors[]"
    return ApiProblem("invalid-request", detail, errors)
