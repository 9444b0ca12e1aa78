"""The data plane: what the agent loop asks of an LBVM's proxy, whatever the proxy (or none).

``ProxyDataPlane`` runs a real HAProxy or NGINX. Its state directory holds:

    releases/v<version>-<digest>/   one rendered config version (config, certificates 0600, release.json)
    current -> releases/...         what the proxy runs (the proxy is started on current/<config>)
    good    -> releases/...         the last release that validated and reloaded: what a rollback returns to
    next    -> releases/...         a preloaded release: rendered and validated, not served yet
    config.json                     the AgentConfig of ``good``, so a restarted agent can drain or recover

Applying a config renders a release, has the proxy check it, swaps ``current``
with one atomic rename, and hot-reloads. If the check or the reload fails,
``current`` goes back to ``good`` (and the proxy is reloaded onto it), so a
broken config never replaces a working one.

Preloading a config (a staged config change tells every LBVM its new version
before any switches) renders and validates a release without serving it, so
that a version some LBVM cannot run (a certificate it cannot export, a check
its proxy refuses) stops the rollout before anyone runs it, and the switch is
then a reload onto files already checked.

Draining swaps in a variant of ``good`` without the public listeners: the old
workers stop accepting, close idle keep-alive connections, finish what is in
flight, and give up long-lived connections after the config's maximum
lifetime; the new workers keep only the loopback stats endpoint, from which the
falling connection count is read.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Protocol

from agent import release as releases
from agent.certs import CertificateSource, CertificateUnavailable
from agent.model import RenderError, RenderOptions
from agent.proxy.base import ProxyDriver, driver_for
from agent.proxy.process import ProxyFailed, ProxyProcess
from agent.render import MAIN_FILE, ProxyName
from lbcp.models.agent import AgentConfig, BackendHealth, HttpResponses

ApplyStage = Literal["render", "certificates", "validate", "start", "reload", "drain"]
KEEP_RELEASES = 3  # besides current and good: enough to look back, not enough to fill a disk


class ApplyError(Exception):
    """A config version that was not applied; the proxy keeps serving the last good one."""

    def __init__(self, version: int | None, stage: ApplyStage, message: str) -> None:
        self.version = version
        self.stage = stage
        self.message = message
        what = f"config version {version}" if version is not None else "the proxy"
        super().__init__(f"{what} not applied ({stage}): {message}")


@dataclass(frozen=True)
class ApplyResult:
    version: int
    changed: bool  # False: that exact release was already serving
    seconds: float  # from the config in hand to new workers serving it
    reload_seconds: float


class DataPlane(Protocol):
    """What the agent loop drives. ``apply`` never leaves the LBVM worse off than before the call."""

    @property
    def proxy(self) -> str: ...

    @property
    def draining(self) -> bool: ...

    def apply(self, config: AgentConfig) -> ApplyResult: ...

    def preload(self, config: AgentConfig) -> None:
        """Render and validate ``config`` next to what serves, without serving it; ApplyError if it fails."""
        ...

    def applied_version(self) -> int | None: ...

    def serving(self) -> bool: ...

    def ensure_running(self) -> bool:
        """Start the proxy on the last good release if it is not running; True if it had to."""
        ...

    def active_connections(self) -> int: ...

    def backend_health(self) -> list[BackendHealth] | None:
        """Per spec backend, targets passing health checks; None where the proxy cannot tell."""
        ...

    def http_responses(self) -> HttpResponses | None:
        """HTTP answers since this data plane started, across proxy reloads, as of the last
        ``active_connections`` read; None where the proxy cannot count."""
        ...

    def drain(self) -> None: ...

    def undrain(self) -> None: ...

    def stop(self) -> None: ...


class ResponseTally:
    """HTTP answers summed over proxy workers that come and go (each counts from its own start)."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[int, int]] = {}
        self.requests = 0
        self.server_errors = 0

    def add(self, per_worker: dict[int, tuple[int, int]]) -> HttpResponses:
        for pid, (requests, errors) in per_worker.items():
            seen_requests, seen_errors = self._seen.get(pid, (0, 0))
            if requests < seen_requests or errors < seen_errors:
                seen_requests, seen_errors = 0, 0  # a reused pid: another worker, counting from zero
            self.requests += requests - seen_requests
            self.server_errors += errors - seen_errors
            self._seen[pid] = (requests, errors)
        for pid in set(self._seen) - set(per_worker):
            del self._seen[pid]  # exited: what it answered is in the totals
        return HttpResponses(requests=self.requests, server_errors=self.server_errors)


