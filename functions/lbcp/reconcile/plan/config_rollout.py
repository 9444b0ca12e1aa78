"""Config rollouts: which config version each LBVM is told, and the record that says why (pure).

Given the last config rollout, the version the fleet is served, the spec, the
LBVM records and the time, ``decide_config_rollout`` returns the next record,
the version served outside the canary, and the events that explain each
transition. It never writes the spec: a rejected version is shown, not undone.

A config-only change (the config the agents render changed, the launch
template did not) starts a rollout: Preload (every serving LBVM whose agent
can preload fetches the new version, renders and validates it beside the one
it serves; one that cannot fails the rollout before any LBVM switched) ->
Canary (``canary`` routable LBVMs are told
the new version and must pass the health gate) -> Bake (they stay healthy
for ``bakeSeconds``) -> Roll (every LBVM is told it: a config is applied by a
hitless reload, not by replacing instances, so maxSurge/maxUnavailable do not
apply) -> Succeeded. A failure (an LBVM on the new version reports an error,
stops being Routable or ready, or sees a backend unavailable that LBVMs on the
previous version see available: the config broke its health check; or no
progress for ``progressDeadlineSeconds``) -> Rollback (everyone is told the
previous version) -> RolledBack, with the new version rejected until the
spec's config changes again (a capacity or scaling PATCH does not count).

A change of launch template is the template rollout's (``rollout.py``): new
instances come up with the new config, so while one is active the LBVMs on its
new template are told the current generation and the others keep the version
served before (``served_config_version``), and a config rollout in progress is
superseded (the fleet keeps its last good version). While the spec asks for a
rejected template of another proxy, no config rollout starts: the spec's
config is for a proxy the fleet does not run. A spec whose config did not
change (a capacity PATCH) moves the served version on at once: the agents
render the same thing.

The health gate: Routable, agent ready, the new version applied, no agent
error, no backend unavailable that the control group (LBVMs running the
previous version) sees available.

An operator's pause, resume or abort (``apply_config_control``) is carried
out first on every tick. Paused, the rollout holds: the LBVMs that run the new
version keep it, nobody else is told it, and neither the gate nor the progress
deadline is judged (on resume they are, with fresh step clocks). An abort is a
failure the operator declared: Rollback at once, the new version rejected.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from lbcp.models.agent import parse_backend_health_text
from lbcp.models.config_rollout import ConfigRolloutStatus, ServedConfig
from lbcp.models.lbvm import Lbvm
from lbcp.models.rollout import RolloutControl, RolloutState
from lbcp.models.spec import LoadBalancerSpec
from lbcp.reconcile.plan.answer_gate import answer_counts, worse_answers
from lbcp.reconcile.plan.rollout import canary_count
from lbcp.reconcile.plan.steering import RolloutNote, steer

# What of a spec the agent renders (agent/model.py reads these and nothing else); the rest
# (capacity, scaling, lifecycle, subnets, entry, tags) never reaches a proxy.
_RENDERED = ("name", "type", "proxy", "listeners", "backends", "waf", "drain")


def config_digest(spec: LoadBalancerSpec) -> str:
    rendered = spec.model_dump(mode="json", by_alias=True, include=set(_RENDERED))
    return hashlib.sha256(json.dumps(rendered, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ConfigDecision:
    rollout: ConfigRolloutStatus | None
    served: ServedConfig
    notes: tuple[RolloutNote, ...] = ()
    # A rollout that ended in this decision without being ``rollout`` (superseded).
    ended: tuple[ConfigRolloutStatus, ...] = ()

    @property
    def held_back(self) -> bool:
        """The spec asks for a config version that was rejected: the fleet stays on the previous one."""
        return self.rollout is not None and self.rollout.rejected and not self.rollout.active


@dataclass(frozen=True)
class _Inputs:
    spec: LoadBalancerSpec
    generation: int
    digest: str
    desired: int
    lbvms: Sequence[Lbvm]
    now: datetime
    load_balancer_id: str
    control: RolloutControl | None = None


def decide_config_rollout(
    previous: ConfigRolloutStatus | None,
    served: ServedConfig | None,
    spec: LoadBalancerSpec,
    *,
    generation: int,
    desired: int,
    lbvms: Sequence[Lbvm],
    now: datetime,
    template_rolling: bool = False,
    fleet_proxy: str | None = None,
    template: str | None = None,
    load_balancer_id: str = "",
    control: RolloutControl | None = None,
) -> ConfigDecision:
    """``fleet_proxy``: the proxy the fleet runs when a rejected template holds it back from the spec's.
    ``template``: the launch template the fleet converges on; LBVMs on another one are being replaced,
    so they are neither a config rollout's canaries nor told its versions.
    ``control``: an operator's latest pause, resume or abort of a config rollout (the record's
    ``configRolloutControl``); it acts only on the rollout it names."""
    if template is not None:
        lbvms = [lbvm for lbvm in lbvms if lbvm.launch_template in (None, template)]
    inputs = _Inputs(spec, generation, config_digest(spec), desired, lbvms, now, load_balancer_id, control)
    current = ServedConfig(version=generation, digest=inputs.digest)
    notes: list[RolloutNote] = []
    if previous is not None and previous.active:
        if template_rolling:
            ended = _end(
                previous,
                "Failed",
                f"superseded: the spec now asks for new instances (generation {generation}), which come up with "
                f"its config; the LBVMs they replace go back to config version {previous.from_version}",
                inputs,
                notes,
            )
            good = ServedConfig(version=previous.from_version, digest=previous.from_digest)
            return ConfigDecision(None, good, tuple(notes), ended=(ended,))
        if inputs.digest == previous.to_digest:
            if previous.to_version != generation:  # the same config under a newer generation (a capacity PATCH)
                previous = previous.model_copy(update={"to_version": generation})
            return _step(previous, inputs, notes)
        if inputs.digest == previous.from_digest:
            ended = _end(
                previous,
                "RolledBack",
                f"the spec's config is back to version {previous.from_version}'s (generation {generation}): every "
                "LBVM is told it",
                inputs,
                notes,
            )
            return ConfigDecision(ended, current, tuple(notes))
        ended = _end(
            previous,
            "Failed",
            f"superseded at {previous.progress}: the spec's config changed again (generation {generation}); a new "
            f"config rollout starts from version {previous.from_version}",
            inputs,
            notes,
        )
        start_from = ServedConfig(version=previous.from_version, digest=previous.from_digest)
        started = _start(start_from, inputs, notes)
        return ConfigDecision(started.rollout, started.served, started.notes, ended=(ended,))
    if served is None:
        return ConfigDecision(previous, current)
    if template_rolling or (fleet_proxy is not None and fleet_proxy != spec.proxy):
        # Old LBVMs keep what they run; the new template's LBVMs are told the current generation.
        return ConfigDecision(previous, served)
    if previous is not None and previous.rejected and previous.to_digest == inputs.digest:
        return ConfigDecision(previous, ServedConfig(version=previous.from_version, digest=previous.from_digest))
    if inputs.digest == served.digest or served.version >= generation:
        return ConfigDecision(previous, current)
    return _start(served, inputs, notes)


# --- transitions ------------------------------------------------------------------------------------------


def _start(source: ServedConfig, inputs: _Inputs, notes: list[RolloutNote]) -> ConfigDecision:
    spec, now = inputs.spec, inputs.now
    current = ServedConfig(version=inputs.generation, digest=inputs.digest)
    # Canaries come from LBVMs that pass the gate on the previous version: an error seen later is the new one's.
    healthy_old = _candidates(inputs.lbvms, source.version)
    if not healthy_old:
        # Nothing serves the previous version to compare with or protect: the new one goes to everyone.
        return ConfigDecision(None, current, tuple(notes))
    canary = canary_count(spec, inputs.desired)
    chosen = _pick(healthy_old, canary)
    digest = hashlib.sha256(
        f"{inputs.load_balancer_id}:{inputs.generation}:{inputs.digest}:{now.isoformat()}".encode()
    ).hexdigest()
    rollout = ConfigRolloutStatus(
        id=f"cr-{digest[:12]}",
        state="Progressing",
        step="Preload" if _preloaders(inputs.lbvms) else ("Canary" if chosen else "Roll"),
        from_version=source.version,
        to_version=inputs.generation,
        from_digest=source.digest,
        to_digest=inputs.digest,
        canary_lbvms=chosen,
        progress="",
        applied=0,
        canary=len(chosen),
        message="",
        started_at=now,
        step_started_at=now,
        last_progress_at=now,
    )
    first = (
        f"{len(chosen)} canary LBVM(s) first ({', '.join(chosen)}), then a bake of {spec.rollout.bake_seconds} s"
        if chosen
        else "no canary"
    )
    if rollout.step == "Preload":
        first = f"every LBVM preloads it (render and validate) before any switches; then {first}"
    message = (
        f"staging config version {inputs.generation} (from version {source.version}): {first}; progress "
        f"deadline {spec.rollout.progress_deadline_seconds} s"
    )
    notes.append(RolloutNote("RolloutStarted", f"config rollout {rollout.id}: {message}"))
    return _step(rollout.model_copy(update={"message": message}), inputs, notes)


def apply_config_control(
    rollout: ConfigRolloutStatus,
    control: RolloutControl | None,
    now: datetime,
    lbvms: Sequence[Lbvm] | None = None,
    notes: list[RolloutNote] | None = None,
) -> ConfigRolloutStatus:
    """An operator's pause, resume or abort, applied to the config rollout it names (a repeat changes nothing).

    The planner applies it on every tick with the LBVMs, which fixes who keeps
    the new version while paused (``paused_lbvms``); the API applies it without
    them, to answer with what the rollout is about to be.
    """
    rollout = steer(
        rollout,
        control,
        now,
        [] if notes is None else notes,
        name=f"config rollout {rollout.id}",
        paused_effect=(
            f"nobody more is told config version {rollout.to_version}: the LBVMs that run it keep it, the rest "
            f"stay on version {rollout.from_version}"
        ),
        aborted_effect=(
            f"every LBVM is told config version {rollout.from_version} again; the spec keeps asking for version "
            f"{rollout.to_version}'s config: PATCH it to what you want"
        ),
        roll_back=lambda current, message: _to_rollback(current, message, now),
        resume_clears=("paused_lbvms",),
    )
    if rollout.state == "Paused" and rollout.paused_lbvms is None and lbvms is not None:
        # Who runs the new version now keeps it; an LBVM told it but not yet on it stays where it is.
        held = [
            lbvm.lbvm_id
            for lbvm in lbvms
            if lbvm.live and rollout.told_new(lbvm.lbvm_id) and lbvm.applied_config_version == rollout.to_version
        ]
        rollout = rollout.model_copy(update={"paused_lbvms": sorted(held)})
    return rollout


def _step(rollout: ConfigRolloutStatus, inputs: _Inputs, notes: list[RolloutNote]) -> ConfigDecision:
    now, settings = inputs.now, inputs.spec.rollout
    served = ServedConfig(version=rollout.from_version, digest=rollout.from_digest)
    held = _before_switching(apply_config_control(rollout, inputs.control, now, inputs.lbvms, notes), inputs, notes)
    if isinstance(held, ConfigDecision):
        return held
    rollout = held
    told = _told(rollout, inputs.lbvms)
    failures = _failures(rollout, told, inputs.lbvms)
    if failures:
        ids = sorted(failures)
        rollout = rollout.model_copy(update={"failed": sorted(set(rollout.failed) | set(ids))})
        why = "; ".join(f"{lbvm_id} {failures[lbvm_id]}" for lbvm_id in ids)
        return _fail(
            rollout, f"{len(ids)} of {len(told)} LBVM(s) on config version {rollout.to_version}: {why}", inputs, notes
        )
    available = _available_backends(_control(rollout, inputs.lbvms))
    healthy = [lbvm for lbvm in told if _passes(lbvm, rollout.to_version) and not _broken(lbvm, available)]
    progressed = len(healthy) > rollout.applied
    rollout = rollout.model_copy(
        update={
            "applied": len(healthy),
            "progress": f"{len(healthy)} of {len(told)} on config version {rollout.to_version}",
            "last_progress_at": now if progressed else rollout.last_progress_at,
        }
    )
    deadline = rollout.last_progress_at + timedelta(seconds=settings.progress_deadline_seconds)
    if rollout.step == "Canary" and told and len(healthy) >= len(told):
        message = f"{len(healthy)} canary LBVM(s) healthy on config version {rollout.to_version}"
        if settings.bake_seconds > 0:
            message += f"; baking for {settings.bake_seconds} s"
            notes.append(RolloutNote("RolloutProgressed", f"config rollout {rollout.id}: {message}"))
            rollout = rollout.model_copy(
                update={
                    "step": "Bake",
                    "step_started_at": now,
                    "last_progress_at": now,
                    "message": message,
                    "answers_at_bake": answer_counts(_serving(inputs.lbvms)),
                }
            )
        else:
            rollout = _enter_roll(rollout, message, inputs, notes)
            return _step(rollout, inputs, notes)
    if rollout.step == "Bake":
        until = rollout.step_started_at + timedelta(seconds=settings.bake_seconds)
        worse = worse_answers(told, _control(rollout, inputs.lbvms), rollout.answers_at_bake)
        if worse:
            return _fail(rollout, f"{worse} (config version {rollout.to_version})", inputs, notes)
        if len(healthy) < len(told) or not told:
            # A canary left for another reason (a scale-in) or is not yet back: back to the canary step.
            message = f"{len(healthy)} of {len(told)} canary LBVM(s) healthy during the bake: back to the canary step"
            notes.append(RolloutNote("RolloutProgressed", f"config rollout {rollout.id}: {message}"))
            rollout = rollout.model_copy(
                update={"step": "Canary", "step_started_at": now, "last_progress_at": now, "message": message}
            )
        elif now >= until:
            why = (
                f"{len(healthy)} canary LBVM(s) healthy on version {rollout.to_version} through a "
                f"{settings.bake_seconds} s bake"
            )
            return _step(_enter_roll(rollout, why, inputs, notes), inputs, notes)
        else:
            waiting = f"the bake to end at {_time(until)} with the canary healthy"
            return ConfigDecision(rollout.model_copy(update={"waiting_for": waiting}), served, tuple(notes))
    if rollout.step == "Canary":
        if not told:
            rollout = _refill(rollout, inputs)
        if now > deadline:
            waited = int((now - rollout.last_progress_at).total_seconds())
            broken = [
                f"{lbvm.lbvm_id}: {', '.join(_broken(lbvm, available))}" for lbvm in told if _broken(lbvm, available)
            ]
            return _fail(
                rollout,
                f"{rollout.applied} of {len(told)} canary LBVM(s) on config version {rollout.to_version} passed the "
                f"health gate after {waited} s (progress deadline {settings.progress_deadline_seconds} s)"
                + (
                    f"; backend(s) unavailable that LBVMs on version {rollout.from_version} see available: "
                    f"{'; '.join(broken)}"
                    if broken
                    else ""
                ),
                inputs,
                notes,
            )
        waiting = (
            f"{len(told) - len(healthy)} canary LBVM(s) to apply config version {rollout.to_version} and pass the "
            f"health gate (Routable, agent ready, no error, no backend unavailable) by {_time(deadline)}"
        )
        return ConfigDecision(rollout.model_copy(update={"waiting_for": waiting}), served, tuple(notes))
    # Roll: everyone is told the new version.
    if told and len(healthy) >= len(told):
        message = f"{len(healthy)} of {len(told)} LBVMs on config version {rollout.to_version}, all healthy"
        notes.append(RolloutNote("RolloutSucceeded", f"config rollout {rollout.id}: succeeded: {message}"))
        done = rollout.model_copy(
            update={"state": "Succeeded", "step": None, "message": message, "finished_at": now, "waiting_for": None}
        )
        return ConfigDecision(done, ServedConfig(version=rollout.to_version, digest=rollout.to_digest), tuple(notes))
    if now > deadline:
        waited = int((now - rollout.last_progress_at).total_seconds())
        return _fail(
            rollout,
            f"no progress for {waited} s at {rollout.progress} (progress deadline "
            f"{settings.progress_deadline_seconds} s)",
            inputs,
            notes,
        )
    waiting = f"{len(told) - len(healthy)} LBVM(s) to apply config version {rollout.to_version} by {_time(deadline)}"
    return ConfigDecision(rollout.model_copy(update={"waiting_for": waiting}), served, tuple(notes))


def _before_switching(
    rollout: ConfigRolloutStatus, inputs: _Inputs, notes: list[RolloutNote]
) -> ConfigRolloutStatus | ConfigDecision:
    """A rollback, a pause or a preload decides on its own; otherwise the rollout goes on to its gates."""
    if rollout.step == "Rollback":
        return _rolling_back(rollout, inputs, notes)
    if rollout.state == "Paused":
        return _paused(rollout, inputs, notes)
    if rollout.step == "Preload":
        return _preloading(rollout, inputs, notes)
    return rollout


def _preloaders(lbvms: Sequence[Lbvm]) -> list[Lbvm]:
    """The serving LBVMs whose agents preload (older agents switch without it, as they always did)."""
    return [lbvm for lbvm in _serving(lbvms) if lbvm.preloads]


def _preloading(
    rollout: ConfigRolloutStatus, inputs: _Inputs, notes: list[RolloutNote]
) -> ConfigRolloutStatus | ConfigDecision:
    """Nobody switches until every preloading LBVM has the new version ready; one that cannot fails it all.

    Returns the rollout moved on to its canary (or straight to Roll without
    one) once they all have, or the decision to wait or to roll back.
    """
    now, settings, version = inputs.now, inputs.spec.rollout, rollout.to_version
    preloaders = _preloaders(inputs.lbvms)
    refused = {lbvm.lbvm_id: lbvm.preload_error for lbvm in preloaders if lbvm.preload_version == version}
    refused = {lbvm_id: error for lbvm_id, error in refused.items() if error is not None}
    if refused:
        ids = sorted(refused)
        why = "; ".join(f"{lbvm_id}: {refused[lbvm_id]}" for lbvm_id in ids)
        rollout = rollout.model_copy(update={"failed": sorted(set(rollout.failed) | set(ids))})
        return _fail(
            rollout,
            f"{len(ids)} of {len(preloaders)} LBVM(s) could not preload config version {version}, so none switched "
            f"to it ({why})",
            inputs,
            notes,
        )
    ready = [lbvm for lbvm in preloaders if lbvm.preloaded(version)]
    progressed = len(ready) > rollout.applied
    rollout = rollout.model_copy(
        update={
            "applied": len(ready),
            "progress": f"{len(ready)} of {len(preloaders)} preloaded config version {version}",
            "last_progress_at": now if progressed else rollout.last_progress_at,
        }
    )
    if len(ready) >= len(preloaders):
        step = "Canary" if rollout.canary_lbvms else "Roll"
        message = (
            f"{len(ready)} LBVM(s) have config version {version} rendered and validated beside version "
            f"{rollout.from_version}; "
            + (f"telling the canary ({', '.join(rollout.canary_lbvms)}) to switch" if step == "Canary" else "rolling")
        )
        notes.append(RolloutNote("RolloutProgressed", f"config rollout {rollout.id}: {message}"))
        return rollout.model_copy(
            update={"step": step, "step_started_at": now, "last_progress_at": now, "applied": 0, "message": message}
        )
    deadline = rollout.last_progress_at + timedelta(seconds=settings.progress_deadline_seconds)
    if now > deadline:
        waited = int((now - rollout.last_progress_at).total_seconds())
        late = sorted(lbvm.lbvm_id for lbvm in preloaders if not lbvm.preloaded(version))
        return _fail(
            rollout,
            f"{len(ready)} of {len(preloaders)} LBVM(s) preloaded config version {version} after {waited} s "
            f"(progress deadline {settings.progress_deadline_seconds} s; not ready: {', '.join(late)})",
            inputs,
            notes,
        )
    waiting = (
        f"{len(preloaders) - len(ready)} LBVM(s) to preload config version {version} (fetch, render, validate) "
        f"by {_time(deadline)}; none switches before"
    )
    served = ServedConfig(version=rollout.from_version, digest=rollout.from_digest)
    return ConfigDecision(rollout.model_copy(update={"waiting_for": waiting}), served, tuple(notes))


def _enter_roll(
    rollout: ConfigRolloutStatus, why: str, inputs: _Inputs, notes: list[RolloutNote]
) -> ConfigRolloutStatus:
    message = f"{why}; telling the rest of the fleet config version {rollout.to_version}"
    notes.append(RolloutNote("RolloutProgressed", f"config rollout {rollout.id}: {message}"))
    return rollout.model_copy(
        update={"step": "Roll", "step_started_at": inputs.now, "last_progress_at": inputs.now, "message": message}
    )


def _paused(rollout: ConfigRolloutStatus, inputs: _Inputs, notes: list[RolloutNote]) -> ConfigDecision:
    """Held: only the numbers are brought up to date."""
    told = _told(rollout, inputs.lbvms)
    healthy = [lbvm for lbvm in told if _passes(lbvm, rollout.to_version)]
    rollout = rollout.model_copy(
        update={
            "applied": len(healthy),
            "progress": f"{len(healthy)} of {len(told)} on config version {rollout.to_version}",
        }
    )
    return ConfigDecision(rollout, ServedConfig(version=rollout.from_version, digest=rollout.from_digest), tuple(notes))


def _to_rollback(rollout: ConfigRolloutStatus, message: str, now: datetime) -> ConfigRolloutStatus:
    return rollout.model_copy(
        update={
            "state": "Progressing",
            "step": "Rollback",
            "rejected": True,
            "message": message,
            "step_started_at": now,
            "last_progress_at": now,
            "applied": 0,
            "paused_step": None,
            "paused_lbvms": None,
            "waiting_for": None,
        }
    )


def _fail(rollout: ConfigRolloutStatus, why: str, inputs: _Inputs, notes: list[RolloutNote]) -> ConfigDecision:
    message = (
        f"{why}; every LBVM is told config version {rollout.from_version} again; the spec keeps asking for "
        f"version {rollout.to_version}'s config: fix it or PATCH it back"
    )
    notes.append(
        RolloutNote("RolloutFailed", f"config rollout {rollout.id} failed at step {rollout.step}: {message}", "Warning")
    )
    return _rolling_back(_to_rollback(rollout, message, inputs.now), inputs, notes)


def _rolling_back(rollout: ConfigRolloutStatus, inputs: _Inputs, notes: list[RolloutNote]) -> ConfigDecision:
    served = ServedConfig(version=rollout.from_version, digest=rollout.from_digest)
    serving = _serving(inputs.lbvms)
    back = [lbvm for lbvm in serving if lbvm.applied_config_version == rollout.from_version]
    # Only LBVMs that can take a config count: one that is silent or starting applies what it is told when it is back.
    behind = [lbvm for lbvm in serving if lbvm.applied_config_version != rollout.from_version]
    if not behind:
        outcome = f"rolled back to config version {rollout.from_version}: {len(back)} LBVM(s) routable on it"
        notes.append(RolloutNote("RolledBack", f"config rollout {rollout.id}: {outcome}", "Warning"))
        done = rollout.model_copy(
            update={
                "state": "RolledBack",
                "step": None,
                "applied": len(back),
                "progress": f"{len(back)} of {len(serving)} back on config version {rollout.from_version}",
                "message": f"{rollout.message}. {outcome}",
                "finished_at": inputs.now,
                "waiting_for": None,
            }
        )
        return ConfigDecision(done, served, tuple(notes))
    progressed = len(back) > rollout.applied
    rollout = rollout.model_copy(
        update={
            "applied": len(back),
            "progress": f"{len(back)} of {len(serving)} back on config version {rollout.from_version}",
            "last_progress_at": inputs.now if progressed else rollout.last_progress_at,
        }
    )
    deadline = rollout.last_progress_at + timedelta(seconds=inputs.spec.rollout.progress_deadline_seconds)
    if inputs.now > deadline:
        message = (
            f"{rollout.message}. The rollback made no progress for {inputs.spec.rollout.progress_deadline_seconds} s: "
            f"{len(behind)} LBVM(s) not back on config version {rollout.from_version} "
            f"({', '.join(lbvm.lbvm_id for lbvm in behind)}); they keep being told it"
        )
        notes.append(
            RolloutNote("RolloutFailed", f"config rollout {rollout.id}: the rollback stalled: {message}", "Warning")
        )
        failed = rollout.model_copy(
            update={"state": "Failed", "step": None, "message": message, "finished_at": inputs.now, "waiting_for": None}
        )
        return ConfigDecision(failed, served, tuple(notes))
    waiting = f"{len(behind)} LBVM(s) to apply config version {rollout.from_version} again"
    return ConfigDecision(rollout.model_copy(update={"waiting_for": waiting}), served, tuple(notes))


def _end(
    rollout: ConfigRolloutStatus,
    state: RolloutState,
    message: str,
    inputs: _Inputs,
    notes: list[RolloutNote],
) -> ConfigRolloutStatus:
    notes.append(RolloutNote("RolloutSuperseded", f"config rollout {rollout.id}: {message}", "Warning"))
    return rollout.model_copy(
        update={"state": state, "step": None, "message": message, "finished_at": inputs.now, "waiting_for": None}
    )


def _refill(rollout: ConfigRolloutStatus, inputs: _Inputs) -> ConfigRolloutStatus:
    """Every canary left (scale-in, replacement): pick new ones among the LBVMs serving the previous version."""
    chosen = _pick(_candidates(inputs.lbvms, rollout.from_version), rollout.canary)
    if not chosen:
        return rollout
    return rollout.model_copy(update={"canary_lbvms": chosen, "last_progress_at": inputs.now})


# --- observations -------------------------------------------------------------------------------------------


def _told(rollout: ConfigRolloutStatus, lbvms: Sequence[Lbvm]) -> list[Lbvm]:
    """The live LBVMs told to_version now."""
    return [lbvm for lbvm in lbvms if lbvm.live and rollout.told_new(lbvm.lbvm_id)]


def _passes(lbvm: Lbvm, version: int) -> bool:
    return (
        lbvm.state == "Routable"
        and lbvm.agent_state == "ready"
        and lbvm.agent_error is None
        and lbvm.applied_config_version == version
    )


def _candidates(lbvms: Sequence[Lbvm], version: int) -> list[Lbvm]:
    """LBVMs that pass the gate on the previous version, none of their backends down where others see it up:
    whatever goes wrong on a canary afterwards is the new version's doing."""
    passing = [lbvm for lbvm in lbvms if lbvm.live and _passes(lbvm, version)]
    available = _available_backends(passing)
    return [lbvm for lbvm in passing if not _broken(lbvm, available)]


