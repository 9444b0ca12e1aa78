"""Rollouts: what the fleet should run now, and the rollout record that says why (pure).

Given the last rollout record, an operator's request, the spec, the LBVM
records and the time, ``decide_rollout`` returns the next record, the
template the capacity rule converges on, how many LBVMs may run it for now
(the canary cap) and the template for launches beyond the cap (the one
known healthy), plus the events that explain each transition. It never
writes the spec: a rejected template is shown, not undone.

Steps: Canary (``canary`` LBVMs on the new template must pass the health
gate) -> Bake (they stay healthy for ``bakeSeconds``) -> Roll (the rest,
within maxSurge/maxUnavailable, like a Deployment) -> Succeeded. A failure
(``maxFailedLaunches`` launches of the new template that never pass the gate
or stop passing it, a canary failing during the bake, no progress for
``progressDeadlineSeconds``, one of ``rollout.alarmNames`` in ALARM, or an
operator's abort) -> Rollback (the same
availability rules, towards the template the fleet came from) -> RolledBack,
with the new template rejected. It cannot loop: a rejected template is not
rolled onto again until the spec asks for something else or changes the
gates it was judged by (``verdict_key``), and the way back runs a template
that was healthy.

The health gate: an LBVM on the new template is healthy when it is Routable
and its agent reports ready, with the rollout's config version (or a later
one) applied, and no error. During the bake, the canary must also not answer
clearly more 5xx than the LBVMs it replaces, over the same window
(``answer_gate``), and no alarm of ``rollout.alarmNames`` may be in ALARM.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from lbcp.logic.rollout_bounds import resolve
from lbcp.models.lbvm import Lbvm
from lbcp.models.rollout import LaunchTemplate, RolloutControl, RolloutStatus, RolloutStep, template_of
from lbcp.models.spec import LoadBalancerSpec
from lbcp.reconcile.observed import ObservedAlarm
from lbcp.reconcile.plan.answer_gate import answer_counts, worse_answers
from lbcp.reconcile.plan.steering import RolloutNote, steer

# Why a launch counts as failed: it never passed the gate, or stopped passing it.
_FAILURE_WORDS = {
    "pending-timeout": "never sent a healthy heartbeat within {pending} s",
    "unhealthy": "went silent after becoming routable",
    "replace": "failed to launch or register",
    "never-started": "ended before it became routable",
}


def verdict_key(spec: LoadBalancerSpec, template: LaunchTemplate | None = None) -> str:
    """What a rollout's verdict depends on: the template (with the AMI it follows) and the gates it was judged by."""
    rollout = spec.rollout.model_dump(mode="json", by_alias=True)
    # Settings added later count only when set: a stored verdict keeps its key across the upgrade.
    for name, unset in (("followLatestImage", False), ("alarmNames", [])):
        if rollout.get(name) == unset:
            rollout.pop(name, None)
    judged = {
        "template": (template or template_of(spec)).description,
        "lifecycle": spec.lifecycle.model_dump(mode="json", by_alias=True),
        "rollout": rollout,
    }
    return hashlib.sha256(json.dumps(judged, sort_keys=True).encode()).hexdigest()[:16]


def canary_count(spec: LoadBalancerSpec, desired: int) -> int:
    return min(desired, resolve(spec.rollout.canary, desired, round_up=True))


@dataclass(frozen=True)
class RolloutDecision:
    rollout: RolloutStatus | None
    # What the fleet converges on: LBVMs on another template are replaced.
    template: LaunchTemplate
    # At most this many LBVMs on ``template`` for now (the canary); None: as many as desired.
    cap: int | None = None
    # Launches beyond the cap run this template (the one known healthy).
    fallback: LaunchTemplate | None = None
    notes: tuple[RolloutNote, ...] = ()
    # Rollouts that ended in this decision without being ``rollout`` (superseded): for the history.
    ended: tuple[RolloutStatus, ...] = ()

    @property
    def held_back(self) -> bool:
        """The spec asks for a template that was rejected: the fleet stays where it was."""
        return self.rollout is not None and self.rollout.rejected and not self.rollout.active


@dataclass(frozen=True)
class _Inputs:
    spec: LoadBalancerSpec
    generation: int
    desired: int
    lbvms: Sequence[Lbvm]
    now: datetime
    load_balancer_id: str
    alarms: Sequence[ObservedAlarm] | None = None


