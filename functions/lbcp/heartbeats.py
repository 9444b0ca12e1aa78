"""What the control plane does with an agent's heartbeat and config request.

A heartbeat does three things:

1. it proves the agent alive to its LBVM's lifecycle execution: the first
   healthy heartbeat completes the ``first-heartbeat`` callback (the LBVM gets
   registered), later ones reset the ``heartbeats`` callback's heartbeat
   clock (missing them past the unhealthy timeout takes the LBVM out of
   rotation), and one after an outage completes the ``recovery`` callback;
2. it stores what the agent reports, when something changed or at most every
   ``HEARTBEAT_PERSIST_INTERVAL`` otherwise (DynamoDB writes are the cost of heartbeats;
   liveness itself is tracked by Step Functions, not by these writes). A metrics
   sample not seen before (one a minute) is such a change: it joins the last
   ``RECENT_METRICS_KEPT`` on the record, where the scaler reads them, and is
   written as CloudWatch metrics in embedded metric format (an EMF log line,
   dimension ``LoadBalancerId``: ``lbcp.models.metrics``) once it is stored. A
   sample repeated by a retried heartbeat (same ``periodEnd``) is neither
   stored nor emitted again;
3. its reply tells the agent which config version to run and whether to drain.
   That version is the LBVM's own: during a staged config change the canary
   LBVMs are told the new one and the rest the previous one, and after a
   rollback everyone the previous one (``told_version``). Each version's spec
   is stored immutably, so the config route can serve an older one.

Only a ready agent counts as alive: one whose proxy failed or is still
starting does not reset the clock, so it is taken out of rotation too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from lbcp.adapters.app_metrics import COUNT, PERCENT, Datapoint, MetricSet, publish
from lbcp.dal.lbvms import LbvmRepository, epoch_milliseconds
from lbcp.dal.repository import LoadBalancerRepository
from lbcp.lifecycle import messages
from lbcp.models.agent import AgentConfig, Heartbeat, HeartbeatReply, MetricsSample, backend_health_text
from lbcp.models.config_rollout import preload_config_version, served_config_version
from lbcp.models.lbvm import HEARTBEAT_PERSIST_INTERVAL, RECENT_METRICS_KEPT, Lbvm, LbvmConflict
from lbcp.models.metrics import (
    DIMENSION_LOAD_BALANCER,
    METRIC_ACTIVE_CONNECTIONS,
    METRIC_CPU,
    METRIC_MEMORY,
)
from lbcp.models.resource import LoadBalancerRecord

# Samples further than this from the control plane's clock (either way) are dropped: too old to matter
# to the scaler, and EMF refuses timestamps more than 2 hours ahead (or 14 days back).
SAMPLE_ACCEPTED_SKEW = timedelta(hours=1)

# EC2 instance profiles sign as the role session named after the instance.
_INSTANCE_SESSION = re.compile(r"^arn:aws[a-z-]*:sts::\d{12}:assumed-role/[\w+=,.@-]+/(i-[0-9a-f]{8,17})$")


class Forbidden(Exception):
    pass


class UnknownLbvm(Exception):
    pass


class ConfigVersionGone(Exception):
    """The version an LBVM is told was never stored (a load balancer from before config versions were kept)."""

    def __init__(self, load_balancer_id: str, version: int) -> None:
        super().__init__(f"config version {version} of {load_balancer_id} is not stored")
        self.version = version


def told_version(record: LoadBalancerRecord, lbvm: Lbvm) -> int:
    """The config version this LBVM runs: the planner's decision (``served_config_version``).

    Read from the status document the record already carries, so a heartbeat costs no extra read;
    the planner decides it (``lbcp.reconcile.plan.config_rollout``).
    """
    status = record.status
    return served_config_version(
        status.config,
        status.config_rollout,
        record.generation,
        lbvm.lbvm_id,
        template_rollout=status.rollout,
        launch_template=lbvm.launch_template,
        applied=lbvm.applied_config_version,
    )


class VersionNotOffered(Exception):
    """An agent asked for a config version it is neither told to run nor to preload."""

    def __init__(self, lbvm_id: str, version: int, told: int) -> None:
        super().__init__(f"{lbvm_id} is told to run config version {told}, not {version}, and to preload no other")
        self.version = version


def accepted_samples(samples: Iterable[MetricsSample], now: datetime) -> list[MetricsSample]:
    """The samples as stored (``MetricsSample.stored``), less those too far from ``now`` to keep."""
    stored = (sample.stored() for sample in samples)
    return [sample for sample in stored if abs(sample.period_end - now) <= SAMPLE_ACCEPTED_SKEW]


def merge_samples(
    kept: Sequence[MetricsSample], arrived: Iterable[MetricsSample], limit: int = RECENT_METRICS_KEPT
) -> tuple[MetricsSample, ...]:
    """The newest ``limit`` of both, oldest first, one per ``periodEnd`` (the kept one wins: idempotent)."""
    by_end = {epoch_milliseconds(s.period_end): s for s in arrived}
    by_end.update({epoch_milliseconds(s.period_end): s for s in kept})
    return tuple(by_end[end] for end in sorted(by_end)[-limit:])


def sample_metrics(load_balancer_id: str, samples: Iterable[MetricsSample]) -> list[MetricSet]:
    """Each sample as one EMF line at its period's end, dimensioned by load balancer only."""
    return [
        MetricSet(
            (
                Datapoint(METRIC_CPU, PERCENT, sample.cpu),
                Datapoint(METRIC_MEMORY, PERCENT, sample.memory),
                Datapoint(METRIC_ACTIVE_CONNECTIONS, COUNT, sample.active_connections),
            ),
            ((DIMENSION_LOAD_BALANCER, load_balancer_id),),
            timestamp=sample.period_end,
        )
        for sample in samples
    ]


