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
from lbcp.models.events import Event, EventReason
from lbcp.models.resource import LoadBalancerRecord
from lbcp.models.rollout import RolloutAction, RolloutControl, RolloutStatus
from lbcp.models.scaling import WarmRequest
from lbcp.models.spec import LB_ID_PATTERN, LoadBalancerSpec
from lbcp.models.status import EntryStatus, LoadBalancerStatus
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


class NoRollout(Exception):
    """Nothing to pause, resume or abort: no rollout is in progress (a 409)."""


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

    def rollout_action(self, ref: str, action: RolloutAction, actor: str | None) -> RolloutStatus:
        """Pause, resume or abort the current rollout; returns it as the planner is about to make it.

        Idempotent: a request that changes nothing (pausing a paused rollout,
        aborting one already rolling back) writes nothing. Raises ``NoRollout``
        when no rollout is in progress, ``NotFound``, ``BeingDeleted``.
        """
        record = self.resolve(ref)
        if record.deletion_requested_at is not None:
            raise BeingDeleted(record)
        current = effective_rollout(record, self._clock())
        if current is None or not current.active:
            last = f" (the last one, {current.id}, ended {current.state})" if current is not None else ""
            raise NoRollout(f"{record.id} has no rollout in progress{last}; nothing to {action}")
        now = self._clock()
        control = RolloutControl(rollout_id=current.id, action=action, requested_at=now, requested_by=actor)
        after = apply_control(current, control, now)
        if after == current:
            return current
        event = Event(
            time=now,
            type="Warning" if action == "abort" else "Normal",
            reason=_CONTROL_REASONS[action],
            message=f"{action} of rollout {current.id} requested by {actor or 'an operator'} at step {current.step} "
            f"({current.progress}): {after.message}",
            generation=record.generation,
            actor=actor,
        )
        self._repository.request_rollout_action(record.id, control, event)
        return after

    def rollouts(self, ref: str, limit: int, token: str | None) -> Page[RolloutStatus]:
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