def decide_rollout(
    previous: RolloutStatus | None,
    control: RolloutControl | None,
    spec: LoadBalancerSpec,
    *,
    generation: int,
    desired: int,
    lbvms: Sequence[Lbvm],
    now: datetime,
    load_balancer_id: str = "",
    latest_image: str | None = None,
    alarms: Sequence[ObservedAlarm] | None = None,
) -> RolloutDecision:
    """``latest_image``: the AMI the spec follows this tick (``rollout.followLatestImage``), else None.
    ``alarms``: the states of ``rollout.alarmNames`` (None: not read this tick)."""
    inputs = _Inputs(spec, generation, desired, lbvms, now, load_balancer_id, alarms)
    wanted = template_of(spec, latest_image)
    notes: list[RolloutNote] = []
    if previous is not None and previous.active:
        if previous.to_template != wanted:
            previous, start_from = _superseded(previous, wanted, inputs, notes)
            if start_from is None:
                return _step(previous, None, inputs, notes)
            started = _start(start_from, wanted, inputs, notes)
            return replace(started, ended=(previous,))
        return _step(previous, control, inputs, notes)
    if (
        previous is not None
        and previous.rejected
        and previous.to_template == wanted
        and previous.verdict_key == verdict_key(spec, wanted)
    ):
        return RolloutDecision(previous, previous.from_template)
    on_other = [
        lbvm for lbvm in _live(lbvms) if lbvm.launch_template is not None and lbvm.launch_template != wanted.description
    ]
    source = _most_common_template(on_other)
    if source is None:
        return RolloutDecision(previous, wanted)
    return _start(source, wanted, inputs, notes)


# --- transitions ------------------------------------------------------------------------------------------


def _start(
    source: LaunchTemplate, wanted: LaunchTemplate, inputs: _Inputs, notes: list[RolloutNote]
) -> RolloutDecision:
    now, spec, desired = inputs.now, inputs.spec, inputs.desired
    canary = canary_count(spec, desired)
    step: RolloutStep = "Canary" if canary > 0 else "Roll"
    digest = hashlib.sha256(
        f"{inputs.load_balancer_id}:{inputs.generation}:{wanted.description}:{now.isoformat()}".encode()
    ).hexdigest()
    rollout = RolloutStatus(
        id=f"ro-{digest[:12]}",
        state="Progressing",
        step=step,
        from_template=source,
        to_template=wanted,
        generation=inputs.generation,
        progress=f"0 of {desired} replaced",
        replaced=0,
        desired=desired,
        canary=canary,
        message="",
        verdict_key=verdict_key(spec, wanted),
        started_at=now,
        step_started_at=now,
        last_progress_at=now,
    )
    first = f"{canary} canary LBVM(s) first, then a bake of {spec.rollout.bake_seconds} s" if canary else "no canary"
    message = (
        f"rolling {desired} LBVMs from {source.description} to {wanted.description} (generation "
        f"{inputs.generation}): {first}; maxSurge {spec.rollout.max_surge}, maxUnavailable "
        f"{spec.rollout.max_unavailable}, progress deadline {spec.rollout.progress_deadline_seconds} s, "
        f"at most {spec.rollout.max_failed_launches} failed launch(es)"
    )
    notes.append(RolloutNote("RolloutStarted", f"rollout {rollout.id}: {message}"))
    return _step(rollout.model_copy(update={"message": message}), None, inputs, notes)


def _superseded(
    rollout: RolloutStatus, wanted: LaunchTemplate, inputs: _Inputs, notes: list[RolloutNote]
) -> tuple[RolloutStatus, LaunchTemplate | None]:
    """The spec changed its mind during a rollout: back to where it came from, or on to a third template."""
    if wanted == rollout.from_template:
        message = (
            f"the spec asks for {wanted.description} again (generation {inputs.generation}): returning the fleet "
            f"to it from {rollout.to_template.description}"
        )
        notes.append(RolloutNote("RolloutSuperseded", f"rollout {rollout.id}: {message}"))
        return _rollback(rollout, message, inputs.now, rejected=False), None
    message = (
        f"superseded at {rollout.progress}: the spec now asks for {wanted.description} (generation "
        f"{inputs.generation}); a new rollout starts from {rollout.from_template.description}"
    )
    notes.append(RolloutNote("RolloutSuperseded", f"rollout {rollout.id}: {message}", "Warning"))
    ended = rollout.model_copy(
        update={"state": "Failed", "step": None, "message": message, "finished_at": inputs.now, "waiting_for": None}
    )
    return ended, rollout.from_template


