"""The perfect-foresight provisioner: the fewest instance hours that leave no minute overloaded (pure).

A baseline for policies, not a policy: it knows the whole trace in advance
and launches each LBVM exactly ``launchLatency`` before the minute it must
serve, so no real scaler can do better in the same fleet model
(``lbcp.scaling.sim.fleet``).

Each minute ``m`` needs ``need(m) = ceil(peak(m) / (capacity x utilization))``
LBVMs routable at its start, within ``[minimum, maximum]`` (a minute whose
peak exceeds what ``maximum`` LBVMs serve stays overloaded whatever the
provisioner does; those minutes are counted as unavoidable).

Cost, the simulator's: an LBVM is billed from its launch, ``launchLatency``
before it serves, to the end of its drain, ``drain`` after it stops serving;
the initial fleet serves from the start without a launch, and billing stops
at the end of the trace. So an LBVM serving the minutes ``[a, b)`` costs
``b - a`` minutes plus ``launchLatency + drain`` (less at either end of the
trace), and between two busy spells an LBVM is worth keeping through an idle
gap of ``g`` minutes exactly when ``g`` minutes cost no more than terminating
and relaunching it (``launchLatency + drain``).

The optimum decomposes by level: the ``k``-th LBVM is needed in the minutes
where ``need(m) >= k``; each level's busy spells are served by one LBVM
slot, bridging the gaps that are cheaper to bridge. Any schedule pays at
least this for every level (its ``k``-th slot must cover the same minutes,
and every spell of it pays a launch or the gap), and the levels nest, so the
sum is both a lower bound and achievable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lbcp.scaling.sim.fleet import FleetModel
from lbcp.scaling.sim.trace import MINUTE, Trace

_EPSILON = 1e-9


@dataclass(frozen=True)
class ForesightResult:
    minutes: int
    instance_hours: float
    unavoidable_overload_minutes: int
    launches: int
    need: tuple[int, ...]


def needed(peak: float, model: FleetModel, utilization: float = 1.0) -> int:
    """LBVMs a minute with this peak needs, within the model's bounds."""
    raw = math.ceil(peak / (model.capacity_rps * utilization) - _EPSILON)
    return max(model.minimum, min(model.maximum, raw))


def foresight(trace: Trace, model: FleetModel | None = None, utilization: float = 1.0) -> ForesightResult:
    model = model or FleetModel()
    loads = trace.per_minute()
    minutes = len(loads)
    need = [needed(load.peak, model, utilization) for load in loads]
    unavoidable = sum(load.peak > model.maximum * model.capacity_rps + _EPSILON for load in loads)
    relaunch = model.launch_latency_seconds + model.drain_seconds  # seconds a stop-and-start costs
    billed = 0.0  # seconds
    launches = 0
    for level in range(1, max(need, default=0) + 1):
        spells = _spells([n >= level for n in need])
        # Bridge every idle gap that costs no more than a relaunch.
        merged: list[tuple[int, int]] = []
        for start, end in spells:
            if merged and (start - merged[-1][1]) * MINUTE <= relaunch:
                merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        for start, end in merged:
            billed += (end - start) * MINUTE
            if start > 0:  # the initial fleet serves from t=0 without a launch
                billed += min(model.launch_latency_seconds, start * MINUTE)
                launches += 1
            if end < minutes:  # billing stops at the end of the trace
                billed += min(model.drain_seconds, (minutes - end) * MINUTE)
    return ForesightResult(
        minutes=minutes,
        instance_hours=billed / 3600,
        unavoidable_overload_minutes=unavoidable,
        launches=launches,
        need=tuple(need),
    )


def _spells(busy: list[bool]) -> list[tuple[int, int]]:
    """The ``[start, end)`` runs of True."""
    spells: list[tuple[int, int]] = []
    start: int | None = None
    for minute, on in enumerate(busy):
        if on and start is None:
            start = minute
        elif not on and start is not None:
            spells.append((start, minute))
            start = None
    if start is not None:
        spells.append((start, len(busy)))
    return spells
