"""Carries out a ReconcilePlan's jobs through the ports, and records why.

Each job is idempotent and independent: one failing job is recorded as a
Warning event and the others still run; the next tick retries what failed.
Launches follow Crossplane's rule for external resources: the pending marker
(the LBVM record) is written before anything is created, and the lifecycle
execution is named after it, so no retry can launch twice.
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lbcp import LB_ID_TAG_KEY, LBVM_ID_TAG_KEY, PRODUCT_TAG_KEY, PRODUCT_TAG_VALUE
from lbcp.lifecycle.protocol import drain_output
from lbcp.models.events import Event
from lbcp.models.lbvm import Lbvm, LbvmConflict
from lbcp.models.lifecycle import DrainSettings, LaunchSettings, LifecycleInput, Tag, Timeouts
from lbcp.models.resource import LoadBalancerRecord
from lbcp.models.rollout import LaunchTemplate, spec_on, template_of
from lbcp.reconcile.jobs import (
    DeleteNetworkInterface,
    DeregisterTarget,
    EnsureEntry,
    ForceTerminate,
    Job,
    Launch,
    RegisterTarget,
    RemoveLoadBalancer,
    RequestDrain,
    StartLifecycle,
    TeardownEntry,
    TerminateInstance,
)
from lbcp.reconcile.observed import EntryView
from lbcp.reconcile.plan import ReconcilePlan
from lbcp.reconcile.ports import (
    ComputePort,
    EntryPort,
    LaunchSettingsPort,
    LbvmStore,
    LifecyclePort,
    LoadBalancerStore,
)

logger = logging.getLogger(__name__)


def new_lbvm_id() -> str:
    return "lbvm-" + secrets.token_hex(6)


@dataclass(frozen=True)
class ExecutorSettings:
    table_name: str
    tasks_function_arn: str
    drain_state_machine_arn: str
    instance_profile_arn: str | None


@dataclass
class ExecutionReport:
    done: list[Job] = field(default_factory=list)
    failed: list[tuple[Job, str]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


class Executor:
    def __init__(
        self,
        *,
        load_balancers: LoadBalancerStore,
        lbvms: LbvmStore,
        compute: ComputePort,
        entry: EntryPort,
        lifecycle: LifecyclePort,
        launch_settings: LaunchSettingsPort,
        settings: ExecutorSettings,
        clock: Callable[[], datetime],
        lbvm_ids: Callable[[], str] = new_lbvm_id,
    ) -> None:
        self._load_balancers = load_balancers
        self._lbvms = lbvms
        self._compute = compute
        self._entry = entry
        self._lifecycle = lifecycle
        self._launch_settings = launch_settings
        self._settings = settings
        self._clock = clock
        self._new_lbvm_id = lbvm_ids

    def execute(
        self, record: LoadBalancerRecord, lbvms: list[Lbvm], plan: ReconcilePlan, entry: EntryView
    ) -> ExecutionReport:
        report = ExecutionReport()
        by_id = {lbvm.lbvm_id: lbvm for lbvm in lbvms}
        for job in plan.jobs:
            try:
                outcome = self._run(record, by_id, job, entry)
                if isinstance(job, EnsureEntry):
                    entry = outcome
            except Exception as exc:  # each job is independent; the next tick retries
                logger.exception("job failed", extra={"job": type(job).__name__, "lb": record.id})
                report.failed.append((job, f"{type(exc).__name__}: {exc}"))
                report.events.append(
                    self._event(record, job, f"failed: {job.reason} ({type(exc).__name__}: {exc})", failed=True)
                )
            else:
                report.done.append(job)
                # A launch's LBVM is named only now, by its marker.
                launched = outcome.lbvm_id if isinstance(outcome, Lbvm) else None
                report.events.append(self._event(record, job, job.reason, lbvm_id=launched))
        return report

    # --- jobs -----------------------------------------------------------------------

    def _run(self, record: LoadBalancerRecord, lbvms: dict[str, Lbvm], job: Job, entry: EntryView) -> Any:
        match job:
            case EnsureEntry():
                # The serving LBVMs: an entry changing mode moves its name to them, or waits for them.
                return self._entry.ensure(record, [lbvm for lbvm in lbvms.values() if lbvm.state == "Routable"])
            case Launch():
                return self._launch(record, job, entry)
            case StartLifecycle(lbvm_id=lbvm_id):
                return self._start(record, lbvms[lbvm_id], entry)
            case RequestDrain():
                return self._drain(record, lbvms[job.lbvm_id], job)
            case ForceTerminate(lbvm_id=lbvm_id):
                return self._force_terminate(record, lbvms[lbvm_id], job)
            case TerminateInstance(instance_id=instance_id):
                return self._compute.terminate_instance(record.id, instance_id)
            case DeleteNetworkInterface(network_interface_id=interface_id):
                return self._compute.delete_network_interface(record.id, interface_id)
            case RegisterTarget(lbvm_id=lbvm_id):
                return self._entry.register(record, lbvms[lbvm_id])
            case DeregisterTarget(lbvm_id=lbvm_id, instance_id=instance_id):
                known = lbvms.get(lbvm_id or "")
                instance_id = instance_id or (known.instance_id if known else None)
                return self._entry.deregister(record, lbvm_id=lbvm_id, instance_id=instance_id)
            case TeardownEntry():
                return self._entry.teardown(record)
            case RemoveLoadBalancer(lbvm_ids=lbvm_ids):
                for lbvm_id in lbvm_ids:
                    self._lbvms.delete(lbvms[lbvm_id])
                return self._load_balancers.remove(record.id, self._event(record, job, job.reason))
        raise TypeError(f"unknown job {job!r}")

    def _launch(self, record: LoadBalancerRecord, job: Launch, entry: EntryView) -> Lbvm:
        now = self._clock()
        template = job.template or template_of(record.spec)
        marker = Lbvm(
            lbvm_id=self._new_lbvm_id(),
            load_balancer_id=record.id,
            subnet_id=job.subnet_id,
            availability_zone=job.availability_zone or self._compute.availability_zone(job.subnet_id),
            state="Launching",
            state_since=now,
            version=1,
            launched_generation=record.generation,
            launch_template=template.description,
            launch_reason=job.reason,
            created_at=now,
        )
        self._lbvms.create(marker)  # the pending marker comes first
        self._start(record, marker, entry)
        return marker

    def _start(self, record: LoadBalancerRecord, lbvm: Lbvm, entry: EntryView) -> str:
        if entry.security_group_id is None:
            raise RuntimeError("the entry's security group does not exist yet")
        # An LBVM runs the template it was launched for (a canary's, or the old one on a rollback),
        # whatever the spec asks for now; a marker from before templates were recorded runs the spec's.
        template = LaunchTemplate.from_description(lbvm.launch_template) or template_of(record.spec)
        record = record.model_copy(update={"spec": spec_on(record.spec, template)})
        spec = record.spec
        tags = [
            Tag(key=PRODUCT_TAG_KEY, value=PRODUCT_TAG_VALUE),
            Tag(key=LB_ID_TAG_KEY, value=record.id),
            Tag(key=LBVM_ID_TAG_KEY, value=lbvm.lbvm_id),
            Tag(key="Name", value=f"{spec.name}/{lbvm.lbvm_id}"),
            *(Tag(key=key, value=value) for key, value in sorted(spec.tags.items())),
        ]
        user_data = self._launch_settings.user_data(record, lbvm)
        lifecycle_input = LifecycleInput(
            lbvm_id=lbvm.lbvm_id,
            load_balancer_id=record.id,
            table_name=self._settings.table_name,
            subnet_id=lbvm.subnet_id,
            security_group_ids=[entry.security_group_id],
            launch=LaunchSettings(
                image_id=self._launch_settings.image_id(record),
                instance_type=spec.instance.type,
                user_data=base64.b64encode(user_data.encode()).decode(),
                instance_profile_arn=self._settings.instance_profile_arn,
                tags=tags,
            ),
            timeouts=Timeouts(
                pending_seconds=spec.lifecycle.pending_timeout_seconds,
                unhealthy_seconds=spec.lifecycle.unhealthy_timeout_seconds,
                recovery_seconds=spec.lifecycle.recovery_timeout_seconds,
            ),
            drain=DrainSettings(
                connection_threshold=spec.drain.connection_threshold,
                timeout_seconds=spec.drain.timeout_seconds,
                poll_seconds=min(5, max(1, spec.lifecycle.heartbeat_interval_seconds)),
                grace_seconds=spec.drain.deregistration_grace_seconds,
            ),
            tasks_function_arn=self._settings.tasks_function_arn,
            drain_state_machine_arn=self._settings.drain_state_machine_arn,
        )
        return self._lifecycle.start(lifecycle_input)

    def _drain(self, record: LoadBalancerRecord, lbvm: Lbvm, job: RequestDrain) -> None:
        """Record the request, then wake the lifecycle if it is waiting on a callback.

        If it is between callbacks, the lifecycle tasks function sees the
        request when the next callback registers and completes it at once.
        """
        current = lbvm
        for _ in range(3):
            changes: dict[str, Any] = {"drain_requested_at": self._clock(), "drain_reason": job.drain_reason}
            if job.instance_lost:
                # The instance is gone and so are its connections: nothing to wait for.
                changes["active_connections"] = 0
            try:
                current = self._lbvms.update(current, **changes)
                break
            except LbvmConflict:
                fresh = self._lbvms.get(lbvm.load_balancer_id, lbvm.lbvm_id)
                if fresh is None or fresh.state == "Terminated":
                    return
                current = fresh
        else:
            raise LbvmConflict(lbvm.lbvm_id)
        if job.deregister_now:
            self._entry.deregister(record, lbvm_id=current.lbvm_id, instance_id=current.instance_id)
        if current.callback_token:
            self._lifecycle.complete(current.callback_token, drain_output(job.drain_reason, job.reason))

    def _force_terminate(self, record: LoadBalancerRecord, lbvm: Lbvm, job: ForceTerminate) -> None:
        self._entry.deregister(record, lbvm_id=lbvm.lbvm_id, instance_id=lbvm.instance_id)
        if lbvm.instance_id:
            self._compute.terminate_instance(record.id, lbvm.instance_id)
        now = self._clock()
        fresh = self._lbvms.get(record.id, lbvm.lbvm_id) or lbvm
        self._lbvms.update(
            fresh,
            state="Terminated",
            state_since=now,
            terminated_at=now,
            end_reason=job.end_reason,
            callback_token=None,
            callback_kind=None,
        )

    def _event(
        self, record: LoadBalancerRecord, job: Job, message: str, failed: bool = False, lbvm_id: str | None = None
    ) -> Event:
        return Event(
            time=self._clock(),
            type="Warning" if failed or job.warning else "Normal",
            reason=job.failure_reason if failed else job.event_reason,
            message=message,
            generation=record.generation,
            actor="reconciler",
            instance_id=getattr(job, "instance_id", None),
            lbvm_id=lbvm_id or getattr(job, "lbvm_id", None),
        )