def apply_control(
    rollout: RolloutStatus, control: RolloutControl | None, now: datetime, notes: list[RolloutNote] | None = None
) -> RolloutStatus:
    """An operator's pause, resume or abort, applied to the rollout it names (idempotent: a repeat changes nothing).

    The planner applies it on its next tick; the API applies it too, to answer
    with what the rollout is about to be.
    """
    return steer(
        rollout,
        control,
        now,
        [] if notes is None else notes,
        name=f"rollout {rollout.id}",
        paused_effect="the fleet stays as it is, serving",
        aborted_effect=(
            f"rolling back to {rollout.from_template.description}; the spec keeps asking for "
            f"{rollout.to_template.description}: PATCH it to what you want"
        ),
        roll_back=lambda current, message: _rollback(current, message, now, rejected=True),
    )


def _rollback(rollout: RolloutStatus, message: str, now: datetime, *, rejected: bool) -> RolloutStatus:
    return rollout.model_copy(
        update={
            "state": "Progressing",
            "step": "Rollback",
            "message": message,
            "rejected": rejected,
            "replaced": 0,
            "step_started_at": now,
            "last_progress_at": now,
            "paused_step": None,
        }
    )


def _step(
    rollout: RolloutStatus, control: RolloutControl | None, inputs: _Inputs, notes: list[RolloutNote]
) -> RolloutDecision:
    """Where an active rollout stands now, and what the capacity rule may do for it."""
    spec, now, desired = inputs.spec, inputs.now, inputs.desired
    settings = spec.rollout
    rollout = _observe(rollout, inputs)
    rollout = apply_control(rollout, control, inputs.now, notes)
    if rollout.step == "Rollback":
        return _rolling_back(rollout, inputs, notes)
    new, old = rollout.to_template, rollout.from_template
    healthy = _healthy(rollout, inputs)
    replaced = min(len(healthy), desired)
    progressed = replaced > rollout.replaced
    rollout = rollout.model_copy(
        update={
            "replaced": replaced,
            "desired": desired,
            "progress": f"{replaced} of {desired} replaced",
            "last_progress_at": now if progressed else rollout.last_progress_at,
        }
    )
    if rollout.state == "Paused":
        on_new = sum(1 for lbvm in _live(inputs.lbvms) if lbvm.launch_template == new.description)
        return RolloutDecision(rollout, new, cap=on_new, fallback=old, notes=tuple(notes))

    firing = _firing(settings.alarm_names, inputs.alarms)
    if firing:
        return _fail(rollout, f"{firing} at {rollout.progress}", inputs, notes)
    stalled = now - rollout.last_progress_at > timedelta(seconds=settings.progress_deadline_seconds)
    failure = _failure_text(rollout, inputs)
    if len(rollout.failed) >= settings.max_failed_launches:
        return _fail(rollout, failure, inputs, notes)
    canary = min(rollout.canary, desired)
    if rollout.step in ("Canary", "Bake") and canary == 0:
        rollout = rollout.model_copy(update={"step": "Roll", "step_started_at": now, "last_progress_at": now})
    if rollout.step == "Canary":
        if replaced >= canary:
            bake = settings.bake_seconds
            if bake > 0:
                until = now + timedelta(seconds=bake)
                message = f"{replaced} canary LBVM(s) on {new.description} healthy; baking for {bake} s"
                notes.append(RolloutNote("RolloutProgressed", f"rollout {rollout.id}: {message}"))
                rollout = rollout.model_copy(
                    update={
                        "step": "Bake",
                        "step_started_at": now,
                        "last_progress_at": now,
                        "message": message,
                        "waiting_for": f"the bake to end at {_time(until)} with the canary healthy",
                        "answers_at_bake": answer_counts(_live(inputs.lbvms)),
                    }
                )
                return RolloutDecision(rollout, new, cap=canary, fallback=old, notes=tuple(notes))
            return _roll(_enter_roll(rollout, inputs, notes, f"{replaced} canary LBVM(s) healthy"), inputs, notes)
        if stalled:
            waited = int((now - rollout.last_progress_at).total_seconds())
            return _fail(
                rollout,
                f"{replaced} of {canary} canary LBVM(s) on {new.description} healthy after {waited} s (progress "
                f"deadline {settings.progress_deadline_seconds} s){'; ' + failure if failure else ''}",
                inputs,
                notes,
            )
        waiting = (
            f"{canary - replaced} canary LBVM(s) on {new.description} to pass the health gate (Routable, agent "
            f"ready with config {rollout.generation} or later, no error) by "
            f"{_time(rollout.last_progress_at + timedelta(seconds=settings.progress_deadline_seconds))}"
        )
        rollout = rollout.model_copy(update={"waiting_for": waiting})
        return RolloutDecision(rollout, new, cap=canary, fallback=old, notes=tuple(notes))
    if rollout.step == "Bake":
        return _bake(rollout, canary, inputs, notes)
    if stalled:
        waited = int((now - rollout.last_progress_at).total_seconds())
        return _fail(
            rollout,
            f"no progress for {waited} s at {rollout.progress} (progress deadline "
            f"{settings.progress_deadline_seconds} s){'; ' + failure if failure else ''}",
            inputs,
            notes,
        )
    return _roll(rollout, inputs, notes)


