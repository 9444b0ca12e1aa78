"""The API's use cases: create, read, change, warm and delete load balancers.

Independent of HTTP: the API module maps these results and exceptions onto
status codes. Each use case validates fully before it writes, writes once
(conditionally), and records an event that says what changed and who did it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lbcp.adapters.account import AccountInspector
from lbcp.dal.repository import (
    BeingDeleted,
    GenerationMismatch,
    LoadBalancerRepository,
    NotFound,
    Page,
    new_load_balancer_id,
)
from lbcp.errors import SpecRejected
from lbcp.logic.account_checks import check_against_account, facts_needed
from lbcp.logic.patching import (
    describe_changes,
    diff,
    immutable_violations,
    merge_patch,
    read_only_violations,
)
from lbcp.models.config_rollout import ConfigRolloutStatus
from lbcp.models.events import Event, EventReason
from lbcp.models.resource import LoadBalancerRecord
from lbcp.models.rollout import RolloutAction, RolloutControl, RolloutKind, RolloutStatus
from lbcp.models.scaling import WarmRequest
from lbcp.models.spec import LB_ID_PATTERN, LoadBalancerSpec
from lbcp.models.status import EntryStatus, LoadBalancerStatus
from lbcp.reconcile.plan.config_rollout import apply_config_control
from lbcp.reconcile.plan.rollout import apply_control
from lbcp.scaling.warming import WarmResult, plan_warm
from lbcp.validation import check_rules, parse_spec

_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_CONTROL_REASONS: dict[str, EventReason] = {
    "pause": "RolloutPauseRequested",
    "resume": "RolloutResumeRequested",
    "abort": "RolloutAbortRequested",
}
# A warm write lost to a concurrent scaler decision is retried on the fresh record this often.
_WARM_ATTEMPTS = 3


def effective_rollout(record: LoadBalancerRecord, now: datetime) -> RolloutStatus | None:
    """``status.rollout`` with an operator's request folded in: what the planner makes of it on its next tick."""
    rollout = record.status.rollout
    if rollout is None or record.rollout_control is None:
        return rollout
    # As of the request, so that the answer is the same however often it is read.
    return apply_control(rollout, record.rollout_control, min(now, record.rollout_control.requested_at))


def effective_config_rollout(record: LoadBalancerRecord, now: datetime) -> ConfigRolloutStatus | None:
    """``status.configRollout`` with an operator's request folded in (who keeps the new version while paused is
    left for the planner, which sees the LBVMs)."""
    rollout = record.status.config_rollout
    control = record.config_rollout_control
    if rollout is None or control is None:
        return rollout
    return apply_config_control(rollout, control, min(now, control.requested_at))


class NoRollout(Exception):
    """Nothing to pause, resume or abort: no rollout (of the kind asked for) is in progress (a 409)."""

    def __init__(self, message: str, *, kind_asked: bool = False) -> None:
        super().__init__(message)
        self.kind_asked = kind_asked


class RolloutAmbiguous(Exception):
    """A template and a config rollout are both in progress and the request did not say which (a 409)."""


class WarmContended(Exception):
    """The scaling state changed under every attempt (a 409; retrying later succeeds)."""


@dataclass(frozen=True)
class PatchResult:
    record: LoadBalancerRecord
    changed: bool


def initial_status(spec: LoadBalancerSpec) -> LoadBalancerStatus:
    return LoadBalancerStatus(
        phase="Pending",
        observed_generation=0,
        desired_capacity=spec.capacity.min,
        entry=EntryStatus(mode=spec.entry.mode, dns_name=None),
        lbvms=[],
    )


