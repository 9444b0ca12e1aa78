"""The proxy's master process: started by this agent, or found running after an agent restart.

The master runs in the foreground (HAProxy ``-W -db``, NGINX ``daemon off``)
as a child of the agent in its own session, so the agent reaps it, and a stop
can take the whole process group (master and workers) at once. Its pid is
also written to a file: an agent that restarts (an upgrade, a crash) adopts
the running proxy instead of restarting it, which would drop connections.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


class ProxyFailed(Exception):
    """The proxy refused a configuration or did not do what it was asked; the message carries its words."""


def read_proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def children_of(pid: int) -> set[int]:
    """Live child processes of ``pid`` (a scan of /proc: a few hundred entries on an LBVM)."""
    found = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = read_proc_stat(int(entry.name))
            if stat is not None and stat[1] == pid and stat[0] != "Z":
                found.add(int(entry.name))
    return found


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


class ProxyProcess:
    def __init__(self, pid: int, popen: subprocess.Popen[bytes] | None, name: str) -> None:
        self.pid = pid
        self._popen = popen
        self.name = name

    @classmethod
    def start(cls, command: Sequence[str], *, name: str, pid_file: Path, log_file: Path) -> ProxyProcess:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as log:
            popen = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() takes master and workers together
                close_fds=True,
            )
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{popen.pid}\n")
        return cls(popen.pid, popen, name)

    @classmethod
    def adopt(cls, pid_file: Path, name: str) -> ProxyProcess | None:
        """The proxy a previous agent started, if it still runs."""
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        process = cls(pid, None, name)
        return process if process.alive() else None

    def alive(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        stat = read_proc_stat(self.pid)
        # A recycled pid would run something else: check it is still our proxy.
        return stat is not None and stat[0] != "Z" and self.name in command_line(self.pid)

    @property
    def exit_code(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def signal(self, signum: int) -> None:
        if not self.alive():
            raise ProxyFailed(f"{self.name} is not running")
        os.kill(self.pid, signum)

    def children(self) -> set[int]:
        return children_of(self.pid)

    def kill(self) -> None:
        """What a VM's power-off does: master and workers end at once, every connection with them."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        if self._popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(5.0)

    def stop(self, timeout: float = 5.0) -> None:
        """Hard stop: SIGTERM to the master (both proxies then stop their workers), SIGKILL to what is left."""
        group = self.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, signal.SIGTERM)
        if not wait_for(lambda: not self.alive(), timeout):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signal.SIGKILL)
        # Workers that outlived their master (it was killed) share its process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
        if self._popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout)
