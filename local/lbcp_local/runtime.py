"""The whole control plane on one machine: embedded AWS, the table, a seeded account, the API."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import boto3

from lbcp.dal.schema import create_table
from lbcp.settings import ENV_TABLE_NAME
from lbcp_local.aws import LOCAL_REGION, EmbeddedAws, point_boto3_at
from lbcp_local.http_adapter import LocalApiServer
from lbcp_local.seed import LocalAccount, example_spec, seed_account

LOCAL_TABLE = "lbcp-local"


@dataclass
class LocalRuntime:
    host: str = "127.0.0.1"
    api_port: int = int(os.environ.get("LOCAL_API_PORT", "8080"))
    aws_port: int = int(os.environ.get("LOCAL_AWS_PORT", "4566"))
    state_dir: Path | None = Path(".local")
    quiet: bool = False
    account: LocalAccount | None = field(default=None, init=False)
    _aws: EmbeddedAws | None = field(default=None, init=False)
    _api: LocalApiServer | None = field(default=None, init=False)

    @property
    def api_url(self) -> str:
        assert self._api is not None, "not started"
        return self._api.url

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
        create_table(boto3.client("dynamodb"), LOCAL_TABLE)
        self.account = seed_account(boto3.client("ec2"), boto3.client("acm"), LOCAL_REGION, boto3.client("acm-pca"))
        self._reset_handler_caches()
        self._api = LocalApiServer(self.host, self.api_port, quiet=self.quiet)
        self._api.start()
        if self.state_dir is not None:
            self.state_dir.mkdir(exist_ok=True)
            (self.state_dir / "account.json").write_text(self.account.to_json() + "\n")
            (self.state_dir / "example-spec.json").write_text(json.dumps(example_spec(self.account), indent=2) + "\n")
        return self

    def stop(self) -> None:
        if self._api is not None:
            self._api.stop()
            self._api = None
        if self._aws is not None:
            self._aws.stop()
            self._aws = None

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
