"""The contract between the state machines, the tasks function and the heartbeat handler.

Execution names (one lifecycle per LBVM, so a retried start cannot launch twice):

- lifecycle: ``<lbvm id>`` (``lbvm-0123456789ab``)
- drain:     ``drain-<lbvm id>``

The tasks function's actions (the ``action`` field of its event) and the
callback outputs the state machines branch on are named here once; the ASL
files in ``statemachines/`` spell the same strings (``tests/fleet`` checks it).
"""

from __future__ import annotations

from typing import Any, Final, Literal

from lbcp import LBVM_ID_TAG_KEY
from lbcp.models.lbvm import CallbackKind

# LBVM_ID_TAG_KEY ties EC2 resources to one LBVM: the state machines find by it
# (the ASL files spell it "tag:lbcp:lbvm-id").
__all__ = ["LBVM_ID_TAG_KEY"]

LIFECYCLE_STATE_MACHINE_FILE: Final = "lbvm-lifecycle.asl.json"
DRAIN_STATE_MACHINE_FILE: Final = "lbvm-drain.asl.json"

# Actions of the lifecycle tasks function.
Action = Literal[
    "register-callback",
    "register-target",
    "deregister-target",
    "begin-drain",
    "finish-drain",
    "record-failure",
]
ACTIONS: Final[frozenset[str]] = frozenset(
    {"register-callback", "register-target", "deregister-target", "begin-drain", "finish-drain", "record-failure"}
)

CALLBACK_KINDS: Final[frozenset[CallbackKind]] = frozenset({"first-heartbeat", "heartbeats", "recovery"})


def lifecycle_execution_name(lbvm_id: str) -> str:
    return lbvm_id


def first_heartbeat_output(agent_state: str | None = None) -> dict[str, Any]:
    return {"action": "first-heartbeat", "agentState": agent_state}


def recovered_output() -> dict[str, Any]:
    return {"action": "recovered"}


def drain_output(reason: str, message: str | None = None) -> dict[str, Any]:
    output: dict[str, Any] = {"action": "drain", "reason": reason}
    if message:
        output["message"] = message
    return output


class TransientError(Exception):
    """A failure worth retrying (throttling, a conflict, eventual consistency).

    The state machines retry the error type ``TransientError`` with backoff
    (Lambda reports the exception's class name as the error).
    """
