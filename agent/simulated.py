"""A data plane without processes, for the local runtime's simulated fleet and for tests of the loop.

It runs the real model builder on every config (so a spec an LBVM could not
serve fails here as it would there), records the versions it applied, and has
a connection count that the caller sets; while draining, each reading can
take ``drain_step`` connections off, so a simulated drain ends by itself.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from pathlib import Path

from agent.dataplane import ApplyError, ApplyResult
from agent.model import RenderError, RenderOptions, build_model
from agent.platform import Platform
from lbcp.models.agent import AgentConfig, BackendHealth, HttpResponses

# A simulated LBVM has every module: it refuses only what the model refuses.
_SIMULATED_PLATFORM = Platform(
    stream_module=Path("/simulated/ngx_stream_module.so"),
    modsecurity_module=Path("/simulated/ngx_http_modsecurity_module.so"),
    crs_rules_dir=Path("/simulated/crs/rules"),
)


class SimulatedDataPlane:
    def __init__(
        self,
        proxy: str = "haproxy",
        *,
        reject_versions: Collection[int] = (),
        connections: int = 0,
        drain_step: int = 0,
    ) -> None:
        self._proxy = proxy
        self.reject_versions = set(reject_versions)
        self.connections = connections
        self.drain_step = drain_step
        self.applied: list[int] = []  # every version applied, in order
        self.apply_calls: list[int] = []  # every version asked for, unchanged ones included
        self.preload_calls: list[int] = []  # every version it was asked to preload
        self.running = False
        self.drain_count = 0
        self._draining = False
        self._lock = threading.Lock()
        self._options = RenderOptions(run_dir=Path("/simulated/run"), log_dir=Path("/simulated/log"))

    @property
    def proxy(self) -> str:
        return self._proxy

    @property
    def draining(self) -> bool:
        return self._draining

    def set_connections(self, count: int) -> None:
        with self._lock:
            self.connections = max(0, count)

    def apply(self, config: AgentConfig) -> ApplyResult:
        version = config.config_version
        with self._lock:
            self.apply_calls.append(version)
            if self._draining:
                raise ApplyError(version, "drain", "draining: a new config waits until the drain ends")
            self._check(config)
            changed = not self.applied or self.applied[-1] != version or not self.running
            if changed:
                self.applied.append(version)
            self.running = True
            return ApplyResult(version, changed=changed, seconds=0.0, reload_seconds=0.0)

    def preload(self, config: AgentConfig) -> None:
        with self._lock:
            self.preload_calls.append(config.config_version)
            self._check(config)

    def _check(self, config: AgentConfig) -> None:
        """What a real proxy's render and check would refuse: what the model refuses, and ``reject_versions``."""
        version = config.config_version
        try:
            build_model(
                config.spec,
                load_balancer_id=config.load_balancer_id,
                version=version,
                release_dir=Path("/simulated/releases") / f"v{version}",
                options=self._options,
            )
        except RenderError as exc:
            raise ApplyError(version, "render", str(exc)) from exc
        if version in self.reject_versions:
            raise ApplyError(version, "validate", f"simulated: the proxy refuses config version {version}")

    def applied_version(self) -> int | None:
        return self.applied[-1] if self.applied else None

    def serving(self) -> bool:
        return self.running and bool(self.applied)

    def ensure_running(self) -> bool:
        if self.running or not self.applied:
            return False
        self.running = True
        return True

    def backend_health(self) -> list[BackendHealth] | None:
        return None  # nothing is checked in a simulation

    def http_responses(self) -> HttpResponses | None:
        return None  # nothing is answered in a simulation

    def active_connections(self) -> int:
        with self._lock:
            if not self.running:
                return 0
            if self._draining and self.drain_step:
                self.connections = max(0, self.connections - self.drain_step)
            return self.connections

    def drain(self) -> None:
        with self._lock:
            if not self._draining:
                self.drain_count += 1
            self._draining = True

    def undrain(self) -> None:
        with self._lock:
            self._draining = False

    def stop(self) -> None:
        with self._lock:
            self.running = False
            self.connections = 0
