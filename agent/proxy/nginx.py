"""NGINX (open source), driven with signals and its stub_status page.

- Check: ``nginx -t``.
- Start: ``nginx -c <current>/nginx.conf`` with ``daemon off`` in the config.
- Reload: SIGHUP, then wait until the master's current workers (process title
  "nginx: worker process", not "... is shutting down") are all new (success),
  or the error log gains an ``[emerg]`` line (NGINX keeps the old
  configuration running and says why there).
- Connections: stub_status's "Active connections" on the loopback status
  server, minus the status request itself. The counters live in shared memory
  that survives reloads, so old workers' connections are counted too.
- Backend health: not known. NGINX open source has only passive checks
  (``max_fails``), and no page that says which upstream servers they took out.
"""

from __future__ import annotations

import re
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

from agent.model import RenderOptions
from agent.proxy.base import RELOAD_TIMEOUT_SECONDS, FrontendCounters, last_lines, read_log, run_check
from agent.proxy.process import ProxyFailed, ProxyProcess, command_line, wait_for
from agent.render import ProxyName, host_port
from lbcp.models.agent import BackendHealth

START_TIMEOUT_SECONDS = 15.0
CURRENT_WORKER_TITLE = "nginx: worker process"
_ACTIVE = re.compile(rb"Active connections:\s*(\d+)")
# Loopback: never through an HTTP proxy from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def parse_stub_status(body: bytes) -> int:
    match = _ACTIVE.search(body)
    if match is None:
        raise ProxyFailed(f"unexpected stub_status answer: {body[:200]!r}")
    # The status request is itself an active connection.
    return max(0, int(match.group(1)) - 1)


class NginxDriver:
    name: ProxyName = "nginx"

    def __init__(self, options: RenderOptions) -> None:
        self.options = options
        self.binary = options.platform.nginx
        self.error_log = options.log_dir / "nginx-error.log"
        self.log_file = options.log_dir / "nginx.log"  # the master's own stdout and stderr
        self.pid_file = options.run_dir / "nginx.agent-pid"
        self.status_url = f"http://{host_port(options.stats_address, options.stats_port)}/status"

    def prepare_paths(self) -> None:
        for directory in (self.options.run_dir / "nginx", self.options.run_dir / "modsecurity", self.options.log_dir):
            directory.mkdir(parents=True, exist_ok=True)

    def _common(self, config: Path) -> list[str]:
        # -p: relative paths resolve under the run directory; -e: the error log used
        # before the config is read (the compiled-in default may not be writable).
        self.prepare_paths()
        return ["-c", str(config), "-p", f"{self.options.run_dir}/", "-e", str(self.error_log)]

    def validate(self, config: Path) -> None:
        run_check([self.binary, "-t", "-q", *self._common(config)], "nginx -t")

    def start(self, config: Path) -> ProxyProcess:
        process = ProxyProcess.start(
            [self.binary, *self._common(config)], name="nginx", pid_file=self.pid_file, log_file=self.log_file
        )
        if not wait_for(lambda: not process.alive() or self._status() is not None, START_TIMEOUT_SECONDS) or (
            not process.alive()
        ):
            process.stop()
            raise ProxyFailed(f"nginx did not start: {self._log_tail(None)}")
        return process

    def adopt(self) -> ProxyProcess | None:
        return ProxyProcess.adopt(self.pid_file, "nginx")

    def current_workers(self, process: ProxyProcess) -> set[int]:
        return {pid for pid in process.children() if command_line(pid) == CURRENT_WORKER_TITLE}

    def reload(self, process: ProxyProcess) -> None:
        before = self.current_workers(process)
        offset = self._log_size()
        process.signal(signal.SIGHUP)
        outcome: list[str] = []

        def settled() -> bool:
            if not process.alive():
                outcome.append(f"nginx exited during the reload: {self._log_tail(offset)}")
                return True
            if b"[emerg]" in self._log_since(offset):
                outcome.append(f"nginx kept the previous configuration: {self._log_tail(offset)}")
                return True
            now = self.current_workers(process)
            return bool(now) and now.isdisjoint(before)

        if not wait_for(settled, RELOAD_TIMEOUT_SECONDS):
            raise ProxyFailed(f"nginx did not finish reloading within {RELOAD_TIMEOUT_SECONDS:.0f} s")
        if outcome:
            raise ProxyFailed(outcome[0])

    def frontend_counters(self, process: ProxyProcess) -> FrontendCounters:
        body = self._status()
        if body is None:
            raise ProxyFailed(f"nginx status page {self.status_url} does not answer")
        # stub_status counts requests, not their status codes: no HTTP answers to report.
        return FrontendCounters(parse_stub_status(body))

    def backend_health(self, process: ProxyProcess) -> list[BackendHealth] | None:
        return None

    def _status(self) -> bytes | None:
        try:
            with _DIRECT.open(self.status_url, timeout=2) as response:
                body: bytes = response.read()
                return body
        except (urllib.error.URLError, OSError):
            return None

    def _log_size(self) -> int:
        try:
            return self.error_log.stat().st_size
        except OSError:
            return 0

    def _log_since(self, offset: int) -> bytes:
        return read_log(self.error_log, since=offset).encode()

    def _log_tail(self, offset: int | None) -> str:
        time.sleep(0.05)  # let the proxy's last words reach the file
        text = read_log(self.error_log, since=offset)
        if offset is None:
            text += read_log(self.log_file)
        return last_lines(text) or "(nothing in the error log)"
