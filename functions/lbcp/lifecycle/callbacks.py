"""Completing the lifecycle's callbacks: what the heartbeat handler (and the reconciler) call.

The lifecycle state machine waits in three places, each a
``lambda:invoke.waitForTaskToken`` task whose token the tasks function stores
on the LBVM record (``callbackKind``/``callbackToken``):

==================  ==========  =====================================================
callbackKind        state       completed by
==================  ==========  =====================================================
first-heartbeat     Pending     the first heartbeat of a ready agent:
                                ``{"action": "first-heartbeat"}``
heartbeats          Routable    never by heartbeats: each one from a ready agent is a
                                SendTaskHeartbeat; silence past the unhealthy timeout
                                ends the wait (Unroutable)
recovery            Unroutable  a heartbeat of a ready agent: ``{"action": "recovered"}``
(any)                           a drain request: ``{"action": "drain", "reason": ...}``
==================  ==========  =====================================================

A token that is no longer waited on (the state machine moved on, the task
timed out) is not an error here: the functions return False and the caller
carries on. The heartbeat handler's order is: store the heartbeat on the
record (conditional on its version), then ``on_heartbeat`` with the record as
written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Final, Literal

from botocore.exceptions import ClientError

from lbcp.lifecycle.protocol import first_heartbeat_output, recovered_output
from lbcp.models.lbvm import Lbvm

logger = logging.getLogger(__name__)

# SendTask* errors that mean "nobody waits on this token any more".
STALE_TOKEN_ERRORS: Final = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})
READY: Final = "ready"

HeartbeatOutcome = Literal["first-heartbeat", "heartbeat", "recovered", "stale", "ignored"]


def _stale(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code", "")) in STALE_TOKEN_ERRORS


def complete(sfn: Any, token: str, output: Mapping[str, Any]) -> bool:
    """SendTaskSuccess with ``output``; False if the token is no longer waited on."""
    try:
        sfn.send_task_success(taskToken=token, output=json.dumps(dict(output), separators=(",", ":")))
    except ClientError as exc:
        if _stale(exc):
            logger.info("callback token no longer waited on (%s)", exc.response["Error"]["Code"])
            return False
        raise
    return True


def heartbeat(sfn: Any, token: str) -> bool:
    """SendTaskHeartbeat; False if the token is no longer waited on."""
    try:
        sfn.send_task_heartbeat(taskToken=token)
    except ClientError as exc:
        if _stale(exc):
            return False
        raise
    return True


def on_heartbeat(sfn: Any, lbvm: Lbvm) -> HeartbeatOutcome:
    """Drive the lifecycle after a heartbeat was stored on ``lbvm`` (the record as written).

    Only a ``ready`` agent counts: a starting, draining or failed agent keeps
    a Pending LBVM pending and lets a Routable one go Unroutable.
    """
    if lbvm.callback_token is None or lbvm.agent_state != READY or lbvm.drain_requested_at is not None:
        return "ignored"
    token = lbvm.callback_token
    match lbvm.callback_kind:
        case "first-heartbeat":
            return "first-heartbeat" if complete(sfn, token, first_heartbeat_output(READY)) else "stale"
        case "heartbeats":
            return "heartbeat" if heartbeat(sfn, token) else "stale"
        case "recovery":
            return "recovered" if complete(sfn, token, recovered_output()) else "stale"
    return "ignored"