def _control(rollout: ConfigRolloutStatus, lbvms: Sequence[Lbvm]) -> list[Lbvm]:
    """The LBVMs still running the previous version: what a backend looks like without the new config."""
    return [lbvm for lbvm in _serving(lbvms) if lbvm.applied_config_version == rollout.from_version]


def _broken(lbvm: Lbvm, available: dict[str, str]) -> list[str]:
    """This LBVM's backends that are unavailable to it but available to the control group, in words."""
    if lbvm.backend_health is None:
        return []
    return [
        f"{b.name} {b.healthy_targets}/{b.targets} healthy ({available[b.name]})"
        for b in parse_backend_health_text(lbvm.backend_health)
        if b.unavailable and b.name in available
    ]


def _failures(rollout: ConfigRolloutStatus, told: Sequence[Lbvm], lbvms: Sequence[Lbvm]) -> dict[str, str]:
    """Why LBVMs told the new version fail the gate on it, by id (with the numbers).

    A backend unavailable on the new version fails a canary only during the bake, after it passed the gate:
    right after a reload the proxy may still carry a check's verdict from before (HAProxy keeps server state
    across reloads), and a target on its way back up must get its healthy checks first. Before that it
    simply does not pass yet, and the progress deadline bounds the wait.
    """
    to = rollout.to_version
    available_elsewhere = _available_backends(_control(rollout, lbvms))
    failures: dict[str, str] = {}
    for lbvm in told:
        on_new = lbvm.applied_config_version == to
        if lbvm.agent_error is not None:
            applied = "" if on_new else f" (still running version {lbvm.applied_config_version})"
            failures[lbvm.lbvm_id] = f"reported an error{applied}: {lbvm.agent_error[:200]}"
        elif on_new and lbvm.state != "Routable":
            failures[lbvm.lbvm_id] = f"went {lbvm.state} after applying it"
        elif on_new and lbvm.agent_state not in ("ready", None):
            failures[lbvm.lbvm_id] = f"agent {lbvm.agent_state} after applying it"
        elif on_new and rollout.step == "Bake" and (broken := _broken(lbvm, available_elsewhere)):
            failures[lbvm.lbvm_id] = (
                f"sees backend(s) unavailable that LBVMs on version {rollout.from_version} see available: "
                f"{', '.join(broken)}"
            )
    # A canary that left because it went unhealthy fails too (it is no longer in ``told``).
    for lbvm in lbvms:
        if (
            lbvm.lbvm_id in rollout.canary_lbvms
            and rollout.step in ("Canary", "Bake")
            and not lbvm.live
            and lbvm.drain_reason in ("unhealthy", "pending-timeout")
            and lbvm.applied_config_version == to
        ):
            failures[lbvm.lbvm_id] = f"was taken out ({lbvm.drain_reason}) after applying it"
    return failures


