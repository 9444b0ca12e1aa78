"""The whole control plane on one machine: embedded AWS, the table, a seeded account, the API, the agent endpoint."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3

from lbcp.dal.schema import create_table
from lbcp.settings import (
    ENV_AGENT_ARTIFACT_URL,
    ENV_AGENT_ENDPOINT,
    ENV_CONSISTENCY_FUNCTION,
    ENV_DNS_DOMAIN,
    ENV_HOSTED_ZONE_ID,
    ENV_LOCAL_ENTRY_ENDPOINTS,
    ENV_RECONCILE_DEAD_LETTER_QUEUE_URL,
    ENV_RECONCILE_WORK_QUEUE_URL,
    ENV_TABLE_NAME,
)
from lbcp_local.agents import LocalAgents
from lbcp_local.aws import LOCAL_REGION, EmbeddedAws, point_boto3_at
from lbcp_local.backends import LocalBackends
from lbcp_local.entry import ENDPOINTS_FILE, LocalEntry
from lbcp_local.entry_routing import EntryDelays
from lbcp_local.http_adapter import LocalApiServer
from lbcp_local.machines import DataPlaneKind, MachineFactory
from lbcp_local.seed import LocalAccount, example_spec, seed_account
from lbcp_local.ticker import Ticker
from lbcp_local.work_queue import LOCAL_VISIBILITY_TIMEOUT_SECONDS, scheduled_tick

LOCAL_TABLE = "lbcp-local"


LOCAL_DNS_DOMAIN = "lb.lbcp.local"
LOCAL_RECONCILE_DEAD_LETTERS = "lbcp-local-failing-load-balancers"
LOCAL_WORK_QUEUE = "lbcp-local-reconcile-work.fifo"
# The longest wait of a failing load balancer locally (1000 s deployed, with ticks of a minute).
LOCAL_BACKOFF_CAP = timedelta(seconds=30)


def create_work_queue(sqs: Any, name: str = LOCAL_WORK_QUEUE) -> str:
    """The reconciler's FIFO work queue as the stack makes it (a FIFO dead-letter queue after 3 receives)."""
    fifo = {"FifoQueue": "true"}
    dead_letters_name = name.removesuffix(".fifo") + "-dead-letters.fifo"
    dead_letters = sqs.create_queue(QueueName=dead_letters_name, Attributes=fifo)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dead_letters, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attributes = {
        **fifo,
        "VisibilityTimeout": str(LOCAL_VISIBILITY_TIMEOUT_SECONDS),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 3}),
    }
    return str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])


