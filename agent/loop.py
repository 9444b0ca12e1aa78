"""The agent's core loop: report, follow the answer, keep the proxy serving. Nothing in it blocks for long.

Each round (``Agent.step``):

1. keep the proxy up: a proxy that died is restarted on the last good release;
2. read the active connections from the proxy's own stats;
3. measure CPU, memory and connections once per metrics period: the sample
   rides on the heartbeat, and on the next ones until one is answered (the
   newest ``MAX_HEARTBEAT_SAMPLES`` are kept: a long outage loses the oldest);
4. send a heartbeat; on failure back off (exponential, jittered) and report
   again later, otherwise follow the reply:
   - ``drain``: enter drain mode; once the drain deadline passes, stop the
     proxy (whatever still holds a connection is cut: the deadline is the
     control plane's promise to clients, not ours to extend);
   - drain lifted: serve the last good release again;
   - ``desiredConfigVersion`` differs from the applied one: fetch the config
     and apply it. A config that fails is reported (``error``) and retried
     only after a pause or when a newer version arrives; the last good config
     keeps serving meanwhile.

State reported (lbcp.models.agent.AgentState): ``starting`` until a config
serves; ``ready`` while one serves, even when a newer version was refused (the
``error`` says so, and ``appliedConfigVersion`` stays behind
``desiredConfigVersion``): taking a serving LBVM out of rotation because its
next config is bad would turn one bad push into an outage of the fleet;
``failed`` when nothing serves; ``draining``/``drained`` in drain mode.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agent import __version__
from agent.clock import Backoff, Clock, jittered
from agent.control import ControlPlaneClient, ControlPlaneError
from agent.dataplane import ApplyError, DataPlane
from agent.identity import Identity
from agent.metrics import Sampler, collect
from agent.proxy.process import ProxyFailed
from lbcp.models.agent import (
    AGENT_CAPABILITIES,
    MAX_HEARTBEAT_SAMPLES,
    AgentConfig,
    AgentState,
    BackendHealth,
    Heartbeat,
    HeartbeatReply,
    HttpResponses,
    MetricsSample,
    PreloadReport,
)
from lbcp.models.metrics import PUBLISH_PERIOD_SECONDS
from lbcp.models.spec import HEARTBEAT_INTERVAL_SECONDS

log = logging.getLogger("lbcp.agent")

MAX_ERROR_LENGTH = 1024  # Heartbeat.error


@dataclass(frozen=True)
class AgentSettings:
    heartbeat_interval_seconds: float = HEARTBEAT_INTERVAL_SECONDS  # until the control plane says otherwise
    backoff_cap_seconds: float = 60.0
    retry_failed_config_seconds: float = 60.0
    publish_period_seconds: float = PUBLISH_PERIOD_SECONDS
    # Re-apply the serving config this often: the certificate cache expires, a
    # renewed certificate gives a new release, and the proxy reloads onto it.
    refresh_seconds: float = 6 * 3600
    default_drain_seconds: float = 300.0  # a drain reply without a deadline, and no config to say otherwise


class Agent:
    def __init__(
        self,
        identity: Identity,
        control: ControlPlaneClient,
        dataplane: DataPlane,
        *,
        clock: Clock,
        rng: random.Random,
        sampler: Sampler | None = None,
        settings: AgentSettings | None = None,
    ) -> None:
        self.identity = identity
        self.control = control
        self.dataplane = dataplane
        self.clock = clock
        self.rng = rng
        self.sampler = sampler
        self.settings = settings or AgentSettings()
        self.boot_id = f"{rng.getrandbits(64):016x}"
        self.sequence = 0
        self.interval = self.settings.heartbeat_interval_seconds
        self.backoff = Backoff(base=min(self.interval, 5.0), cap=self.settings.backoff_cap_seconds, rng=rng)
        self.error: str | None = None
        self.config: AgentConfig | None = None
        self.last_reply: HeartbeatReply | None = None
        self.drain_deadline: datetime | None = None
        self.connections = 0
        self.backends: list[BackendHealth] | None = None
        self.responses: HttpResponses | None = None
        self._failed: tuple[int, float] | None = None  # (version, monotonic time it failed)
        # Config preloading: the version ready to switch to, or why the one it was told failed.
        self.preload: PreloadReport | None = None
        self._preload_failed: float | None = None  # monotonic time the version in ``preload`` failed
        # Metrics samples not yet in an answered heartbeat, oldest first.
        self.samples: list[MetricsSample] = []
        started = clock.monotonic()
        self._next_publish = started + self.settings.publish_period_seconds
        self._next_refresh = started + self.settings.refresh_seconds

    # --- the loop ------------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool]) -> None:
        log.info("agent %s started (boot %s, proxy %s)", __version__, self.boot_id, self.dataplane.proxy)
        while not should_stop():
            try:
                delay = self.step()
            except Exception:  # the loop outlives any one bad round
                log.exception("unexpected error in the agent loop")
                delay = self.backoff.next_delay()
            if should_stop():
                break
            self.clock.sleep(delay)
        log.info("agent stopping; the proxy keeps serving")

    def step(self) -> float:
        """One round; returns how long to wait before the next."""
        self._supervise()
        self.connections = self._read_connections()
        self.backends = self._read_backend_health()
        self.responses = self._read_responses()
        self._maybe_sample()
        before = (self.state(), self.dataplane.applied_version())
        heartbeat = self.heartbeat()
        try:
            reply = self.control.heartbeat(heartbeat)
        except ControlPlaneError as exc:
            delay = self.backoff.next_delay()
            log.warning("heartbeat %d failed (%s); next try in %.1f s", heartbeat.sequence, exc, delay)
            return delay  # its samples ride on the next one
        self.backoff.reset()
        # Answered: the control plane has its samples (a resent one would be stored only once anyway).
        sent = {sample.period_end for sample in heartbeat.metrics}
        self.samples = [sample for sample in self.samples if sample.period_end not in sent]
        self.last_reply = reply
        self.interval = max(1, reply.heartbeat_interval_seconds)
        self._follow(reply)
        self._maybe_refresh()
        if (self.state(), self.dataplane.applied_version()) != before:
            return 0.0  # tell the control plane at once: a new version serves, or a drain began
        return jittered(self.interval, self.rng)

    # --- reporting -------------------------------------------------------------------

    def heartbeat(self) -> Heartbeat:
        self.sequence += 1
        return Heartbeat(
            lbvm_id=self.identity.lbvm_id,
            instance_id=self.identity.instance_id,
            load_balancer_id=self.identity.load_balancer_id,
            boot_id=self.boot_id,
            sequence=self.sequence,
            sent_at=self.clock.now(),
            state=self.state(),
            active_connections=self.connections,
            applied_config_version=self.dataplane.applied_version(),
            error=self.error[:MAX_ERROR_LENGTH] if self.error else None,
            agent_version=__version__,
            backends=self.backends,
            responses=self.responses,
            capabilities=list(AGENT_CAPABILITIES),
            preload=self.preload,
            metrics=list(self.samples),
        )

    def state(self) -> AgentState:
        if self.dataplane.draining:
            past_deadline = self.drain_deadline is not None and self.clock.now() >= self.drain_deadline
            return "drained" if self.connections == 0 or past_deadline else "draining"
        if self.dataplane.serving():
            return "ready"
        if self.dataplane.applied_version() is None and self.error is None:
            return "starting"
        return "failed"

    def _read_connections(self) -> int:
        try:
            return self.dataplane.active_connections()
        except (ProxyFailed, OSError) as exc:
            log.warning("cannot read active connections: %s", exc)
            return self.connections  # the last known count, rather than a made-up zero

    def _read_backend_health(self) -> list[BackendHealth] | None:
        try:
            return self.dataplane.backend_health()
        except (ProxyFailed, OSError) as exc:
            log.warning("cannot read backend health: %s", exc)
            return None  # not known, rather than stale

    def _read_responses(self) -> HttpResponses | None:
        try:
            return self.dataplane.http_responses()
        except (ProxyFailed, OSError) as exc:
            log.warning("cannot read HTTP answers: %s", exc)
            return self.responses  # cumulative: the last known totals are still true

    def _maybe_sample(self) -> None:
        if self.sampler is None:
            return
        now = self.clock.monotonic()
        if now < self._next_publish:
            return
        period = self.settings.publish_period_seconds
        # After a long stall, sample once and start a fresh period rather than catch up.
        self._next_publish = max(self._next_publish + period, now + period / 2)
        if self.dataplane.draining:
            # Out of rotation: its falling load must not pull its subnet's average
            # down and vote for a scale-in (the heartbeats still carry the count).
            return
        try:
            sample = collect(self.sampler, self.connections, self.clock.now())
        except Exception as exc:  # metrics are worth a warning, never the loop
            log.warning("measuring metrics failed: %s", exc)
            return
        # Heartbeats failing for minutes: the newest few are what the scaler can still use.
        self.samples = [*self.samples, sample][-MAX_HEARTBEAT_SAMPLES:]

    # --- following the control plane -------------------------------------------------

    def _supervise(self) -> None:
        if self.dataplane.draining:
            return  # a drained proxy that stopped has nothing left to serve
        try:
            if self.dataplane.ensure_running():
                log.warning("the proxy had stopped; restarted on config version %s", self.dataplane.applied_version())
        except ApplyError as exc:
            self._failure(exc)

    def _follow(self, reply: HeartbeatReply) -> None:
        if reply.drain:
            self._drain(reply)
            return
        if self.dataplane.draining:
            self._undrain()
        if reply.desired_config_version >= 1 and reply.desired_config_version != self.dataplane.applied_version():
            self._converge(reply.desired_config_version)
        self._preload(reply.preload_config_version)

    def _preload(self, version: int | None) -> None:
        """Have ``version`` rendered and validated, not served: a staged config change asks every LBVM first."""
        if version is None or version == self.dataplane.applied_version():
            self.preload, self._preload_failed = None, None
            return
        report, failed = self.preload, self._preload_failed
        if report is not None and report.version == version:
            recently = (
                failed is not None and self.clock.monotonic() - failed < self.settings.retry_failed_config_seconds
            )
            if report.error is None or recently:
                return  # ready, or the error stands until the retry
        try:
            config = self.control.get_config(self.identity.load_balancer_id, self.identity.lbvm_id, version=version)
            self.dataplane.preload(config)
        except (ControlPlaneError, ApplyError) as exc:
            error = f"config version {version} cannot be preloaded: {exc}"
            self.preload = PreloadReport(version=version, error=error[:MAX_ERROR_LENGTH])
            self._preload_failed = self.clock.monotonic()
            log.error("%s", error)
            return
        self.preload, self._preload_failed = PreloadReport(version=version), None
        log.info("config version %d preloaded: rendered and validated, ready to switch to", version)

    def _converge(self, desired: int) -> None:
        failed = self._failed
        recently = failed is not None and self.clock.monotonic() - failed[1] < self.settings.retry_failed_config_seconds
        if failed is not None and failed[0] == desired and recently:
            return  # this version failed a moment ago; the error stands until the retry
        try:
            config = self.control.get_config(self.identity.load_balancer_id, self.identity.lbvm_id)
        except ControlPlaneError as exc:
            self.error = f"cannot fetch config version {desired}: {exc}"
            log.warning("%s", self.error)
            return
        self._apply(config)

    def _apply(self, config: AgentConfig) -> None:
        try:
            result = self.dataplane.apply(config)
        except ApplyError as exc:
            self._failed = (config.config_version, self.clock.monotonic())
            self._failure(exc)
            return
        self.config = config
        self.error = None
        self._failed = None
        if result.changed:
            seconds, reload_seconds = result.seconds, result.reload_seconds
            log.info("config version %d serves (%.3f s, reload %.3f s)", result.version, seconds, reload_seconds)

    def _failure(self, exc: ApplyError) -> None:
        self.error = str(exc)
        log.error("%s", exc)

    def _drain(self, reply: HeartbeatReply) -> None:
        if reply.drain_deadline is not None:
            deadline = reply.drain_deadline
            # A deadline without a zone is UTC (the control plane writes UTC).
            self.drain_deadline = deadline if deadline.tzinfo else deadline.replace(tzinfo=UTC)
        elif self.drain_deadline is None:
            self.drain_deadline = self.clock.now() + timedelta(seconds=self._drain_seconds())
        if not self.dataplane.draining:
            log.info("draining until %s", self.drain_deadline.isoformat())
            try:
                self.dataplane.drain()
            except ApplyError as exc:
                # Still serving in full: the entry has deregistered us, and the deadline ends it.
                self._failure(exc)
        if self.clock.now() >= self.drain_deadline and self.dataplane.serving():
            log.warning("drain deadline passed with %d connections; stopping the proxy", self.connections)
            self.dataplane.stop()
            self.connections = 0

    def _drain_seconds(self) -> float:
        if self.config is not None:
            return float(self.config.spec.drain.timeout_seconds)
        return self.settings.default_drain_seconds

    def _undrain(self) -> None:
        log.info("drain lifted; serving config version %s again", self.dataplane.applied_version())
        self.drain_deadline = None
        try:
            self.dataplane.undrain()
            self.error = None
        except ApplyError as exc:
            self._failure(exc)

    def _maybe_refresh(self) -> None:
        now = self.clock.monotonic()
        applied = self.dataplane.applied_version()
        if now < self._next_refresh or applied is None or self.dataplane.draining:
            return
        self._next_refresh = now + self.settings.refresh_seconds
        config = self.config
        if config is None:  # a restarted agent that adopted its proxy has not fetched the config yet
            try:
                config = self.control.get_config(self.identity.load_balancer_id, self.identity.lbvm_id)
            except ControlPlaneError as exc:
                log.warning("cannot fetch the config to refresh it: %s", exc)
                return
        if config.config_version == applied:
            self._apply(config)