def _bake(rollout: RolloutStatus, canary: int, inputs: _Inputs, notes: list[RolloutNote]) -> RolloutDecision:
    now, settings = inputs.now, inputs.spec.rollout
    new = rollout.to_template
    # A canary that fails during the bake fails the rollout: the bake is what it was for.
    failed_in_bake = [
        lbvm_id for lbvm_id in rollout.failed if _failed_at(inputs.lbvms, lbvm_id, rollout.step_started_at)
    ]
    if failed_in_bake:
        return _fail(
            rollout,
            f"{len(failed_in_bake)} canary LBVM(s) on {new.description} stopped being healthy during the "
            f"{settings.bake_seconds} s bake ({', '.join(failed_in_bake)})",
            inputs,
            notes,
        )
    live = _live(inputs.lbvms)
    worse = worse_answers(
        [lbvm for lbvm in live if lbvm.launch_template == new.description],
        [
            lbvm
            for lbvm in live
            if lbvm.launch_template == rollout.from_template.description and lbvm.state == "Routable"
        ],
        rollout.answers_at_bake,
    )
    if worse:
        return _fail(rollout, f"{worse} (on {new.description})", inputs, notes)
    if rollout.replaced < canary:
        # A canary left for another reason (a scale-in): the canary step again, with a fresh deadline.
        message = f"{rollout.replaced} of {canary} canary LBVM(s) healthy during the bake: back to the canary step"
        notes.append(RolloutNote("RolloutProgressed", f"rollout {rollout.id}: {message}"))
        rollout = rollout.model_copy(
            update={"step": "Canary", "step_started_at": now, "last_progress_at": now, "message": message}
        )
        return RolloutDecision(rollout, new, cap=canary, fallback=rollout.from_template, notes=tuple(notes))
    until = rollout.step_started_at + timedelta(seconds=settings.bake_seconds)
    if now >= until:
        return _roll(
            _enter_roll(
                rollout, inputs, notes, f"{canary} canary LBVM(s) healthy through a {settings.bake_seconds} s bake"
            ),
            inputs,
            notes,
        )
    rollout = rollout.model_copy(update={"waiting_for": f"the bake to end at {_time(until)} with the canary healthy"})
    return RolloutDecision(rollout, new, cap=canary, fallback=rollout.from_template, notes=tuple(notes))


def _enter_roll(rollout: RolloutStatus, inputs: _Inputs, notes: list[RolloutNote], why: str) -> RolloutStatus:
    message = f"{why}; rolling the rest of the fleet onto {rollout.to_template.description}"
    notes.append(RolloutNote("RolloutProgressed", f"rollout {rollout.id}: {message}"))
    return rollout.model_copy(
        update={"step": "Roll", "step_started_at": inputs.now, "last_progress_at": inputs.now, "message": message}
    )


