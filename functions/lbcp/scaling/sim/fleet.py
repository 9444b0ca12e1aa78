"""Replay a load trace through a fleet model and a policy, minute by minute (pure, deterministic).

The model, per one-minute evaluation period ``m`` (time ``60m`` to ``60m+60``):

1. LBVMs serve from ``launch + launchLatency``; a scale-in victim stops serving
   at once (deregistered first) and is billed until its drain ends; one still
   launching is cancelled outright.
2. **Overload minute**: the minute's peak offered load exceeds routable
   capacity (routable LBVMs x per-LBVM capacity).
3. Agents' metrics for the minute, in every subnet with a routable LBVM
   (the entry spreads load evenly over routable LBVMs): CPU = per-LBVM load /
   capacity (at most 100%), active connections = 1.5 per request/s of offered
   load (queued requests hold connections, so this is not capped), memory =
   30% + 0.2 x CPU.
4. At the minute's end the scaler evaluates the policy, through the same
   ``decide`` as production, seeing metrics ``metricLag`` periods old (the
   scaler averages whole minutes only, once they have ended), and the fleet follows the
   new desired capacity at once (launches, or victims from
   ``choose_scale_in_victim``).

Accounting: **instance hours** bill every LBVM from launch to termination
(launching and draining included); a **scaling action** is a decision that
changed desired capacity; a **flap** is an action whose latest earlier action
in the other direction was at most 15 minutes before it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from lbcp.models.scaling import ScalingState
from lbcp.models.spec import Capacity, Scaling
from lbcp.scaling.evaluate import decide
from lbcp.scaling.model import Current, Datapoint, MetricsWindow
from lbcp.scaling.policies import Policy, resolve
from lbcp.scaling.settings import settings_from_scaling
from lbcp.scaling.sim.trace import MINUTE, Trace
from lbcp.scaling.victim import LbvmRef, choose_scale_in_victims

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
FLAP_WINDOW_SECONDS = 15 * 60
# Minutes of metrics handed to a policy per evaluation (the scaler reads five).
WINDOW_MINUTES = 5
STEADY_UTILIZATION = 0.6


@dataclass(frozen=True)
class FleetModel:
    capacity_rps: float = 1000.0  # per LBVM at 100% CPU
    launch_latency_seconds: int = 180  # RunInstances to Routable: boot, agent, first heartbeat, registration
    drain_seconds: int = 60
    minimum: int = 2
    maximum: int = 40
    # LBVMs routable at t=0; when None, enough to serve the first minute at
    # STEADY_UTILIZATION (a fleet that was already running), within the bounds.
    initial: int | None = None
    zones: tuple[str, ...] = ("subnet-a", "subnet-b")
    metric_lag: int = 1  # periods between the end of a minute and the scaler seeing it
    connections_per_rps: float = 1.5
    seed: int = 0


@dataclass
class _Lbvm:
    lbvm_id: str
    zone: str
    launched_at: int
    ready_at: int
    stopped_serving_at: int | None = None
    terminated_at: int | None = None

    def serving(self, t: int) -> bool:
        return self.ready_at <= t and (self.stopped_serving_at is None or self.stopped_serving_at > t)

    def active(self, t: int) -> bool:
        return self.stopped_serving_at is None and (self.terminated_at is None or self.terminated_at > t)


@dataclass(frozen=True)
class Action:
    time_seconds: int
    previous: int
    desired: int
    message: str

    @property
    def direction(self) -> Literal["out", "in"]:
        return "out" if self.desired > self.previous else "in"


@dataclass(frozen=True)
class MinuteRecord:
    minute: int
    load_mean: float
    load_peak: float
    routable: int
    desired: int
    overloaded: bool


@dataclass(frozen=True)
class SimResult:
    policy: str
    minutes: int
    overload_minutes: int
    instance_hours: float
    scaling_actions: int
    flaps: int
    actions: tuple[Action, ...] = ()
    timeline: tuple[MinuteRecord, ...] = field(default=(), repr=False)

    @property
    def flaps_per_day(self) -> float:
        return self.flaps / (self.minutes / (24 * 60)) if self.minutes else 0.0

    @property
    def actions_per_hour(self) -> float:
        return self.scaling_actions / (self.minutes / 60) if self.minutes else 0.0

    def to_json(self) -> dict[str, float | int]:
        return {
            "overloadMinutes": self.overload_minutes,
            "instanceHours": round(self.instance_hours, 3),
            "scalingActions": self.scaling_actions,
            "flaps": self.flaps,
        }


def count_flaps(actions: tuple[Action, ...] | list[Action], window_seconds: int = FLAP_WINDOW_SECONDS) -> int:
    flaps = 0
    last_at: dict[str, int] = {}
    for action in actions:
        opposite = "in" if action.direction == "out" else "out"
        if opposite in last_at and action.time_seconds - last_at[opposite] <= window_seconds:
            flaps += 1
        last_at[action.direction] = action.time_seconds
    return flaps


def simulate(
    trace: Trace, policy: str | Policy, scaling: Scaling | None = None, model: FleetModel | None = None
) -> SimResult:
    model = model or FleetModel()
    chosen = resolve(policy) if isinstance(policy, str) else policy
    capacity = Capacity.model_validate({"min": model.minimum, "max": model.maximum})
    settings = settings_from_scaling(scaling or Scaling(), capacity)
    rng = random.Random(model.seed)
    loads = trace.per_minute()
    initial = model.initial if model.initial is not None else _steady_size(loads[0].mean, model)
    lbvms = [_Lbvm(f"vm-{i:04d}", model.zones[i % len(model.zones)], 0, 0) for i in range(initial)]
    desired = initial
    state = ScalingState()
    series: dict[tuple[str, str], list[Datapoint]] = {}
    actions: list[Action] = []
    timeline: list[MinuteRecord] = []
    overload = 0
    for minute, load in enumerate(loads):
        start = minute * MINUTE
        routable = [vm for vm in lbvms if vm.serving(start)]
        overloaded = load.peak > len(routable) * model.capacity_rps + 1e-9
        overload += overloaded
        _publish(series, routable, load.mean, EPOCH + timedelta(seconds=start), model)
        timeline.append(MinuteRecord(minute, load.mean, load.peak, len(routable), desired, overloaded))

        now_seconds = start + MINUTE
        now = EPOCH + timedelta(seconds=now_seconds)
        visible_before = now - timedelta(seconds=MINUTE * model.metric_lag)
        window = MetricsWindow(
            {
                key: [p for p in points[-(WINDOW_MINUTES + model.metric_lag) :] if p[0] < visible_before]
                for key, points in series.items()
            }
        )
        serving_now = [vm for vm in lbvms if vm.serving(now_seconds)]
        current = Current(
            desired=desired,
            subnets=model.zones,
            state=state,
            routable={
                zone: [EPOCH + timedelta(seconds=vm.ready_at) for vm in serving_now if vm.zone == zone]
                for zone in model.zones
            },
        )
        decision = decide(chosen, window, current, settings, now)
        state = decision.state
        if decision.desired != desired:
            actions.append(Action(now_seconds, desired, decision.desired, decision.message))
            _resize(lbvms, desired, decision.desired, now=now_seconds, model=model, rng=rng)
            desired = decision.desired
    end = trace.minutes * MINUTE
    billed = sum(min(vm.terminated_at or end, end) - vm.launched_at for vm in lbvms)
    return SimResult(
        policy=chosen.name,
        minutes=trace.minutes,
        overload_minutes=overload,
        instance_hours=billed / 3600,
        scaling_actions=len(actions),
        flaps=count_flaps(actions),
        actions=tuple(actions),
        timeline=tuple(timeline),
    )


def _steady_size(load: float, model: FleetModel) -> int:
    needed = math.ceil(load / (model.capacity_rps * STEADY_UTILIZATION) - 1e-9)
    return max(model.minimum, min(model.maximum, needed))


def _publish(
    series: dict[tuple[str, str], list[Datapoint]], routable: list[_Lbvm], load: float, at: datetime, model: FleetModel
) -> None:
    if not routable:
        return  # nothing serves, nothing publishes: the scaler sees missing metrics
    per_lbvm = load / len(routable)
    cpu = min(100.0, per_lbvm / model.capacity_rps * 100)
    values = {"cpu": cpu, "memory": 30 + 0.2 * cpu, "activeConnections": per_lbvm * model.connections_per_rps}
    for zone in {vm.zone for vm in routable}:
        for metric, value in values.items():
            series.setdefault((zone, metric), []).append((at, value))


def _resize(
    lbvms: list[_Lbvm], previous: int, desired: int, *, now: int, model: FleetModel, rng: random.Random
) -> None:
    active = [vm for vm in lbvms if vm.active(now)]
    if desired > previous:
        for _ in range(desired - previous):
            sizes = {zone: sum(vm.zone == zone for vm in active) for zone in model.zones}
            zone = min(model.zones, key=lambda z: (sizes[z], model.zones.index(z)))
            vm = _Lbvm(f"vm-{len(lbvms):04d}", zone, now, now + model.launch_latency_seconds)
            lbvms.append(vm)
            active.append(vm)
        return
    refs = [LbvmRef(vm.lbvm_id, vm.zone, "Routable" if vm.serving(now) else "Launching") for vm in active]
    by_id = {vm.lbvm_id: vm for vm in active}
    for victim in choose_scale_in_victims(refs, previous - desired, rng):
        vm = by_id[victim.lbvm_id]
        if victim.state == "Launching":
            vm.stopped_serving_at, vm.terminated_at = now, now  # cancelled before it served
        else:
            vm.stopped_serving_at, vm.terminated_at = now, now + model.drain_seconds
