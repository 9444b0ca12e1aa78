"""The clients and services a request needs, each built on first use (replaceable in tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from lbcp.adapters.account import AccountInspector
from lbcp.dal.repository import LoadBalancerRepository
from lbcp.service import LoadBalancerService
from lbcp.settings import settings

if TYPE_CHECKING:
    from lbcp.adapters.consistency_function import ConsistencyFunction
    from lbcp.api.idempotency import IdempotentCreates
    from lbcp.consistency.store import ConsistencyStore
    from lbcp.heartbeats import HeartbeatService
    from lbcp.inspection import Inspection
    from lbcp.reconcile.ports import ComputePort, EntryPort


class Dependencies:
    """Cold starts pay only for what their first request uses.

    botocore (not boto3, which drags in s3transfer) for every request; EC2 and
    ACM clients only for validating a create or a change; Powertools'
    idempotency layer (which imports boto3) only for a create with an
    Idempotency-Key; Step Functions only for the agent's routes.
    """

    def __init__(self) -> None:
        from botocore.config import Config
        from botocore.session import get_session

        self._config = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=2, read_timeout=5)
        self._session = get_session()
        self.settings = settings()
        self.dynamodb = self._session.create_client("dynamodb", config=self._config)
        self.load_balancers = LoadBalancerRepository(
            self.dynamodb, self.settings.table_name, timedelta(days=self.settings.event_retention_days)
        )
        self._account_inspector: AccountInspector | None = None
        self.service = LoadBalancerService(self.load_balancers, self._inspector, self.clock)
        self._idempotency: IdempotentCreates | None = None
        self._heartbeats: HeartbeatService | None = None
        self._consistency_function: ConsistencyFunction | None = None
        self._inspection: Inspection | None = None
        self._observation: tuple[ComputePort, EntryPort] | None = None
        self._lambda_context: Any = None

    @staticmethod
    def clock() -> datetime:
        return datetime.now(UTC)

    def local_endpoints(self, load_balancer_id: str) -> list[dict[str, Any]] | None:
        """Where the local runtime's entry listens for this load balancer; None in AWS (no such file)."""
        if self.settings.local_entry_endpoints is None:
            return None
        from lbcp.adapters.local_entry import read_local_endpoints

        return read_local_endpoints(self.settings.local_entry_endpoints, load_balancer_id)

    def _inspector(self) -> AccountInspector:
        if self._account_inspector is None:
            from lbcp.adapters.account import AwsAccountInspector

            ec2 = self._session.create_client("ec2", config=self._config)
            acm = self._session.create_client("acm", config=self._config)
            self._account_inspector = AwsAccountInspector(ec2, acm, ec2.meta.region_name)
        return self._account_inspector

    @property
    def heartbeats(self) -> HeartbeatService:
        if self._heartbeats is None:
            from lbcp.dal.lbvms import LbvmRepository
            from lbcp.heartbeats import HeartbeatService
            from lbcp.reconcile.lifecycle_port import StepFunctionsCallbacks

            self._heartbeats = HeartbeatService(
                load_balancers=self.load_balancers,
                lbvms=LbvmRepository(self.dynamodb, self.settings.table_name),
                callbacks=StepFunctionsCallbacks(self._session.create_client("stepfunctions", config=self._config)),
                clock=self.clock,
            )
        return self._heartbeats

    @property
    def inspection(self) -> Inspection:
        if self._inspection is None:
            from lbcp.dal.lbvms import LbvmRepository
            from lbcp.dal.retries import RetryRepository
            from lbcp.inspection import Inspection

            self._inspection = Inspection(
                service=self.service,
                load_balancers=self.load_balancers,
                lbvms=LbvmRepository(self.dynamodb, self.settings.table_name),
                clock=self.clock,
                observers=self._observers,
                retries=RetryRepository(self.dynamodb, self.settings.table_name, self.load_balancers),
            )
        return self._inspection

    def _observers(self) -> tuple[ComputePort, EntryPort]:
        """What the plan preview observes the account with: the reconciler's own adapters, used for reads only."""
        if self._observation is None:
            self._observation = self._build_observers()
        return self._observation

    def _build_observers(self) -> tuple[ComputePort, EntryPort]:
        from lbcp.entry.adapter import EntryAdapter
        from lbcp.reconcile.compute import Ec2Compute

        ec2 = self._session.create_client("ec2", config=self._config)
        entry = EntryAdapter(
            ec2=ec2,
            elbv2=self._session.create_client("elbv2", config=self._config),
            route53=self._session.create_client("route53", config=self._config),
            hosted_zone_id=self.settings.hosted_zone_id,
            dns_domain=self.settings.dns_domain,
        )
        return Ec2Compute(ec2), entry

    @property
    def consistency_store(self) -> ConsistencyStore:
        from lbcp.consistency.store import ConsistencyStore

        return ConsistencyStore(self.dynamodb, self.settings.table_name)

    @property
    def consistency_function(self) -> ConsistencyFunction | None:
        """None where the checker is not deployed (the local runtime without its fleet)."""
        if self._consistency_function is None and self.settings.consistency_function:
            from botocore.config import Config

            from lbcp.adapters.consistency_function import ConsistencyFunction

            # A sweep call re-checks and deletes one resource; a dry run lists the account.
            config = self._config.merge(Config(read_timeout=25, retries={"mode": "standard", "max_attempts": 1}))
            self._consistency_function = ConsistencyFunction(
                self._session.create_client("lambda", config=config), self.settings.consistency_function
            )
        return self._consistency_function

    def register_lambda_context(self, context: Any) -> None:
        self._lambda_context = context
        if self._idempotency is not None:
            self._idempotency.config.register_lambda_context(context)

    @property
    def idempotency(self) -> IdempotentCreates:
        if self._idempotency is None:
            from lbcp.api.idempotency import IdempotentCreates

            self._idempotency = IdempotentCreates(
                self.dynamodb, self.settings.table_name, self.settings.idempotency_ttl_seconds
            )
            if self._lambda_context is not None:
                self._idempotency.config.register_lambda_context(self._lambda_context)
        return self._idempotency


@lru_cache(maxsize=1)
def dependencies() -> Dependencies:
    return Dependencies()
