"""Lambda entry point of the consistency checker and garbage collector.

Invoked by its schedule (every 15 minutes: a check) and by the API, on demand:

- ``{"action": "check"}`` (or any scheduled event): run the checker, store the report, and let the
  automatic GC act on it when the ``lbcp:gc`` policy says auto.
- ``{"action": "plan"}``: run the checker and return the report and what a sweep would delete.
- ``{"action": "sweep", "resourceType": ..., "resourceId": ..., "actor": ...}``: re-check one
  orphan against the live records and delete it if nothing claims it; audited either way.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger

from lbcp.consistency.run import ConsistencyChecker
from lbcp.consistency.sweep import Sweeper, candidates

logger = Logger(service="lbcp-consistency")


def _client_factory() -> Any:
    from botocore.config import Config
    from botocore.session import get_session

    session = get_session()
    config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=3, read_timeout=10)
    return lambda service: session.create_client(service, config=config)


@lru_cache(maxsize=1)
def checker() -> ConsistencyChecker:
    from lbcp.consistency.wiring import build_checker
    from lbcp.settings import settings

    return build_checker(settings(), _client_factory())


@lru_cache(maxsize=1)
def sweeper() -> Sweeper:
    from lbcp.consistency.wiring import build_sweeper
    from lbcp.settings import settings

    return build_sweeper(settings(), _client_factory())


def handle(event: Any) -> dict[str, Any]:
    action = event.get("action", "check") if isinstance(event, dict) else "check"
    if action == "sweep":
        result = sweeper().sweep(event["resourceType"], event["resourceId"], actor=str(event.get("actor") or "unknown"))
        logger.info("swept", extra=result.to_json())
        return result.to_json()
    report = checker().run(collect=action == "check")  # a dry run never lets the automatic GC act
    logger.info("checked", counts=report.counts, aws_calls=report.aws_calls, load_balancers=report.load_balancers)
    body: dict[str, Any] = {"report": report.model_dump(mode="json", by_alias=True)}
    if action == "plan":
        body["candidates"] = [candidate.to_json() for candidate in candidates(report.findings)]
    elif action != "check":
        raise ValueError(f"unknown action {action!r}: check, plan or sweep")
    return body


@logger.inject_lambda_context(log_event=False, clear_state=True)
def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    return handle(event)