def _roll(rollout: RolloutStatus, inputs: _Inputs, notes: list[RolloutNote]) -> RolloutDecision:
    new = rollout.to_template
    left = [lbvm for lbvm in _live(inputs.lbvms) if lbvm.launch_template not in (None, new.description)]
    if rollout.replaced >= inputs.desired and not left:
        message = f"{rollout.replaced} of {inputs.desired} LBVMs on {new.description}, all healthy"
        notes.append(RolloutNote("RolloutSucceeded", f"rollout {rollout.id}: succeeded: {message}"))
        done = rollout.model_copy(
            update={
                "state": "Succeeded",
                "step": None,
                "message": message,
                "finished_at": inputs.now,
                "waiting_for": None,
            }
        )
        return RolloutDecision(done, new, notes=tuple(notes))
    deadline = rollout.last_progress_at + timedelta(seconds=inputs.spec.rollout.progress_deadline_seconds)
    waiting = (
        f"{len(left)} LBVM(s) on {rollout.from_template.description} to be replaced, within maxSurge "
        f"{inputs.spec.rollout.max_surge} and maxUnavailable {inputs.spec.rollout.max_unavailable}; next progress "
        f"due by {_time(deadline)}"
    )
    return RolloutDecision(rollout.model_copy(update={"waiting_for": waiting}), new, notes=tuple(notes))


def _fail(rollout: RolloutStatus, why: str, inputs: _Inputs, notes: list[RolloutNote]) -> RolloutDecision:
    new, old = rollout.to_template, rollout.from_template
    message = (
        f"{why}; rolling back to {old.description}; the spec keeps asking for {new.description}: fix it or PATCH "
        "it back"
    )
    notes.append(
        RolloutNote("RolloutFailed", f"rollout {rollout.id} failed at step {rollout.step}: {message}", "Warning")
    )
    return _rolling_back(_rollback(rollout, message, inputs.now, rejected=True), inputs, notes)


def _rolling_back(rollout: RolloutStatus, inputs: _Inputs, notes: list[RolloutNote]) -> RolloutDecision:
    old, new = rollout.from_template, rollout.to_template
    live = _live(inputs.lbvms)
    on_new = [lbvm for lbvm in live if lbvm.launch_template not in (None, old.description)]
    back = [lbvm for lbvm in live if lbvm.launch_template == old.description and lbvm.state == "Routable"]
    if not on_new and len(back) >= inputs.desired:
        outcome = (
            f"rolled back to {old.description}: {len(back)} of {inputs.desired} LBVMs routable on it"
            if rollout.rejected
            else f"back on {old.description}: {len(back)} of {inputs.desired} LBVMs routable on it"
        )
        launches = f"{len(rollout.launched)} launch(es) of {new.description}, {len(rollout.failed)} failed"
        message = f"{rollout.message}. {outcome} ({launches})"
        notes.append(RolloutNote("RolledBack", f"rollout {rollout.id}: {outcome} ({launches})", "Warning"))
        done = rollout.model_copy(
            update={
                "state": "RolledBack",
                "step": None,
                "message": message,
                "finished_at": inputs.now,
                "waiting_for": None,
            }
        )
        return RolloutDecision(done, old, notes=tuple(notes))
    # During the rollback, progress counts the LBVMs back on the old template.
    returned = min(len(back), inputs.desired)
    rollout = rollout.model_copy(
        update={
            "replaced": returned,
            "desired": inputs.desired,
            "progress": f"{returned} of {inputs.desired} back on {old.description}",
            "last_progress_at": inputs.now if returned > rollout.replaced else rollout.last_progress_at,
        }
    )
    deadline = rollout.last_progress_at + timedelta(seconds=inputs.spec.rollout.progress_deadline_seconds)
    if inputs.now > deadline:
        message = (
            f"{rollout.message}. The rollback made no progress for {inputs.spec.rollout.progress_deadline_seconds} s: "
            f"{len(back)} of {inputs.desired} LBVMs routable on {old.description}, {len(on_new)} still on other "
            "templates; the fleet keeps converging on it"
        )
        notes.append(RolloutNote("RolloutFailed", f"rollout {rollout.id}: the rollback stalled: {message}", "Warning"))
        failed = rollout.model_copy(
            update={"state": "Failed", "step": None, "message": message, "finished_at": inputs.now, "waiting_for": None}
        )
        return RolloutDecision(failed, old, notes=tuple(notes))
    waiting = (
        f"{len(on_new)} LBVM(s) to leave {new.description}; {len(back)} of {inputs.desired} routable on "
        f"{old.description}"
    )
    return RolloutDecision(rollout.model_copy(update={"waiting_for": waiting}), old, notes=tuple(notes))


# --- observations -------------------------------------------------------------------------------------------