class LoadBalancerService:
    def __init__(
        self,
        repository: LoadBalancerRepository,
        inspector: Callable[[], AccountInspector],
        clock: Callable[[], datetime],
    ) -> None:
        self._repository = repository
        self._inspector = inspector
        self._clock = clock

    # --- reads -------------------------------------------------------------------

    def resolve(self, ref: str) -> LoadBalancerRecord:
        """Find a load balancer by id (``lb-...``) or by name."""
        lb_id = self._id_for(ref)
        record = self._repository.get(lb_id) if lb_id else None
        if record is None:
            raise NotFound(ref)
        return record

    def list(self, limit: int, token: str | None) -> Page[LoadBalancerRecord]:
        return self._repository.list(limit, token)

    def events(self, ref: str, limit: int, token: str | None) -> Page[Event]:
        # Events outlive their load balancer (until they expire), so that a
        # deleted one can still be examined by id.
        lb_id = self._id_for(ref)
        if lb_id is None:
            raise NotFound(ref)
        page = self._repository.list_events(lb_id, limit, token)
        if not page.items and token is None and self._repository.get(lb_id) is None:
            raise NotFound(ref)
        return page

    # --- writes ------------------------------------------------------------------

    def create(self, spec: LoadBalancerSpec, actor: str | None) -> LoadBalancerRecord:
        check_rules(spec)
        self._check_account(spec, previous=None)
        now = self._clock()
        record = LoadBalancerRecord(
            id=new_load_balancer_id(),
            generation=1,
            spec=spec,
            status=initial_status(spec),
            created_at=now,
            updated_at=now,
            created_by=actor,
            desired_capacity=spec.capacity.min,
        )
        event = Event(
            time=now,
            type="Normal",
            reason="Created",
            message=f"created by {actor or 'an unknown caller'}: {_summary(spec)}; waiting for the reconciler",
            generation=1,
            actor=actor,
        )
        self._repository.create(record, event)
        return record

    def patch(self, ref: str, expected_generation: int, patch: dict[str, Any], actor: str | None) -> PatchResult:
        record = self.resolve(ref)
        if record.deletion_requested_at is not None:
            raise BeingDeleted(record)
        if expected_generation != record.generation:
            raise GenerationMismatch(record)
        read_only = read_only_violations(patch)
        if read_only:
            raise SpecRejected(read_only)
        current = record.spec.model_dump(mode="json", by_alias=True)
        proposed = merge_patch(current, patch)
        immutable = immutable_violations(current, proposed)
        if immutable:
            raise SpecRejected(immutable, unprocessable=True)
        spec = parse_spec(proposed)
        changes = diff(current, spec.model_dump(mode="json", by_alias=True))
        if not changes:
            return PatchResult(record, changed=False)
        self._check_account(spec, previous=record.spec)
        now = self._clock()
        event = Event(
            time=now,
            type="Normal",
            reason="SpecUpdated",
            message=(
                f"generation {record.generation} -> {record.generation + 1} by {actor or 'an unknown caller'}: "
                f"{describe_changes(changes)}"
            ),
            generation=record.generation + 1,
            actor=actor,
        )
        updated = self._repository.update_spec(record.id, record.generation, spec, now, event, previous=record.spec)
        return PatchResult(updated, changed=True)

    def delete(self, ref: str, expected_generation: int | None, actor: str | None) -> LoadBalancerRecord:
        record = self.resolve(ref)
        if expected_generation is not None and expected_generation != record.generation:
            raise GenerationMismatch(record)
        if record.deletion_requested_at is not None:
            return record  # already being deleted: deleting again is a no-op
        now = self._clock()
        event = Event(
            time=now,
            type="Normal",
            reason="DeletionRequested",
            message=(
                f"deletion requested by {actor or 'an unknown caller'}; teardown drains and terminates "
                "its LBVMs, then removes their ENIs, its DNS records and its entry"
            ),
            generation=record.generation,
            actor=actor,
        )
        try:
            return self._repository.request_deletion(record.id, expected_generation, now, event)
        except BeingDeleted as raced:
            return raced.current

    def warm(self, ref: str, request: WarmRequest, actor: str | None) -> WarmResult:
        """Store a warm floor and raise desired capacity to it now.

        Raises ``NotFound``, ``BeingDeleted``, ``SpecRejected`` (malformed, or more
        than the load balancer can take) and ``WarmContended`` (three concurrent
        scaler decisions in a row; rare).
        """
        record = self.resolve(ref)
        now = self._clock()
        for _ in range(_WARM_ATTEMPTS):
            plan = plan_warm(record, request, actor, now)
            try:
                self._repository.set_desired_capacity(
                    record.id, record.scaling_version, plan.desired, plan.scaling, plan.event
                )
            except GenerationMismatch as raced:
                record = raced.current
                continue
            return WarmResult(record.id, plan.warm, plan.previous, plan.desired)
        raise WarmContended(f"{record.id}: the scaling state kept changing; try again")

    def rollout_action(
        self, ref: str, action: RolloutAction, actor: str | None, kind: RolloutKind | None = None
    ) -> RolloutStatus | ConfigRolloutStatus:
        """Pause, resume or abort the rollout in progress; returns it as the planner is about to make it.

        It acts on whichever rollout is in progress: ``status.rollout`` (a
        template) or ``status.configRollout`` (a config version). The planner
        ends a config rollout when a template one starts, so both are seldom
        in progress at once; when they are, ``kind`` must say which
        (``RolloutAmbiguous``), and when it is given it must name one in
        progress. Idempotent: a request that changes nothing (pausing a paused
        rollout, aborting one already rolling back) writes nothing. Raises
        ``NoRollout`` when none is in progress, ``NotFound``, ``BeingDeleted``.
        """
        record = self.resolve(ref)
        if record.deletion_requested_at is not None:
            raise BeingDeleted(record)
        now = self._clock()
        template = effective_rollout(record, now)
        config = effective_config_rollout(record, now)
        current = self._acted_on(record, action, kind, template, config)
        control = RolloutControl(rollout_id=current.id, action=action, requested_at=now, requested_by=actor)
        after: RolloutStatus | ConfigRolloutStatus
        if isinstance(current, ConfigRolloutStatus):
            after = apply_config_control(current, control, now)
            what = f"config rollout {current.id} (version {current.from_version} -> {current.to_version})"
        else:
            after = apply_control(current, control, now)
            what = f"rollout {current.id}"
        if after == current:
            return current
        event = Event(
            time=now,
            type="Warning" if action == "abort" else "Normal",
            reason=_CONTROL_REASONS[action],
            message=f"{action} of {what} requested by {actor or 'an operator'} at step {current.step} "
            f"({current.progress}): {after.message}",
            generation=record.generation,
            actor=actor,
        )
        self._repository.request_rollout_action(record.id, control, event, kind=current.kind)
        return after

    @staticmethod
    def _acted_on(
        record: LoadBalancerRecord,
        action: RolloutAction,
        kind: RolloutKind | None,
        template: RolloutStatus | None,
        config: ConfigRolloutStatus | None,
    ) -> RolloutStatus | ConfigRolloutStatus:
        """The rollout a pause, resume or abort is about (see ``rollout_action``)."""
        active: dict[RolloutKind, RolloutStatus | ConfigRolloutStatus] = {
            rollout.kind: rollout for rollout in (template, config) if rollout is not None and rollout.active
        }
        if kind is not None:
            if kind in active:
                return active[kind]
            last = template if kind == "template" else config
            ended = f" (the last one, {last.id}, ended {last.state})" if last is not None else ""
            others = f"; a {next(iter(active))} rollout is" if active else ""
            raise NoRollout(
                f"{record.id} has no {kind} rollout in progress{ended}{others}; nothing to {action}", kind_asked=True
            )
        if len(active) == 2:
            raise RolloutAmbiguous(
                f"{record.id} has a template rollout ({active['template'].id}) and a config rollout "
                f"({active['config'].id}) in progress: say which to {action} with kind=template or kind=config"
            )
        if active:
            return next(iter(active.values()))
        finished = [
            f"{rollout.kind} rollout {rollout.id} ended {rollout.state}"
            for rollout in (template, config)
            if rollout is not None
        ]
        said = f" (the last: {'; '.join(finished)})" if finished else ""
        raise NoRollout(f"{record.id} has no rollout in progress{said}; nothing to {action}")

    def rollouts(self, ref: str, limit: int, token: str | None) -> Page[RolloutStatus | ConfigRolloutStatus]:
        record = self.resolve(ref)
        return self._repository.list_rollouts(record.id, limit, token)

    # --- helpers -----------------------------------------------------------------

    def _id_for(self, ref: str) -> str | None:
        if re.fullmatch(LB_ID_PATTERN, ref):
            return ref
        if _NAME_RE.fullmatch(ref):
            return self._repository.resolve_name(ref)
        return None

    def _check_account(self, spec: LoadBalancerSpec, previous: LoadBalancerSpec | None) -> None:
        needed = facts_needed(spec, previous)
        if needed.vpc_id is None and not needed.subnet_ids and not needed.certificate_arns:
            return
        facts = self._inspector().gather(needed)
        errors = check_against_account(spec, needed, facts, self._clock())
        if errors:
            raise SpecRejected(errors, unprocessable=True)


def _summary(spec: LoadBalancerSpec) -> str:
    listeners = ", ".join(f"{listener.protocol}:{listener.port}" for listener in spec.listeners)
    return (
        f"{spec.type} load balancer with listeners {listeners}, {len(spec.backends)} backend(s), "
        f"capacity {spec.capacity.min}-{spec.capacity.max} LBVMs over {len(spec.subnet_ids)} subnet(s), "
        f"{spec.proxy}{', WAF ' + spec.waf.mode if spec.waf.enabled else ''}, {spec.entry.mode} entry"
    )