class ProxyDataPlane:
    def __init__(
        self,
        proxy: ProxyName,
        state_dir: Path,
        options: RenderOptions,
        certificates: CertificateSource,
        driver: ProxyDriver | None = None,
    ) -> None:
        self._proxy: ProxyName = proxy
        self.state_dir = state_dir.resolve()
        self.options = options
        self.certificates = certificates
        self.driver = driver or driver_for(proxy, options)
        self.releases_dir = self.state_dir / "releases"
        self._tally = ResponseTally()
        self._responses: HttpResponses | None = None
        self.current_link = self.state_dir / "current"
        self.good_link = self.state_dir / "good"
        self.next_link = self.state_dir / "next"
        self._lock = threading.RLock()
        self.releases_dir.mkdir(parents=True, exist_ok=True)
        self._config = self._load_config()
        # An agent restart must not restart the proxy: adopt the one already running.
        self._process: ProxyProcess | None = self.driver.adopt()
        current = self._target(self.current_link)
        self._draining = current is not None and bool(releases.read_info(current).get("drained"))

    @property
    def proxy(self) -> str:
        return self._proxy

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def process(self) -> ProxyProcess | None:
        return self._process

    # --- apply -------------------------------------------------------------

    def apply(self, config: AgentConfig) -> ApplyResult:
        started = time.monotonic()
        with self._lock:
            if self._draining:
                raise ApplyError(config.config_version, "drain", "draining: a new config waits until the drain ends")
            release = self._prepare(config, self.options)
            if release.directory == self._target(self.good_link) and self.serving():
                return ApplyResult(config.config_version, changed=False, seconds=0.0, reload_seconds=0.0)
            self._write_and_validate(release, config.config_version)
            reload_seconds = self._activate(release.directory, config.config_version)
            self._swap(self.good_link, release.directory)
            self._config = config
            self._save_config(config)
            self._prune()
            return ApplyResult(config.config_version, True, time.monotonic() - started, reload_seconds)

    def preload(self, config: AgentConfig) -> None:
        with self._lock:
            release = self._prepare(config, self.options)
            if release.directory == self._target(self.good_link):
                return  # it serves already
            self._write_and_validate(release, config.config_version)
            self._swap(self.next_link, release.directory)  # kept by _prune until something newer is preloaded

    def _prepare(self, config: AgentConfig, options: RenderOptions) -> releases.PreparedRelease:
        version = config.config_version
        try:
            return releases.prepare(config, self._proxy, options, self.certificates, releases_dir=self.releases_dir)
        except RenderError as exc:
            raise ApplyError(version, "render", str(exc)) from exc
        except CertificateUnavailable as exc:
            raise ApplyError(version, "certificates", str(exc)) from exc

    def _write_and_validate(self, release: releases.PreparedRelease, version: int) -> None:
        if not release.directory.exists():
            releases.write(release)
        try:
            self.driver.validate(release.main_file)
        except ProxyFailed as exc:
            # A release nothing points to goes, so that a retry checks it afresh.
            if release.directory not in self._kept():
                shutil.rmtree(release.directory, ignore_errors=True)
            raise ApplyError(version, "validate", str(exc)) from exc

    def _activate(self, target: Path, version: int | None) -> float:
        """Point ``current`` at ``target`` and make the proxy serve it; on failure, go back. Returns seconds."""
        previous = self._target(self.current_link)
        self._swap(self.current_link, target)
        started = time.monotonic()
        running = self._process is not None and self._process.alive()
        try:
            if running and self._process is not None:
                self.driver.reload(self._process)
            else:
                self._process = self.driver.start(self.current_link / MAIN_FILE[self._proxy])
        except ProxyFailed as exc:
            self._roll_back(previous)
            raise ApplyError(version, "reload" if running else "start", str(exc)) from exc
        return time.monotonic() - started

    def _roll_back(self, previous: Path | None) -> None:
        if previous is None:  # the first release failed: there is nothing to go back to
            with contextlib.suppress(FileNotFoundError):
                self.current_link.unlink()
            return
        if previous == self._target(self.current_link):
            return  # it was a restart of the same release: nothing else to try
        self._swap(self.current_link, previous)
        # HAProxy's master waits after a failed reload until the next one; NGINX
        # still runs the old config, and the extra reload costs it nothing.
        with contextlib.suppress(ProxyFailed):
            if self._process is not None and self._process.alive():
                self.driver.reload(self._process)
            else:
                self._process = self.driver.start(self.current_link / MAIN_FILE[self._proxy])

    # --- state ---------------------------------------------------------------

    def applied_version(self) -> int | None:
        good = self._target(self.good_link)
        if good is None:
            return None
        version = releases.read_info(good).get("version")
        return version if isinstance(version, int) else None

    def serving(self) -> bool:
        return self._process is not None and self._process.alive() and self._target(self.good_link) is not None

    def ensure_running(self) -> bool:
        with self._lock:
            if self._process is not None and self._process.alive():
                return False
            good = self._target(self.good_link)
            if good is None:
                return False
            target = self._target(self.current_link) if self._draining else good
            self._activate(target or good, self.applied_version())
            return True

    def active_connections(self) -> int:
        process = self._process
        if process is None or not process.alive():
            return 0
        try:
            counters = self.driver.frontend_counters(process)
        except ProxyFailed:
            if not process.alive():  # it stopped while we asked: nothing is held
                return 0
            raise
        # The same read carries the HTTP answers: counted here, so a heartbeat round asks the proxy once.
        self._responses = None if counters.http is None else self._tally.add(counters.http)
        return counters.connections

    def backend_health(self) -> list[BackendHealth] | None:
        process = self._process
        if process is None or not process.alive() or self._draining:
            return None  # nothing checks, or the checks no longer matter: out of rotation
        return self.driver.backend_health(process)

    def http_responses(self) -> HttpResponses | None:
        """As of the last ``active_connections`` read (the agent reads both every round, connections first)."""
        process = self._process
        if process is None or not process.alive():
            return None
        return self._responses

    # --- drain ---------------------------------------------------------------

    def drain(self) -> None:
        with self._lock:
            if self._draining:
                return
            config = self._config
            if config is None or not self.serving():
                self._draining = True  # nothing is served, so nothing to drain
                return
            drained = self._prepare(config, replace(self.options, drained=True))
            self._write_and_validate(drained, config.config_version)
            self._activate(drained.directory, config.config_version)
            self._draining = True

    def undrain(self) -> None:
        with self._lock:
            if not self._draining:
                return
            good = self._target(self.good_link)
            if good is not None:
                self._activate(good, self.applied_version())
            self._draining = False

    def stop(self) -> None:
        with self._lock:
            if self._process is not None:
                self._process.stop()
            self._process = None

    def process_ids(self) -> set[int]:
        """The proxy's master and workers (old workers still finishing after a reload included)."""
        process = self._process
        if process is None or not process.alive():
            return set()
        return {process.pid, *process.children()}

    # --- files ---------------------------------------------------------------

    def _target(self, link: Path) -> Path | None:
        try:
            return (link.parent / os.readlink(link)).resolve()
        except OSError:
            return None

    def _swap(self, link: Path, target: Path) -> None:
        # A symlink is replaced by renaming a new one over it: readers see the old
        # target or the new one, never neither.
        temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        os.symlink(os.path.relpath(target, link.parent), temporary)
        os.replace(temporary, link)

    def _load_config(self) -> AgentConfig | None:
        try:
            return AgentConfig.model_validate_json((self.state_dir / "config.json").read_text())
        except (OSError, ValueError):
            return None

    def _save_config(self, config: AgentConfig) -> None:
        path = self.state_dir / "config.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(config.model_dump_json(by_alias=True, indent=2))
        os.replace(temporary, path)

    def _kept(self) -> set[Path | None]:
        return {self._target(self.current_link), self._target(self.good_link), self._target(self.next_link)}

    def _prune(self) -> None:
        keep = self._kept()
        candidates = sorted(
            (path for path in self.releases_dir.iterdir() if path.is_dir() and path.name.startswith("v")),
            key=lambda path: path.stat().st_mtime,
            reverse=True,
        )
        for stale in [path for path in candidates if path not in keep][KEEP_RELEASES:]:
            shutil.rmtree(stale, ignore_errors=True)