def _observe(rollout: RolloutStatus, inputs: _Inputs) -> RolloutStatus:
    """Launches of the new template since the rollout started, and those that failed (kept once seen)."""
    new = rollout.to_template.description
    mine = [lbvm for lbvm in inputs.lbvms if lbvm.launch_template == new and lbvm.created_at >= rollout.started_at]
    launched = sorted(set(rollout.launched) | {lbvm.lbvm_id for lbvm in mine})
    failed = sorted(set(rollout.failed) | {lbvm.lbvm_id for lbvm in mine if _failure_kind(lbvm) is not None})
    if rollout.step == "Rollback":
        failed = list(rollout.failed)  # what the rollback drains did not fail
    return rollout.model_copy(update={"launched": launched, "failed": failed})


def _failure_kind(lbvm: Lbvm) -> str | None:
    """Why an LBVM counts as a failed launch of its template, or None."""
    leaving = lbvm.state in ("Draining", "Terminated") or lbvm.drain_requested_at is not None
    if not leaving:
        return None
    if lbvm.drain_reason in ("pending-timeout", "unhealthy", "replace"):
        return lbvm.drain_reason
    if lbvm.drain_reason is None and lbvm.state == "Terminated":
        return "never-started"
    return None


def _failed_at(lbvms: Sequence[Lbvm], lbvm_id: str, since: datetime) -> bool:
    for lbvm in lbvms:
        if lbvm.lbvm_id == lbvm_id:
            return (lbvm.drain_requested_at or lbvm.terminated_at or lbvm.state_since) >= since
    return False


def _failure_text(rollout: RolloutStatus, inputs: _Inputs) -> str:
    """'2 of 2 canary LBVM(s) on T failed the health gate: 2 never sent a healthy heartbeat within 600 s'."""
    if not rollout.failed:
        return ""
    by_id = {lbvm.lbvm_id: lbvm for lbvm in inputs.lbvms}
    kinds = Counter(_failure_kind(by_id[i]) if i in by_id else "never-started" for i in rollout.failed)
    pending = inputs.spec.lifecycle.pending_timeout_seconds
    words = ", ".join(
        f"{count} {_FAILURE_WORDS[kind or 'never-started'].format(pending=pending)}"
        for kind, count in sorted(kinds.items(), key=lambda item: item[0] or "")
    )
    which = "canary " if rollout.step in ("Canary", "Bake") else ""
    return (
        f"{len(rollout.failed)} of {len(rollout.launched)} {which}LBVM(s) on {rollout.to_template.description} "
        f"failed the health gate: {words}"
    )


def _firing(names: Sequence[str], alarms: Sequence[ObservedAlarm] | None) -> str:
    """'alarm api-5xx is in ALARM (Threshold Crossed: ...)' for the spec's alarms in ALARM, or ''."""
    if not names or not alarms:
        return ""
    wanted = set(names)
    firing = sorted(
        (alarm for alarm in alarms if alarm.name in wanted and alarm.state == "ALARM"), key=lambda alarm: alarm.name
    )
    return "; ".join(f"alarm {alarm.name} is in ALARM ({alarm.reason or 'no reason given'})" for alarm in firing)


def _healthy(rollout: RolloutStatus, inputs: _Inputs) -> list[Lbvm]:
    """LBVMs on the new template that pass the gate."""
    new = rollout.to_template.description
    return [
        lbvm
        for lbvm in _live(inputs.lbvms)
        if lbvm.launch_template == new
        and lbvm.state == "Routable"
        and lbvm.agent_state in (None, "ready")
        and lbvm.agent_error is None
        and (lbvm.applied_config_version or 0) >= rollout.generation
    ]


def _live(lbvms: Sequence[Lbvm]) -> list[Lbvm]:
    """Routable, starting and unroutable LBVMs nobody asked to leave."""
    return [lbvm for lbvm in lbvms if lbvm.live]


def _most_common_template(lbvms: Sequence[Lbvm]) -> LaunchTemplate | None:
    """The template most of these LBVMs run (routable ones first): where a new rollout comes from."""
    routable = [lbvm for lbvm in lbvms if lbvm.state == "Routable"] or list(lbvms)
    counts = Counter(lbvm.launch_template for lbvm in routable)
    for description, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0] or "")):
        template = LaunchTemplate.from_description(description)
        if template is not None:
            return template
    return None


def _time(moment: datetime) -> str:
    return moment.strftime("%H:%M:%SZ")


__all__ = [
    "RolloutDecision",
    "RolloutNote",
    "apply_control",
    "canary_count",
    "decide_rollout",
    "template_of",
    "verdict_key",
]
