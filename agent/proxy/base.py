"""What the data plane needs from a proxy: check a config, start, reload, count connections."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agent.model import RenderOptions
from agent.proxy.process import ProxyFailed, ProxyProcess
from agent.render import ProxyName
from lbcp.models.agent import BackendHealth

VALIDATE_TIMEOUT_SECONDS = 60.0
RELOAD_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class FrontendCounters:
    """What the public listeners hold and have answered, as one read of the proxy gives it."""

    connections: int  # client connections now, every worker
    # Per worker pid, (HTTP requests, 5xx answers) it counted since it started; None: the proxy cannot tell.
    http: dict[int, tuple[int, int]] | None = None


class ProxyDriver(Protocol):
    name: ProxyName

    def prepare_paths(self) -> None:
        """Create the directories and files a rendered config has the proxy write to or read at start."""
        ...

    def validate(self, config: Path) -> None:
        """Let the proxy itself check a rendered config; ProxyFailed with its words if it refuses."""
        ...

    def start(self, config: Path) -> ProxyProcess:
        """Start the master on ``config`` and return once it serves; ProxyFailed if it does not."""
        ...

    def reload(self, process: ProxyProcess) -> None:
        """Hot reload from the config path the master was started with; returns once new workers serve."""
        ...

    def frontend_counters(self, process: ProxyProcess) -> FrontendCounters:
        """The public listeners' connections and HTTP answers, old workers (reload, drain) included (one read)."""
        ...

    def adopt(self) -> ProxyProcess | None:
        """The master a previous agent started, if it still runs."""
        ...

    def backend_health(self, process: ProxyProcess) -> list[BackendHealth] | None:
        """Per spec backend, targets passing active health checks; None if the proxy cannot tell."""
        ...


def run_check(command: Sequence[str], what: str) -> None:
    try:
        result = subprocess.run(
            list(command), capture_output=True, text=True, timeout=VALIDATE_TIMEOUT_SECONDS, check=False
        )
    except FileNotFoundError as exc:
        raise ProxyFailed(f"{what}: {command[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise ProxyFailed(f"{what}: no answer within {VALIDATE_TIMEOUT_SECONDS:.0f} s") from exc
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise ProxyFailed(f"{what} refused the configuration: {last_lines(output)}")


def last_lines(text: str, count: int = 6, limit: int = 900) -> str:
    """The end of a proxy's output, which is where it says what is wrong (kept short for a heartbeat)."""
    lines = [line for line in text.splitlines() if line.strip()]
    tail = " | ".join(lines[-count:])
    return tail if len(tail) <= limit else "..." + tail[-limit:]


def read_log(path: Path, since: int | None = None, max_bytes: int = 65536) -> str:
    """A log file from byte ``since`` (default: its last ``max_bytes``), never more than ``max_bytes``."""
    try:
        with path.open("rb") as log:
            size = log.seek(0, 2)
            start = size - max_bytes if since is None else since
            log.seek(max(start, size - max_bytes, 0))
            return log.read().decode(errors="replace")
    except OSError:
        return ""


def driver_for(name: ProxyName, options: RenderOptions) -> ProxyDriver:
    from agent.proxy.haproxy import HaproxyDriver
    from agent.proxy.nginx import NginxDriver

    if name == "haproxy":
        return HaproxyDriver(options)
    return NginxDriver(options)
