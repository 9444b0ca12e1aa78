"""The spec's scaling section: the settings policies read, their defaults and their rules."""

from __future__ import annotations

from typing import Any

import pytest

from lbcp.errors import SpecRejected
from lbcp.validation import parse_spec
from tests.scaling.test_warming import SPEC


def spec_with(**scaling: Any) -> dict[str, Any]:
    return {**SPEC, "scaling": scaling}


def test_defaults() -> None:
    scaling = parse_spec(SPEC).scaling
    assert scaling.policy == "default"
    assert (scaling.cooldown_seconds, scaling.scale_in_stabilization_seconds, scaling.tolerance) == (600, 300, 0.1)
    assert [(s.above_by_percent, s.add) for s in scaling.steps] == [(0, 1), (10, 2), (20, 3)]
    assert (scaling.zone_evaluation, scaling.min_per_zone) == ("aggregate", 0)
    assert scaling.metrics.cpu is not None
    assert (scaling.metrics.cpu.target, scaling.metrics.cpu.weight) == (70.0, 1.0)
    assert scaling.metrics.cpu.peak == 90.0
    assert (scaling.noise_window_seconds, scaling.noise_sigmas, scaling.smoothing_minutes) == (1800, 2.25, 4)
    assert (scaling.burst_percent, scaling.scale_out_tolerance, scaling.scale_out_headroom) == (30.0, 0.05, 0.05)


@pytest.mark.parametrize(
    ("scaling", "field"),
    [
        ({"steps": [{"aboveByPercent": 5.0, "add": 1}]}, "scaling.steps[0].aboveByPercent"),
        (
            {"steps": [{"aboveByPercent": 0.0, "add": 1}, {"aboveByPercent": 0.0, "add": 2}]},
            "scaling.steps[1].aboveByPercent",
        ),
        ({"steps": [{"aboveByPercent": 0.0, "add": 3}, {"aboveByPercent": 10.0, "add": 2}]}, "scaling.steps[1].add"),
        ({"steps": []}, "scaling.steps"),
        ({"minPerZone": 6}, "scaling.minPerZone"),  # 6 x 2 subnets > max 10
        ({"tolerance": 0.6}, "scaling.tolerance"),
        ({"zoneEvaluation": "per-az"}, "scaling.zoneEvaluation"),
        (
            {"metrics": {"cpu": {"scaleOutAbove": 80.0, "scaleInBelow": 40.0, "weight": 1.5}}},
            "scaling.metrics.cpu.weight",
        ),
        (
            {"metrics": {"cpu": {"scaleOutAbove": 80.0, "scaleInBelow": 40.0, "weight": "1"}}},
            "scaling.metrics.cpu.weight",
        ),
        (
            {
                "policy": "target-tracking",
                "metrics": {
                    "cpu": {"scaleOutAbove": 80.0, "scaleInBelow": 40.0},
                    "memory": None,
                    "activeConnections": None,
                },
            },
            "scaling.metrics",
        ),
        (
            # "default" is noise-aware, which sizes under peaks: one metric must have one.
            {
                "metrics": {
                    "cpu": {"scaleOutAbove": 80.0, "scaleInBelow": 40.0, "target": 70.0},
                    "memory": None,
                    "activeConnections": None,
                },
            },
            "scaling.metrics",
        ),
        (
            {"metrics": {"cpu": {"scaleOutAbove": 80.0, "scaleInBelow": 40.0, "peak": 120.0}}},
            "scaling.metrics.cpu.peak",
        ),
        ({"noiseSigmas": 6}, "scaling.noiseSigmas"),
    ],
)
def test_bad_scaling_settings_name_their_field(scaling: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecRejected) as caught:
        parse_spec(spec_with(**scaling))
    assert field in [error.field for error in caught.value.errors]


def test_a_vote_policy_needs_no_target() -> None:
    metrics = {"cpu": {"scaleOutAbove": 80.0, "scaleInBelow": 40.0}, "memory": None, "activeConnections": None}
    assert parse_spec(spec_with(policy="vote", metrics=metrics)).scaling.policy == "vote"
