"""``Idempotency-Key`` on create, with Powertools' idempotency utility on our table.

The key is scoped to the caller (two callers may pick the same key) and bound
to the request body: a repeat with the same body returns the first result, a
repeat with a different body is refused (422), and a repeat while the first is
still running is refused (409), as the IETF Idempotency-Key draft describes.
Failed creates leave no record, so fixing the request and retrying works.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

from lbcp.api.problems import ApiProblem
from lbcp.dal.schema import PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE
from lbcp.errors import FieldError

IDEMPOTENCY_PARTITION = "IDEMPOTENCY#create-load-balancer"
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces
_REPLAYED = "__idempotentReplay"


def check_key(key: str) -> str:
    if not _KEY_RE.fullmatch(key):
        raise ApiProblem(
            "invalid-request",
            "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces",
            [FieldError(("Idempotency-Key",), "1 to 255 printable ASCII characters", "invalid", "header")],
        )
    return key


def _mark_replay(response: Any, idempotent_data: DataRecord) -> Any:
    return {**response, _REPLAYED: True} if isinstance(response, dict) else response


class IdempotentCreates:
    def __init__(self, dynamodb_client: Any, table_name: str, ttl_seconds: int) -> None:
        self._persistence = DynamoDBPersistenceLayer(
            table_name=table_name,
            key_attr=PARTITION_KEY,
            sort_key_attr=SORT_KEY,
            static_pk_value=IDEMPOTENCY_PARTITION,
            expiry_attr=TTL_ATTRIBUTE,
            boto3_client=dynamodb_client,
        )
        self.config = IdempotencyConfig(
            event_key_jmespath="[principal, key]",
            payload_validation_jmespath="body",
            expires_after_seconds=ttl_seconds,
            raise_on_no_idempotency_key=True,
            response_hook=_mark_replay,
        )

    def run(
        self, *, key: str, principal: str | None, body: dict[str, Any], create: Callable[[], dict[str, Any]]
    ) -> tuple[dict[str, Any], bool]:
        """Run ``create`` at most once per (principal, key); returns (result, replayed)."""

        @idempotent_function(data_keyword_argument="request", persistence_store=self._persistence, config=self.config)
        def create_load_balancer(request: dict[str, Any]) -> dict[str, Any]:
            return create()

        try:
            result = create_load_balancer(request={"principal": principal or "anonymous", "key": key, "body": body})
        except IdempotencyAlreadyInProgressError:
            raise ApiProblem(
                "request-in-progress",
                "the first request with this Idempotency-Key has not finished; retry in a moment",
                [FieldError(("Idempotency-Key",), "in use by a request in progress", "in_progress", "header")],
                headers={"Retry-After": "1"},
            ) from None
        except IdempotencyValidationError:
            raise ApiProblem(
                "idempotency-key-reused",
                "this Idempotency-Key was already used with a different request body; use a new key",
                [FieldError(("Idempotency-Key",), "already used with a different body", "reused", "header")],
            ) from None
        replayed = bool(result.pop(_REPLAYED, False))
        return result, replayed
