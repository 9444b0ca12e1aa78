"""The warm request: validation and the floor it stores (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from lbcp.errors import SpecRejected
from lbcp.models.resource import LoadBalancerRecord, scaling_status
from lbcp.models.scaling import WarmRequest
from lbcp.scaling.warming import plan_warm
from lbcp.service import initial_status
from lbcp.validation import parse_spec

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SPEC: dict[str, Any] = {
    "name": "web",
    "type": "classic",
    "vpcId": "vpc-0123456789abcdef0",
    "subnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "listeners": [{"protocol": "TCP", "port": 80, "defaultBackend": "app"}],
    "backends": [{"name": "app", "targets": [{"host": "10.0.1.10", "port": 8080}]}],
    "capacity": {"min": 2, "max": 10},
}


def record(desired: int = 3) -> LoadBalancerRecord:
    spec = parse_spec(SPEC)
    return LoadBalancerRecord(
        id="lb-0123456789abcdef0",
        generation=4,
        spec=spec,
        status=initial_status(spec),
        created_at=NOW,
        updated_at=NOW,
        desired_capacity=desired,
    )


def request(**fields: Any) -> WarmRequest:
    return WarmRequest.model_validate(fields)


def test_a_floor_until_a_time() -> None:
    plan = plan_warm(record(3), request(floor=8, expiresAt="2026-11-28T18:00:00+01:00", reason="sale"), "bob", NOW)
    assert (plan.warm.floor, plan.warm.expires_at, plan.desired) == (8, datetime(2026, 11, 28, 17, tzinfo=UTC), 8)
    assert plan.event.reason == "WarmRequested"
    assert plan.event.generation == 4
    assert plan.event.message == (
        "warm floor 8 until 2026-11-28T17:00:00Z by bob (sale): desired 3 -> 8; "
        "the scaler keeps at least 8 LBVMs until then"
    )


def test_extra_lbvms_for_a_duration() -> None:
    plan = plan_warm(record(3), request(extra=2, durationSeconds=3600), None, NOW)
    assert (plan.warm.floor, plan.warm.expires_at, plan.desired) == (5, NOW + timedelta(hours=1), 5)


def test_a_floor_below_the_current_capacity_changes_nothing_now() -> None:
    plan = plan_warm(record(6), request(floor=4, durationSeconds=600), None, NOW)
    assert plan.desired == 6
    assert "desired stays 6" in plan.event.message


@pytest.mark.parametrize(
    ("fields", "field", "unprocessable"),
    [
        ({"durationSeconds": 600}, "floor", False),
        ({"floor": 3, "extra": 1, "durationSeconds": 600}, "floor", False),
        ({"floor": 3}, "expiresAt", False),
        ({"floor": 3, "durationSeconds": 600, "expiresAt": "2026-11-28T13:00:00Z"}, "expiresAt", False),
        ({"floor": 11, "durationSeconds": 600}, "floor", True),
        ({"extra": 8, "durationSeconds": 600}, "extra", True),
        ({"floor": 3, "expiresAt": "2026-11-28T11:00:00Z"}, "expiresAt", True),
        ({"floor": 3, "expiresAt": "2026-12-28T11:00:00Z"}, "expiresAt", True),
        ({"floor": 3, "expiresAt": "2026-11-28T13:00:00"}, "expiresAt", False),
    ],
)
def test_bad_requests_name_their_field(fields: dict[str, Any], field: str, unprocessable: bool) -> None:
    with pytest.raises(SpecRejected) as caught:
        plan_warm(record(3), request(**fields), None, NOW)
    assert caught.value.errors[0].field == field
    assert caught.value.unprocessable is unprocessable


@pytest.mark.parametrize(
    "fields",
    [
        {"floor": "3", "durationSeconds": 600},
        {"floor": 0, "durationSeconds": 600},
        {"floor": 3, "durationSeconds": 30},
        {"floor": 3, "durationSeconds": 600, "colour": "red"},
        {"floor": 3, "duration_seconds": 600},
    ],
)
def test_the_request_shape_is_strict(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        WarmRequest.model_validate(fields)


def test_scaling_status_shows_a_floor_only_while_it_holds() -> None:
    plan = plan_warm(record(3), request(floor=5, durationSeconds=600, reason="sale"), "bob", NOW)
    warmed = record(5).model_copy(update={"scaling": record(5).scaling.model_copy(update={"warm": plan.warm})})
    assert scaling_status(warmed, NOW) == {
        "policy": "default",
        "warm": {
            "floor": 5,
            "expiresAt": "2026-11-28T12:10:00Z",
            "reason": "sale",
            "requestedBy": "bob",
            "requestedAt": "2026-11-28T12:00:00Z",
        },
        "lastDecision": None,
        "lastScaleOutAt": None,
        "lastScaleInAt": None,
    }
    assert scaling_status(warmed, NOW + timedelta(minutes=10))["warm"] is None
