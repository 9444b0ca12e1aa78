"""HAProxy in master-worker mode, driven through its master CLI.

- Check: ``haproxy -c``.
- Start: ``haproxy -W -db -f <current>/haproxy.cfg -S <run>/master.sock``; the
  master re-executes itself on SIGUSR2 with the same arguments, so a reload
  reads whatever the ``current`` symlink points to by then.
- Reload: SIGUSR2, then ``show proc`` on the master CLI until a new worker is
  the current one (success) or the master counts a failed reload. The new
  worker takes the listening sockets over from the old one (``expose-fd
  listeners``), so no connection is refused during a reload.
- Backend health: the current worker's server rows (``show stat -1 4 -1``).
- Connections: the sum of the public frontends' ``scur`` over every worker,
  old ones included (``@!<pid> show stat``): after a reload or in drain mode,
  old workers still hold connections, and a drain is over only when they are gone.
- HTTP answers: per worker, the public HTTP frontends' ``req_tot`` and
  ``hrsp_5xx`` (each worker counts from its own start; ``ResponseTally`` sums them
  across reloads).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from agent.model import RenderOptions
from agent.proxy.base import RELOAD_TIMEOUT_SECONDS, FrontendCounters, last_lines, read_log, run_check
from agent.proxy.process import ProxyFailed, ProxyProcess, wait_for
from agent.render import ProxyName
from lbcp.models.agent import BackendHealth

START_TIMEOUT_SECONDS = 15.0
PUBLIC_FRONTEND_PREFIX = "l_"  # agent.model.frontend_id
BACKEND_PREFIX = "b_"  # agent.model.backend_id: b_<spec name>_<mode>


@dataclass(frozen=True)
class ProcTable:
    """The master's ``show proc``: its reload counters and its workers' pids."""

    reloads: int
    failed: int
    current: tuple[int, ...]
    old: tuple[int, ...]


_MASTER = re.compile(r"^\d+\s+master\s+(\d+)(?:\s+\[failed:\s*(\d+)\])?")
_WORKER = re.compile(r"^(\d+)\s+worker\b")


def parse_show_proc(text: str) -> ProcTable:
    reloads = failed = 0
    current: list[int] = []
    old: list[int] = []
    section = "master"
    for line in text.splitlines():
        if line.startswith("#"):
            header = line.lstrip("#").strip().lower()
            if not header.startswith("<"):  # "#<PID> <type> ..." is the column header
                section = {"workers": "current", "old workers": "old"}.get(header, header)
            continue
        master = _MASTER.match(line)
        if master:
            reloads, failed = int(master.group(1)), int(master.group(2) or 0)
            continue
        worker = _WORKER.match(line)
        if worker and section in ("current", "old"):
            (current if section == "current" else old).append(int(worker.group(1)))
    return ProcTable(reloads, failed, tuple(current), tuple(old))


def _rows(csv_text: str) -> list[dict[str, str]]:
    """The rows of ``show stat`` CSV output, by column name."""
    header: list[str] = []
    rows = []
    for line in csv_text.splitlines():
        if line.startswith("# "):
            header = line[2:].split(",")
            continue
        if line.strip() and header:
            rows.append(dict(zip(header, line.split(","), strict=False)))
    return rows


def _public_frontends(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [r for r in rows if r.get("svname") == "FRONTEND" and r.get("pxname", "").startswith(PUBLIC_FRONTEND_PREFIX)]


def frontend_sessions(rows: list[dict[str, str]]) -> int:
    """Sum of ``scur`` over the public frontends."""
    return sum(int(row.get("scur") or 0) for row in _public_frontends(rows))


def frontend_http(rows: list[dict[str, str]]) -> tuple[int, int] | None:
    """(requests, 5xx answers) over the public HTTP frontends; None if none is HTTP."""
    http = [row for row in _public_frontends(rows) if row.get("mode") == "http"]
    if not http:
        return None
    return sum(int(r.get("req_tot") or 0) for r in http), sum(int(r.get("hrsp_5xx") or 0) for r in http)


def parse_frontend_sessions(csv_text: str) -> int:
    return frontend_sessions(_rows(csv_text))


def parse_backend_health(csv_text: str) -> list[BackendHealth]:
    """Per spec backend, its servers that pass their checks, from ``show stat`` server rows.

    A server is healthy while its status is ``UP`` (``UP 1/3``: failing, not yet down) or
    ``no check`` (the proxy sends it traffic unchecked). A spec backend that both L7 and
    L4 listeners use has one HAProxy backend per mode: the fewer healthy counts.
    """
    counts: dict[tuple[str, str], list[int]] = {}
    for row in _rows(csv_text):
        proxy, server = row.get("pxname", ""), row.get("svname", "")
        if not proxy.startswith(BACKEND_PREFIX) or server in ("FRONTEND", "BACKEND"):
            continue
        name, _, mode = proxy.removeprefix(BACKEND_PREFIX).rpartition("_")
        status = row.get("status", "")
        passing = status.startswith("UP") or status == "no check"
        tally = counts.setdefault((name, mode), [0, 0])
        tally[0] += int(passing)
        tally[1] += 1
    by_name: dict[str, BackendHealth] = {}
    for (name, _), (healthy, targets) in sorted(counts.items()):
        seen = by_name.get(name)
        if seen is None or healthy < seen.healthy_targets:
            by_name[name] = BackendHealth(name=name, healthy_targets=healthy, targets=targets)
    return [by_name[name] for name in sorted(by_name)]


class MasterCli:
    def __init__(self, path: Path, timeout: float = 2.0) -> None:
        self.path = path
        self.timeout = timeout

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            sock.connect(str(self.path))
            sock.sendall(line.encode() + b"\n")
            # The master CLI answers once the request is complete: half-close to say so.
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")


class HaproxyDriver:
    name: ProxyName = "haproxy"

    def __init__(self, options: RenderOptions) -> None:
        self.options = options
        self.binary = options.platform.haproxy
        self.cli = MasterCli(options.run_dir / "master.sock")
        self.log_file = options.log_dir / "haproxy.log"
        self.pid_file = options.run_dir / "haproxy.agent-pid"
        self.state_file = options.run_dir / "haproxy-server-state"  # the config's server-state-file

    def validate(self, config: Path) -> None:
        # Not -q: it silences the alert that says what is wrong, too.
        run_check([self.binary, "-c", "-f", str(config)], "haproxy -c")

    def prepare_paths(self) -> None:
        for directory in (self.options.run_dir, self.options.log_dir):
            directory.mkdir(parents=True, exist_ok=True)
        if not self.state_file.exists():
            self.state_file.write_text("1\n")  # version 1, no servers yet: no warning at start

    def start(self, config: Path) -> ProxyProcess:
        self.prepare_paths()
        command = [self.binary, "-W", "-db", "-f", str(config), "-S", f"{self.cli.path},mode,600"]
        process = ProxyProcess.start(command, name="haproxy", pid_file=self.pid_file, log_file=self.log_file)

        def up_or_gone() -> bool:
            table = self._table_or_none()
            return not process.alive() or (table is not None and bool(table.current))

        if not wait_for(up_or_gone, START_TIMEOUT_SECONDS) or not process.alive():
            process.stop()
            raise ProxyFailed(f"haproxy did not start: {self._log_tail()}")
        return process

    def adopt(self) -> ProxyProcess | None:
        return ProxyProcess.adopt(self.pid_file, "haproxy")

    def reload(self, process: ProxyProcess) -> None:
        before = self.table()
        self._save_server_state(before)
        process.signal(signal.SIGUSR2)
        outcome: list[str] = []

        def settled() -> bool:
            if not process.alive():
                outcome.append(f"haproxy exited during the reload: {self._log_tail()}")
                return True
            now = self._table_or_none()
            if now is None:  # the master is re-executing itself: its CLI is briefly away
                return False
            if now.failed > before.failed:
                outcome.append(f"haproxy kept the previous configuration: {self._log_tail()}")
                return True
            return bool(now.current) and now.current[0] not in before.current

        if not wait_for(settled, RELOAD_TIMEOUT_SECONDS):
            raise ProxyFailed(f"haproxy did not finish reloading within {RELOAD_TIMEOUT_SECONDS:.0f} s")
        if outcome:
            raise ProxyFailed(outcome[0])

    def frontend_counters(self, process: ProxyProcess) -> FrontendCounters:
        table = self.table()
        connections = 0
        http: dict[int, tuple[int, int]] = {}
        for pid in (*table.current, *table.old):
            # An old worker may exit between "show proc" and its turn: it then holds nothing, and what it
            # answered was counted at the previous read.
            with contextlib.suppress(OSError):
                rows = _rows(self.cli.command(f"@!{pid} show stat -1 1 -1"))
                connections += frontend_sessions(rows)
                answers = frontend_http(rows)
                if answers is not None:
                    http[pid] = answers
        # No HTTP listener at all: None. No worker for a moment (a reload): nothing new, the totals stand.
        return FrontendCounters(connections, http if http or not table.current else None)

    def backend_health(self, process: ProxyProcess) -> list[BackendHealth] | None:
        # The current worker only: old ones run the previous config's checks, if any.
        table = self.table()
        if not table.current:
            return None
        try:
            return parse_backend_health(self.cli.command(f"@!{table.current[0]} show stat -1 4 -1"))
        except OSError as exc:
            raise ProxyFailed(f"haproxy worker {table.current[0]} does not answer show stat: {exc}") from exc

    def _save_server_state(self, table: ProcTable) -> None:
        # Without it, a new worker would start with every server up, and send
        # traffic to a dead target until its checks fail again.
        if not table.current:
            return
        try:
            state = self.cli.command(f"@!{table.current[0]} show servers state")
        except OSError:
            return  # best effort: a reload without the state is still a reload
        if state.startswith("1\n"):
            temporary = self.state_file.with_suffix(".tmp")
            temporary.write_text(state)
            os.replace(temporary, self.state_file)

    def table(self) -> ProcTable:
        try:
            return parse_show_proc(self.cli.command("show proc"))
        except OSError as exc:
            raise ProxyFailed(f"haproxy master CLI {self.cli.path} does not answer: {exc}") from exc

    def _table_or_none(self) -> ProcTable | None:
        try:
            return parse_show_proc(self.cli.command("show proc"))
        except OSError:
            return None

    def _log_tail(self) -> str:
        time.sleep(0.05)  # let the proxy's last words reach the file
        return last_lines(read_log(self.log_file)) or "(nothing in the log)"