@dataclass
class LocalRuntime:
    host: str = "127.0.0.1"
    api_port: int = int(os.environ.get("LOCAL_API_PORT", "8080"))
    # The agent endpoint (a Lambda function URL in AWS) on a port of its own; 0: any free port.
    agent_port: int = int(os.environ.get("LOCAL_AGENT_PORT", "0"))
    aws_port: int = int(os.environ.get("LOCAL_AWS_PORT", "4566"))
    state_dir: Path | None = Path(".local")
    quiet: bool = False
    # The fleet machinery: state machines, reconciler and scaler ticks, an agent per instance.
    fleet: bool = True
    # What runs on each instance: the real proxy on loopback ports of its own, or a simulated one.
    dataplane: DataPlaneKind = "proxy"
    # With real proxies, a real TCP load balancer stands in for each NLB, acting on registrations this late.
    entry_delays: EntryDelays = field(default_factory=EntryDelays)
    reconcile_seconds: float = 1.0
    scale_seconds: float = 5.0
    # The consistency checker: every 15 minutes in AWS, every 15 seconds here.
    consistency_seconds: float = 15.0
    metrics_period_seconds: int = 10
    account: LocalAccount | None = field(default=None, init=False)
    agents: LocalAgents | None = field(default=None, init=False)
    # Real HTTP servers on loopback that the example spec's backends point at.
    backends: LocalBackends | None = field(default=None, init=False)
    entry: LocalEntry | None = field(default=None, init=False)
    _fleet_dir: Path | None = field(default=None, init=False)
    _aws: EmbeddedAws | None = field(default=None, init=False)
    _api: LocalApiServer | None = field(default=None, init=False)
    _agent_endpoint: LocalApiServer | None = field(default=None, init=False)
    _tickers: list[Ticker] = field(default_factory=list, init=False)

    @property
    def api_url(self) -> str:
        assert self._api is not None, "not started"
        return self._api.url

    @property
    def agent_url(self) -> str:
        """The agent endpoint's base URL: what the reconciler writes into each LBVM's user data."""
        assert self._agent_endpoint is not None, "not started"
        return self._agent_endpoint.url

    @property
    def aws_url(self) -> str:
        assert self._aws is not None, "not started"
        return self._aws.endpoint_url

    def start(self) -> LocalRuntime:
        self._aws = EmbeddedAws(self.host, self.aws_port)
        self._aws.start()
        point_boto3_at(self._aws.endpoint_url)
        os.environ[ENV_TABLE_NAME] = LOCAL_TABLE
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
        os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "lbcp-api")
        # No CloudWatch reads these here: EMF lines would only fill the terminal.
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        create_table(boto3.client("dynamodb"), LOCAL_TABLE)
        self.backends = LocalBackends(("app", "api")).start()
        self.account = seed_account(boto3.client("ec2"), boto3.client("acm"), LOCAL_REGION, boto3.client("acm-pca"))
        if self.state_dir is not None:
            # Written before the API answers: whoever waits for the API may read them at once.
            self.state_dir.mkdir(exist_ok=True)
            (self.state_dir / "account.json").write_text(self.account.to_json() + "\n")
            (self.state_dir / "example-spec.json").write_text(json.dumps(self.example_spec(), indent=2) + "\n")
        if self.fleet:
            self._deploy_fleet()
            self._prepare_fleet_dir()
        self._reset_handler_caches()
        self._api = LocalApiServer(self.host, self.api_port, quiet=self.quiet)
        self._api.start()
        self._agent_endpoint = LocalApiServer.agent_endpoint(self.host, self.agent_port, quiet=self.quiet)
        self._agent_endpoint.start()
        if self.fleet:
            self._start_fleet()
        return self

    def example_spec(self, name: str = "web") -> dict[str, Any]:
        """The seeded example, its backends this runtime's own servers (a request through an LBVM reaches one)."""
        assert self.account is not None and self.backends is not None, "not started"
        backends = self.backends
        targets = {backend: [{"host": "127.0.0.1", "port": backends.port(backend)}] for backend in ("app", "api")}
        return example_spec(self.account, name, targets)

    @property
    def _serves_traffic(self) -> bool:
        return self.fleet and self.dataplane == "proxy"

    def _prepare_fleet_dir(self) -> None:
        # Each LBVM's proxy state and the entry's live here while they run; none outlives the runtime.
        if self.state_dir is not None:
            self._fleet_dir = self.state_dir
            for part in ("lbvms", "entry"):
                shutil.rmtree(self._fleet_dir / part, ignore_errors=True)
        else:
            self._fleet_dir = Path(tempfile.mkdtemp(prefix="lbcp-local-fleet-"))
        (self._fleet_dir / "lbvms").mkdir(parents=True)
        if self._serves_traffic:
            # Read by the API for status.entry.localEndpoints.
            os.environ[ENV_LOCAL_ENTRY_ENDPOINTS] = str(self._fleet_dir / "entry" / ENDPOINTS_FILE)
        else:
            os.environ.pop(ENV_LOCAL_ENTRY_ENDPOINTS, None)

    def _deploy_fleet(self) -> None:
        """What the stack deploys besides the API: hosted zone, state machines, tasks function, profile."""
        from lbcp_local import lambda_bridge
        from lbcp_local.machinery import deploy_consistency_function, deploy_fleet_machinery

        lambda_bridge.install()
        zone = boto3.client("route53").create_hosted_zone(Name=LOCAL_DNS_DOMAIN, CallerReference=LOCAL_DNS_DOMAIN)
        os.environ[ENV_HOSTED_ZONE_ID] = zone["HostedZone"]["Id"].split("/")[-1]
        os.environ[ENV_DNS_DOMAIN] = LOCAL_DNS_DOMAIN
        machinery = deploy_fleet_machinery(
            iam=boto3.client("iam"), lambda_client=boto3.client("lambda"), sfn=boto3.client("stepfunctions")
        )
        os.environ.update(machinery.environment())
        # The API invokes it for dry runs and sweeps; the bridge runs it in this process.
        os.environ[ENV_CONSISTENCY_FUNCTION] = deploy_consistency_function(
            iam=boto3.client("iam"), lambda_client=boto3.client("lambda")
        )
        # Local agents start without downloading anything; the URL only has to be a valid one
        # for the user data the reconciler renders (the stack points it at the agent's S3 asset).
        os.environ[ENV_AGENT_ARTIFACT_URL] = "https://artifacts.lbcp.local/lbcp-agent.tar.gz"
        # The stack's queue of load balancers that keep failing (nothing consumes it; read it with the AWS CLI).
        os.environ[ENV_RECONCILE_DEAD_LETTER_QUEUE_URL] = boto3.client("sqs").create_queue(
            QueueName=LOCAL_RECONCILE_DEAD_LETTERS
        )["QueueUrl"]
        os.environ[ENV_RECONCILE_WORK_QUEUE_URL] = create_work_queue(boto3.client("sqs"))

    def _start_fleet(self) -> None:
        from lbcp.reconcile.backoff import BackoffSettings
        from lbcp.reconcile.wiring import build_reconciler
        from lbcp.settings import settings

        # As the stack sets it: the reconciler writes it into each LBVM's user data, and the agents read it there.
        os.environ[ENV_AGENT_ENDPOINT] = self.agent_url
        self._reset_handler_caches()
        session = boto3.session.Session()
        tick = timedelta(seconds=self.reconcile_seconds)
        # Backoff in local time: from one tick (as deployed) to a cap that a demo can wait for.
        backoff = BackoffSettings(
            base=tick, cap=max(tick, LOCAL_BACKOFF_CAP), dead_letter_after=settings().reconcile_dead_letter_after
        )
        reconciler = build_reconciler(settings(), session.client, tick_period=tick, owner="local", backoff=backoff)

        from lbcp.adapters.metrics import LbvmMetricsReader
        from lbcp.dal.lbvms import LbvmRepository
        from lbcp.dal.repository import LoadBalancerRepository
        from lbcp.scaling.run import run_scaler

        # The scaler as deployed (the agents' samples from the LBVM records), but averaging them in
        # periods of a few seconds rather than minutes (the local agents measure that often), so
        # scaling shows in seconds.
        dynamodb = session.client("dynamodb")
        repository = LoadBalancerRepository(dynamodb, settings().table_name)
        reader = LbvmMetricsReader(
            LbvmRepository(dynamodb, settings().table_name),
            lookback=timedelta(seconds=self.metrics_period_seconds * 5),
            period_seconds=self.metrics_period_seconds,
        )

        def scale() -> None:
            run_scaler(repository, reader, datetime.now(UTC))

        from lbcp.consistency.wiring import build_checker

        # The checker as its schedule runs it, sharing the handler's configuration; its rotation of
        # per-NLB reads follows the local period.
        checker = build_checker(settings(), session.client, run_period=timedelta(seconds=self.consistency_seconds))
        # The schedule's dispatcher, then the queue's event source: the worker handler per shard, as in AWS.
        sqs, queue_url = session.client("sqs"), settings().reconcile_work_queue_url
        assert queue_url is not None, "deployed with the fleet"
        shard_size = settings().reconcile_shard_size

        def reconcile() -> None:
            scheduled_tick(reconciler, sqs, queue_url, shard_size)

        self._tickers = [
            Ticker("reconciler", self.reconcile_seconds, reconcile),
            Ticker("scaler", self.scale_seconds, scale),
            Ticker("consistency", self.consistency_seconds, checker.run),
        ]
        for ticker in self._tickers:
            ticker.start()
        assert self._fleet_dir is not None
        self.agents = LocalAgents(
            publish_seconds=self.metrics_period_seconds / 2,
            ec2=session.client("ec2"),
            region=LOCAL_REGION,
            machines=MachineFactory(self.dataplane, self._fleet_dir / "lbvms"),
            broken_image_ids=frozenset({self.account.broken_image_id}) if self.account else frozenset(),
        )
        self.agents.start()
        if self._serves_traffic:
            self.entry = LocalEntry(
                session.client("elbv2"), self.agents.listen_addresses, self._fleet_dir / "entry", self.entry_delays
            ).start()

    def ticker(self, name: str) -> Ticker:
        """One of the schedules' stand-ins (reconciler, scaler, consistency), e.g. to pause it in a test."""
        return next(ticker for ticker in self._tickers if ticker.name == name)

    def stop(self) -> None:
        if self.entry is not None:
            self.entry.stop()
            self.entry = None
        if self.agents is not None:
            self.agents.stop()
            self.agents = None
        for ticker in self._tickers:
            ticker.stop()
        self._tickers = []
        # The queue lives in this runtime's moto: a reconciler run later in this process must not dispatch to it.
        os.environ.pop(ENV_RECONCILE_WORK_QUEUE_URL, None)
        self._reset_handler_caches()
        if self._agent_endpoint is not None:
            self._agent_endpoint.stop()
            self._agent_endpoint = None
        if self._api is not None:
            self._api.stop()
            self._api = None
        if self._aws is not None:
            self._aws.stop()
            self._aws = None
        if self.backends is not None:
            self.backends.stop()
            self.backends = None
        if self._fleet_dir is not None and self.state_dir is None:
            shutil.rmtree(self._fleet_dir, ignore_errors=True)
        self._fleet_dir = None

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @staticmethod
    def _reset_handler_caches() -> None:
        # The handlers cache their settings and clients per process, as in
        # Lambda; a runtime started in this process must not see stale ones.
        from lbcp.api import app
        from lbcp.settings import settings

        settings.cache_clear()
        app.dependencies.cache_clear()
        from handlers import consistency, reconciler, scaler
        from lbcp.lifecycle import tasks

        reconciler.reconciler.cache_clear()
        reconciler.work_queue.cache_clear()
        scaler.dependencies.cache_clear()
        consistency.checker.cache_clear()
        consistency.sweeper.cache_clear()
        tasks.default_context.cache_clear()
