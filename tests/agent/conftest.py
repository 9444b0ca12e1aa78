"""Fixtures for the agent's tests: the real proxies, local backends, data planes that always stop.

Tests marked ``proxies`` run HAProxy and NGINX for real. ``make test`` installs
them (mk/agent.mk), so a missing binary fails those tests loudly rather than
skipping them: a green run must mean the configs were checked by the proxies.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.certs import CertificateSource, StaticCertificateSource
from agent.dataplane import ProxyDataPlane
from agent.model import RenderOptions
from agent.platform import Platform
from agent.render import ProxyName
from lbcp_local.ports import free_port
from tests.agent.helpers import CERT_ARN, OTHER_CERT_ARN, Backends, certificate

INSTALL_HINT = "run `make proxies` (mk/agent.mk installs haproxy, nginx, ModSecurity and the CRS)"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "proxies: runs the real HAProxy and NGINX binaries (installed by make proxies)")


@pytest.fixture(scope="session")
def platform() -> Platform:
    """The machine's proxies; fails (never skips) when the Makefile's installation is missing."""
    found = Platform.detect()
    missing = [
        what
        for what, present in (
            ("haproxy", shutil.which(found.haproxy) is not None),
            ("nginx", shutil.which(found.nginx) is not None),
            ("nginx stream module", found.stream_module is not None),
            ("nginx ModSecurity module", found.modsecurity_module is not None),
            ("OWASP Core Rule Set", found.crs_rules_dir is not None),
        )
        if not present
    ]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: {INSTALL_HINT}", pytrace=False)
    return found


@pytest.fixture(autouse=True)
def _proxies_installed(request: pytest.FixtureRequest) -> None:
    """Every test marked ``proxies`` fails up front, with the way out, when the proxies are missing."""
    if request.node.get_closest_marker("proxies") is not None:
        request.getfixturevalue("platform")


@pytest.fixture
def backends() -> Iterator[Backends]:
    made = Backends()
    yield made
    made.close()


@pytest.fixture(scope="session")
def certificates() -> CertificateSource:
    return StaticCertificateSource({CERT_ARN: certificate("lb.test"), OTHER_CERT_ARN: certificate("other.test")})


DataPlaneFactory = Callable[..., ProxyDataPlane]


@pytest.fixture
def make_dataplane(tmp_path: Path, platform: Platform, certificates: CertificateSource) -> Iterator[DataPlaneFactory]:
    """Data planes on loopback in this test's directory; every proxy they start dies at teardown.

    Run directories (the proxies' sockets) are short ones of their own: HAProxy takes
    socket paths of at most 97 characters, and a test's directory can be longer.
    """
    made: list[ProxyDataPlane] = []
    run_dirs: list[Path] = []

    def make(
        proxy: ProxyName, *, name: str = "lbvm", source: CertificateSource | None = None, **overrides: Any
    ) -> ProxyDataPlane:
        root = tmp_path / f"{name}-{proxy}"
        run_dirs.append(Path(tempfile.mkdtemp(prefix="lbcp-run-")))
        options: dict[str, Any] = {
            "run_dir": run_dirs[-1],
            "log_dir": root / "log",
            "bind_address": "127.0.0.1",
            "stats_port": free_port(),
            "platform": platform,
            "proxy_user": "root" if os.geteuid() == 0 else None,  # workers must reach the test's temp dirs
            **overrides,
        }
        dataplane = ProxyDataPlane(proxy, root / "state", RenderOptions(**options), source or certificates)
        made.append(dataplane)
        return dataplane

    yield make
    for dataplane in made:
        process = dataplane.process
        with contextlib.suppress(Exception):
            dataplane.stop()
        # Belt and braces: the proxy's whole process group goes, even if stop() failed.
        if process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
    for run_dir in run_dirs:
        shutil.rmtree(run_dir, ignore_errors=True)
