"""The API's operations, declared once: path template, method, and whether it reads a JSON body.

The route modules register their handlers from these declarations, and the
answers for an unknown path (404) or an unsupported method (405), and which
requests get their body checked before routing (``preflight``), are derived
from them.

Two endpoints serve them: the HTTP API (``OPERATIONS``, API Gateway) and the
agent endpoint (``AGENT_OPERATIONS``: the LBVM agents' two routes, a Lambda
function URL of their own, which costs no API Gateway request per heartbeat).
Each answers only its own operations; the other's paths are unknown to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BASE = "/v1"
LOAD_BALANCERS = f"{BASE}/load-balancers"
LOAD_BALANCER = f"{LOAD_BALANCERS}/<id>"


@dataclass(frozen=True)
class Operation:
    path: str  # Powertools' template: <name> stands for one path segment
    method: str
    reads_body: bool = False

    @property
    def openapi_path(self) -> str:
        """The path as OpenAPI writes it: {name} for a parameter."""
        return re.sub(r"<(\w+)>", r"{\1}", self.path)


CREATE_LOAD_BALANCER = Operation(LOAD_BALANCERS, "POST", reads_body=True)
LIST_LOAD_BALANCERS = Operation(LOAD_BALANCERS, "GET")
GET_LOAD_BALANCER = Operation(LOAD_BALANCER, "GET")
PATCH_LOAD_BALANCER = Operation(LOAD_BALANCER, "PATCH", reads_body=True)
DELETE_LOAD_BALANCER = Operation(LOAD_BALANCER, "DELETE")
LIST_EVENTS = Operation(f"{LOAD_BALANCER}/events", "GET")
GET_LBVM = Operation(f"{LOAD_BALANCER}/lbvms/<lbvmId>", "GET")
GET_PLAN = Operation(f"{LOAD_BALANCER}/plan", "GET")
WARM = Operation(f"{LOAD_BALANCER}/warm", "POST", reads_body=True)
PAUSE_ROLLOUT = Operation(f"{LOAD_BALANCER}/rollout/pause", "POST")
RESUME_ROLLOUT = Operation(f"{LOAD_BALANCER}/rollout/resume", "POST")
ABORT_ROLLOUT = Operation(f"{LOAD_BALANCER}/rollout/abort", "POST")
LIST_ROLLOUTS = Operation(f"{LOAD_BALANCER}/rollouts", "GET")
AGENT_CONFIG = Operation(f"{BASE}/agent/config", "GET")
AGENT_HEARTBEAT = Operation(f"{BASE}/agent/heartbeat", "POST", reads_body=True)
OPENAPI_DOCUMENT = Operation(f"{BASE}/openapi.json", "GET")
CONSISTENCY = f"{BASE}/consistency"
GET_CONSISTENCY = Operation(CONSISTENCY, "GET")
SWEEP = Operation(f"{CONSISTENCY}/sweep", "POST", reads_body=True)
GC_AUDIT = Operation(f"{CONSISTENCY}/audit", "GET")

OPERATIONS: tuple[Operation, ...] = (
    CREATE_LOAD_BALANCER,
    LIST_LOAD_BALANCERS,
    GET_LOAD_BALANCER,
    PATCH_LOAD_BALANCER,
    DELETE_LOAD_BALANCER,
    LIST_EVENTS,
    GET_LBVM,
    GET_PLAN,
    WARM,
    PAUSE_ROLLOUT,
    RESUME_ROLLOUT,
    ABORT_ROLLOUT,
    LIST_ROLLOUTS,
    GET_CONSISTENCY,
    SWEEP,
    GC_AUDIT,
    OPENAPI_DOCUMENT,
)
AGENT_OPERATIONS: tuple[Operation, ...] = (AGENT_CONFIG, AGENT_HEARTBEAT)


@dataclass(frozen=True)
class Resource:
    """One path template and the operations on it."""

    path: str
    methods: tuple[str, ...]  # sorted: the Allow header of a 405
    body_methods: frozenset[str]
    pattern: re.Pattern[str]  # any segment where the template has a parameter, named after it


def _pattern(template: str) -> re.Pattern[str]:
    # Wider than Powertools' own parameter pattern on purpose: a path whose
    # parameter Powertools refuses (say, a quote in it) is still this resource.
    return re.compile("^" + re.sub(r"<(\w+)>", r"(?P<\1>[^/]+)", re.escape(template)) + "$")


def _resources(operations: tuple[Operation, ...]) -> tuple[Resource, ...]:
    paths = dict.fromkeys(operation.path for operation in operations)
    return tuple(
        Resource(
            path=path,
            methods=tuple(sorted(op.method for op in operations if op.path == path)),
            body_methods=frozenset(op.method for op in operations if op.path == path and op.reads_body),
            pattern=_pattern(path),
        )
        for path in paths
    )


RESOURCES = _resources(OPERATIONS)
AGENT_RESOURCES = _resources(AGENT_OPERATIONS)


def resource_at(path: str, resources: tuple[Resource, ...] = RESOURCES) -> tuple[Resource, dict[str, str]] | None:
    """The resource a concrete path names, with its parameters; None for a path the endpoint does not have."""
    for resource in resources:
        match = resource.pattern.match(path)
        if match is not None:
            return resource, match.groupdict()
    return None


def reads_body(method: str, path: str, resources: tuple[Resource, ...] = RESOURCES) -> bool:
    found = resource_at(path, resources)
    return found is not None and method in found[0].body_methods
