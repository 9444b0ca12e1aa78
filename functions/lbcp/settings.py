"""Configuration the functions read from their environment (set by the stack)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from lbcp.dal.schema import DEFAULT_TABLE_NAME

# Environment variable names, shared with the CDK stack and the local runtime.
ENV_TABLE_NAME = "LBCP_TABLE_NAME"
ENV_EVENT_RETENTION_DAYS = "LBCP_EVENT_RETENTION_DAYS"
ENV_IDEMPOTENCY_TTL_SECONDS = "LBCP_IDEMPOTENCY_TTL_SECONDS"


@dataclass(frozen=True)
class Settings:
    table_name: str
    event_retention_days: int
    idempotency_ttl_seconds: int

    @staticmethod
    def from_env() -> Settings:
        return Settings(
            table_name=os.environ.get(ENV_TABLE_NAME, DEFAULT_TABLE_NAME),
            event_retention_days=int(os.environ.get(ENV_EVENT_RETENTION_DAYS, "30")),
            idempotency_ttl_seconds=int(os.environ.get(ENV_IDEMPOTENCY_TTL_SECONDS, "86400")),
        )


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env()