def publish_sample_metrics(sets: Sequence[MetricSet]) -> None:
    publish(sets, service=None)  # no service dimension: one series per load balancer and metric


class Callbacks(Protocol):
    def complete(self, token: str, output: dict[str, object]) -> bool: ...

    def heartbeat(self, token: str) -> bool: ...


def instance_of_caller(principal_arn: str | None) -> str:
    """The instance id of the calling EC2 instance profile session, or Forbidden."""
    match = _INSTANCE_SESSION.fullmatch(principal_arn or "")
    if match is None:
        raise Forbidden("only an LBVM's own instance role may call the agent API")
    return match.group(1)


def _told_to_drain(lbvm: Lbvm, now: datetime) -> bool:
    """Whether the agent should stop accepting new connections now.

    Not at the drain request (the LBVM is still in the entry then) and not at
    its deregistration either: the entry keeps sending some new connections for
    a while after that, and an LBVM that stopped listening would refuse them.
    """
    if lbvm.state == "Terminated":
        return True
    if lbvm.state != "Draining":
        return False
    return lbvm.accepting_until is None or now >= lbvm.accepting_until


@dataclass
class HeartbeatService:
    load_balancers: LoadBalancerRepository
    lbvms: LbvmRepository
    callbacks: Callbacks
    clock: Callable[[], datetime]
    # Where newly stored metrics samples go (EMF lines on stdout; tests replace it).
    emit_metrics: Callable[[Sequence[MetricSet]], None] = field(default=publish_sample_metrics)

    def config(
        self, principal_arn: str | None, load_balancer_id: str, lbvm_id: str, version: int | None = None
    ) -> AgentConfig:
        """The config version this LBVM is told to run (see ``told_version``), or ``version`` when it is the
        one it is told to run or to preload, from its immutable copy; VersionNotOffered for any other."""
        record, lbvm = self._lookup(load_balancer_id, lbvm_id)
        self._authorize(principal_arn, lbvm, claimed_instance=None)
        told = told_version(record, lbvm)
        offered = {told, preload_config_version(record.status.config_rollout, told) if lbvm.preloads else None}
        if version is not None and version not in offered:
            raise VersionNotOffered(lbvm.lbvm_id, version, told)
        version = told if version is None else version
        spec = record.spec if version == record.generation else self.load_balancers.get_config(record.id, version)
        if spec is None:
            raise ConfigVersionGone(record.id, version)
        return AgentConfig(load_balancer_id=record.id, lbvm_id=lbvm.lbvm_id, config_version=version, spec=spec)

    def heartbeat(self, principal_arn: str | None, beat: Heartbeat) -> HeartbeatReply:
        record, lbvm = self._lookup(beat.load_balancer_id, beat.lbvm_id, consistent=False)
        self._authorize(principal_arn, lbvm, claimed_instance=beat.instance_id)
        now = self.clock()
        if beat.state == "ready":
            self._prove_alive(lbvm, beat)
        before = lbvm
        lbvm = self._persist(lbvm, beat, now)
        if beat.error and lbvm is not before and (before.agent_error is None or beat.state != before.agent_state):
            # Said when it appears (or the agent's state changes with it), not at every retry: a proxy's
            # messages carry pids and times, so the text of one failure differs from beat to beat.
            lifecycle = record.spec.lifecycle
            self.load_balancers.append_event(
                record.id,
                messages.agent_error(
                    lbvm,
                    now,
                    beat.state,
                    beat.error,
                    pending_timeout_seconds=lifecycle.pending_timeout_seconds,
                    unhealthy_timeout_seconds=lifecycle.unhealthy_timeout_seconds,
                ),
            )
        if lbvm is not before:
            for change in messages.backend_changes(before, lbvm, now):
                self.load_balancers.append_event(record.id, change)
        draining = _told_to_drain(lbvm, now)
        told = told_version(record, lbvm)
        return HeartbeatReply(
            desired_config_version=told,
            drain=draining,
            drain_deadline=lbvm.drain_deadline,
            heartbeat_interval_seconds=record.spec.lifecycle.heartbeat_interval_seconds,
            # Only to an agent that announced it: older agents refuse a reply field they do not know.
            preload_config_version=(
                preload_config_version(record.status.config_rollout, told) if beat.preloads and not draining else None
            ),
        )

    # --- helpers -----------------------------------------------------------------

    def _lookup(
        self, load_balancer_id: str, lbvm_id: str, *, consistent: bool = True
    ) -> tuple[LoadBalancerRecord, Lbvm]:
        """Both records; a heartbeat reads them eventually consistent (half the read units of every heartbeat).

        The config route reads consistently: it is rare, and the version an agent was just told
        must be offered to it (a stale record would refuse a preload of it).

        A record a second old is as good here, except around a lifecycle transition: an
        LBVM that does not wait on its ``heartbeats`` callback (Pending, recovering, or
        just created) may have a new task token written a moment ago, so it is read again
        consistently rather than have its first heartbeat missed. Writes stay conditional
        on the record's version, so a stale read costs a retry, never a lost update.
        """
        record = self.load_balancers.get(load_balancer_id, consistent=consistent)
        if record is None and not consistent:
            record = self.load_balancers.get(load_balancer_id)
        lbvm = self.lbvms.get(load_balancer_id, lbvm_id, consistent=consistent) if record else None
        if record is not None and not consistent and (lbvm is None or lbvm.callback_kind != "heartbeats"):
            lbvm = self.lbvms.get(load_balancer_id, lbvm_id)
        if record is None or lbvm is None:
            raise UnknownLbvm(f"{load_balancer_id}/{lbvm_id}")
        return record, lbvm

    @staticmethod
    def _authorize(principal_arn: str | None, lbvm: Lbvm, claimed_instance: str | None) -> None:
        caller = instance_of_caller(principal_arn)
        if claimed_instance is not None and claimed_instance != caller:
            raise Forbidden(f"{caller} may report only for itself, not for {claimed_instance}")
        if lbvm.instance_id is not None and lbvm.instance_id != caller:
            raise Forbidden(f"{lbvm.lbvm_id} runs on {lbvm.instance_id}, not on {caller}")

    def _prove_alive(self, lbvm: Lbvm, beat: Heartbeat) -> None:
        token = lbvm.callback_token
        if token is None:
            return
        if lbvm.callback_kind == "heartbeats":
            self.callbacks.heartbeat(token)
        elif lbvm.callback_kind == "first-heartbeat":
            self.callbacks.complete(token, {"action": "first-heartbeat", "configVersion": beat.applied_config_version})
        elif lbvm.callback_kind == "recovery":
            self.callbacks.complete(token, {"action": "recovered"})

    def _persist(self, lbvm: Lbvm, beat: Heartbeat, now: datetime) -> Lbvm:
        reported = {
            "agent_state": beat.state,
            "applied_config_version": beat.applied_config_version,
            "agent_error": beat.error,
            "boot_id": beat.boot_id,
            "backend_health": backend_health_text(beat.backends) if beat.backends is not None else None,
            "preloads": beat.preloads,
            "preload_version": beat.preload.version if beat.preload else None,
            "preload_error": beat.preload.error if beat.preload else None,
        }
        if beat.boot_id == lbvm.boot_id and (lbvm.heartbeat_sequence or -1) >= beat.sequence:
            return lbvm  # a late or repeated heartbeat: nothing new
        samples = accepted_samples(beat.metrics, now)
        changed = any(getattr(lbvm, name) != value for name, value in reported.items())
        # A sample not seen before is a change: the scaler reads it from the record.
        changed = changed or merge_samples(lbvm.recent_metrics, samples) != lbvm.recent_metrics
        draining = lbvm.drain_requested_at is not None or lbvm.state == "Draining"
        # While draining, the connection count is what the drain machine waits on: keep it fresh.
        connections_matter = draining and beat.active_connections != lbvm.active_connections
        stale = lbvm.last_heartbeat_at is None or now - lbvm.last_heartbeat_at >= HEARTBEAT_PERSIST_INTERVAL
        if not (changed or connections_matter or stale):
            return lbvm
        current = lbvm
        for _ in range(3):
            recent = merge_samples(current.recent_metrics, samples)
            try:
                stored = self.lbvms.update(
                    current,
                    **reported,
                    recent_metrics=recent,
                    active_connections=beat.active_connections,
                    # Not a reason to write (they move with every request): stored with whatever is written.
                    http_requests=beat.responses.requests if beat.responses else None,
                    http_server_errors=beat.responses.server_errors if beat.responses else None,
                    heartbeat_sequence=beat.sequence,
                    last_heartbeat_at=now,
                )
            except LbvmConflict:
                fresh = self.lbvms.get(lbvm.load_balancer_id, lbvm.lbvm_id)
                if fresh is None:
                    raise UnknownLbvm(lbvm.lbvm_id) from None
                current = fresh
                continue
            known = {epoch_milliseconds(s.period_end) for s in current.recent_metrics}
            new = [s for s in recent if epoch_milliseconds(s.period_end) not in known]
            if new:
                self.emit_metrics(sample_metrics(stored.load_balancer_id, new))
            return stored
        return current
