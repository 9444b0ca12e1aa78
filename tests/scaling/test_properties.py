"""Properties every policy keeps, whatever the metrics: bounds, and no scale-in on missing data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from lbcp.models.scaling import Recommendation, ScalingState, WarmFloor
from lbcp.scaling.evaluate import decide
from lbcp.scaling.model import Current, Datapoint, MetricsWindow
from lbcp.scaling.policies import POLICIES
from lbcp.scaling.settings import PolicySettings
from tests.scaling.helpers import NOW, SUBNETS, current, settings

METRICS = ("cpu", "memory", "activeConnections")
# Per (subnet, metric): fresh value, stale value, or nothing.
series_state = st.one_of(
    st.tuples(st.just("fresh"), st.floats(min_value=0, max_value=5000)),
    st.tuples(st.just("stale"), st.floats(min_value=0, max_value=5000)),
    st.tuples(st.just("absent"), st.just(0.0)),
)


@dataclass(frozen=True)
class Scenario:
    policy: str
    settings: PolicySettings
    current: Current
    cells: dict[tuple[str, str], tuple[str, float]]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    minimum = draw(st.integers(1, 10))
    maximum = draw(st.integers(minimum, 30))
    desired = draw(st.integers(minimum, maximum))
    known = draw(st.booleans())
    serving = {s: draw(st.integers(0, desired)) for s in SUBNETS} if known else None
    cells = {(s, m): draw(series_state) for s in SUBNETS for m in METRICS}
    ago = st.one_of(st.none(), st.integers(0, 3600).map(lambda s: NOW - timedelta(seconds=s)))
    warm = None
    if draw(st.booleans()):
        warm = WarmFloor(
            floor=draw(st.integers(1, 40)), expires_at=NOW + timedelta(seconds=draw(st.integers(-600, 600)))
        )
    state = ScalingState(
        last_scale_out_at=draw(ago),
        last_scale_in_at=draw(ago),
        warm=warm,
        recommendations=[
            Recommendation(time=NOW - timedelta(seconds=draw(st.integers(1, 600))), desired=draw(st.integers(0, 40)))
            for _ in range(draw(st.integers(0, 4)))
        ],
    )
    return Scenario(
        policy=draw(st.sampled_from(sorted(POLICIES))),
        settings=settings(
            minimum,
            maximum,
            cooldownSeconds=draw(st.sampled_from([0, 60, 600])),
            zoneEvaluation=draw(st.sampled_from(["aggregate", "per-zone"])),
        ),
        current=current(desired, state, serving),
        cells=cells,
    )


def _window(cells: dict[tuple[str, str], tuple[str, float]]) -> MetricsWindow:
    series: dict[tuple[str, str], list[Datapoint]] = {}
    for key, (kind, value) in cells.items():
        if kind == "fresh":
            series[key] = [(NOW - timedelta(minutes=4), value * 2), (NOW - timedelta(minutes=2), value)]
        elif kind == "stale":
            series[key] = [(NOW - timedelta(minutes=10), value), (NOW - timedelta(minutes=4), value)]
    return MetricsWindow(series)


@hypothesis_settings(max_examples=400)
@given(scenario=scenarios())
def test_never_outside_min_and_max(scenario: Scenario) -> None:
    decision = decide(POLICIES[scenario.policy], _window(scenario.cells), scenario.current, scenario.settings, NOW)
    assert scenario.settings.minimum <= decision.desired <= scenario.settings.maximum


@hypothesis_settings(max_examples=400)
@given(scenario=scenarios())
def test_never_scales_in_on_missing_or_stale_data(scenario: Scenario) -> None:
    serving = scenario.current.serving
    expected = [s for s in SUBNETS if serving is None or serving[s] > 0]
    incomplete = any(scenario.cells[(s, m)][0] != "fresh" for s in expected for m in METRICS)
    has_data = any(kind == "fresh" for kind, _ in scenario.cells.values())
    if not incomplete and has_data:
        return  # complete data: scale-in is allowed
    decision = decide(POLICIES[scenario.policy], _window(scenario.cells), scenario.current, scenario.settings, NOW)
    assert decision.desired >= scenario.current.desired
