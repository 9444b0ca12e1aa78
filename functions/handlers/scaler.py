"""Lambda entry point of the scaler (EventBridge schedule, every minute)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger

from lbcp.adapters.app_metrics import publish
from lbcp.adapters.metrics import LbvmMetricsReader
from lbcp.dal.lbvms import LbvmRepository
from lbcp.dal.repository import LoadBalancerRepository
from lbcp.models.app_metrics import SERVICE_SCALER
from lbcp.scaling.run import run_scaler, scaler_metrics
from lbcp.settings import settings

logger = Logger(service=SERVICE_SCALER)


@lru_cache(maxsize=1)
def dependencies() -> tuple[LoadBalancerRepository, LbvmMetricsReader]:
    # botocore rather than boto3: the same clients at half the cold-start import cost.
    from botocore.config import Config
    from botocore.session import get_session

    config = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=2, read_timeout=10)
    session = get_session()
    current = settings()
    dynamodb = session.create_client("dynamodb", config=config)
    repository = LoadBalancerRepository(dynamodb, current.table_name, timedelta(days=current.event_retention_days))
    # The agents' metrics are on the LBVM records, where their heartbeats leave them.
    return repository, LbvmMetricsReader(LbvmRepository(dynamodb, current.table_name))


@logger.inject_lambda_context(log_event=False, clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    repository, reader = dependencies()
    report = run_scaler(repository, reader, datetime.now(UTC))
    publish(scaler_metrics(report), SERVICE_SCALER)
    for outcome in report.as_dicts():
        if outcome["result"] != "unchanged":
            logger.info("scaler decision", extra=outcome)
    summary = report.summary()
    logger.info("scaler run", extra={**summary, "memoryReads": report.memory_calls})
    return summary
