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
ENV_LIFECYCLE_STATE_MACHINE_ARN = "LBCP_LIFECYCLE_STATE_MACHINE_ARN"
ENV_DRAIN_STATE_MACHINE_ARN = "LBCP_DRAIN_STATE_MACHINE_ARN"
ENV_TASKS_FUNCTION_ARN = "LBCP_TASKS_FUNCTION_ARN"
ENV_HOSTED_ZONE_ID = "LBCP_HOSTED_ZONE_ID"
ENV_DNS_DOMAIN = "LBCP_DNS_DOMAIN"
ENV_INSTANCE_PROFILE_ARN = "LBCP_INSTANCE_PROFILE_ARN"
ENV_AGENT_ARTIFACT_URL = "LBCP_AGENT_ARTIFACT_URL"
# Where LBVM agents call the control plane (the agent endpoint's function URL), written into their user data.
ENV_AGENT_ENDPOINT = "LBCP_AGENT_ENDPOINT"
# The consistency checker's function (the API invokes it for on-demand runs and sweeps).
ENV_CONSISTENCY_FUNCTION = "LBCP_CONSISTENCY_FUNCTION"
# Local runtime only: the file where its entry says where it listens for each load balancer.
ENV_LOCAL_ENTRY_ENDPOINTS = "LBCP_LOCAL_ENTRY_ENDPOINTS"
# The reconciler's dead-letter queue (load balancers that keep failing) and after how many failures in a row.
ENV_RECONCILE_DEAD_LETTER_QUEUE_URL = "LBCP_RECONCILE_DEAD_LETTER_QUEUE_URL"
ENV_RECONCILE_DEAD_LETTER_AFTER = "LBCP_RECONCILE_DEAD_LETTER_AFTER"
# The reconciler's work queue (FIFO): set, the schedule dispatches shards of at most this many load
# balancers to it and workers reconcile them; unset, the schedule reconciles every load balancer itself.
ENV_RECONCILE_WORK_QUEUE_URL = "LBCP_RECONCILE_WORK_QUEUE_URL"
ENV_RECONCILE_SHARD_SIZE = "LBCP_RECONCILE_SHARD_SIZE"
DEFAULT_RECONCILE_SHARD_SIZE = 50
# The automatic GC policy (JSON of ``lbcp.consistency.gc_policy.GcPolicy``); unset: manual GC only.
ENV_GC_POLICY = "LBCP_GC_POLICY"


@dataclass(frozen=True)
class Settings:
    table_name: str
    event_retention_days: int
    idempotency_ttl_seconds: int
    # The fleet machinery (unset in functions that do not launch or route).
    lifecycle_state_machine_arn: str | None = None
    drain_state_machine_arn: str | None = None
    tasks_function_arn: str | None = None
    hosted_zone_id: str | None = None
    dns_domain: str | None = None
    instance_profile_arn: str | None = None
    agent_artifact_url: str | None = None
    # The agent endpoint's URL (ENV_AGENT_ENDPOINT), which the reconciler writes into user data.
    agent_endpoint: str | None = None
    consistency_function: str | None = None
    local_entry_endpoints: str | None = None
    gc_policy: str | None = None
    reconcile_dead_letter_queue_url: str | None = None
    reconcile_dead_letter_after: int = 8
    reconcile_work_queue_url: str | None = None
    reconcile_shard_size: int = DEFAULT_RECONCILE_SHARD_SIZE

    @staticmethod
    def from_env() -> Settings:
        env = os.environ
        return Settings(
            table_name=env.get(ENV_TABLE_NAME, DEFAULT_TABLE_NAME),
            event_retention_days=int(env.get(ENV_EVENT_RETENTION_DAYS, "30")),
            idempotency_ttl_seconds=int(env.get(ENV_IDEMPOTENCY_TTL_SECONDS, "86400")),
            lifecycle_state_machine_arn=env.get(ENV_LIFECYCLE_STATE_MACHINE_ARN) or None,
            drain_state_machine_arn=env.get(ENV_DRAIN_STATE_MACHINE_ARN) or None,
            tasks_function_arn=env.get(ENV_TASKS_FUNCTION_ARN) or None,
            hosted_zone_id=env.get(ENV_HOSTED_ZONE_ID) or None,
            dns_domain=env.get(ENV_DNS_DOMAIN) or None,
            instance_profile_arn=env.get(ENV_INSTANCE_PROFILE_ARN) or None,
            agent_artifact_url=env.get(ENV_AGENT_ARTIFACT_URL) or None,
            agent_endpoint=env.get(ENV_AGENT_ENDPOINT) or None,
            consistency_function=env.get(ENV_CONSISTENCY_FUNCTION) or None,
            local_entry_endpoints=env.get(ENV_LOCAL_ENTRY_ENDPOINTS) or None,
            gc_policy=env.get(ENV_GC_POLICY) or None,
            reconcile_dead_letter_queue_url=env.get(ENV_RECONCILE_DEAD_LETTER_QUEUE_URL) or None,
            reconcile_dead_letter_after=int(env.get(ENV_RECONCILE_DEAD_LETTER_AFTER) or "8"),
            reconcile_work_queue_url=env.get(ENV_RECONCILE_WORK_QUEUE_URL) or None,
            reconcile_shard_size=int(env.get(ENV_RECONCILE_SHARD_SIZE) or DEFAULT_RECONCILE_SHARD_SIZE),
        )


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env()