def _available_backends(control: Sequence[Lbvm]) -> dict[str, str]:
    """Backends some of these LBVMs see available: 'name' -> '2/2 healthy on lbvm-...'."""
    seen: dict[str, str] = {}
    for lbvm in control:
        if lbvm.backend_health is None:
            continue
        for backend in parse_backend_health_text(lbvm.backend_health):
            if not backend.unavailable and backend.targets > 0 and backend.name not in seen:
                seen[backend.name] = f"{backend.healthy_targets}/{backend.targets} healthy on {lbvm.lbvm_id}"
    return seen


def _serving(lbvms: Sequence[Lbvm]) -> list[Lbvm]:
    """Live, Routable LBVMs whose agent is ready: those that take and report a config."""
    return [lbvm for lbvm in lbvms if lbvm.live and lbvm.state == "Routable" and lbvm.agent_state in ("ready", None)]


def _pick(candidates: Sequence[Lbvm], count: int) -> list[str]:
    """``count`` LBVMs spread over zones, oldest first in each (deterministic: the same inputs pick the same)."""
    by_zone: dict[str, list[Lbvm]] = {}
    for lbvm in sorted(candidates, key=lambda lbvm: (lbvm.created_at, lbvm.lbvm_id)):
        by_zone.setdefault(lbvm.availability_zone or lbvm.subnet_id, []).append(lbvm)
    chosen: list[str] = []
    while len(chosen) < count and any(by_zone.values()):
        for zone in sorted(by_zone):
            if by_zone[zone] and len(chosen) < count:
                chosen.append(by_zone[zone].pop(0).lbvm_id)
    return sorted(chosen)


def _time(moment: datetime) -> str:
    return moment.strftime("%H:%M:%SZ")


__all__ = ["ConfigDecision", "apply_config_control", "config_digest", "decide_config_rollout"]
