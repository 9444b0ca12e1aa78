"""The repository's conditional writes, against DynamoDB (moto)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from lbcp.dal.repository import BeingDeleted, GenerationMismatch, LoadBalancerRepository, NameInUse
from lbcp.models.events import Event
from lbcp.models.resource import LoadBalancerRecord
from lbcp.models.scaling import ScalingState
from lbcp.service import initial_status
from lbcp.validation import parse_spec
from tests.conftest import Cloud

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def event(reason: str, minute: int = 0) -> Event:
    return Event(time=NOW.replace(minute=minute), type="Normal", reason=reason, message=reason)


def record(spec: dict[str, Any], lb_id: str = "lb-0123456789abcdef0") -> LoadBalancerRecord:
    parsed = parse_spec(spec)
    return LoadBalancerRecord(
        id=lb_id,
        generation=1,
        spec=parsed,
        status=initial_status(parsed),
        created_at=NOW,
        updated_at=NOW,
        desired_capacity=parsed.capacity.min,
    )


@pytest.fixture
def repository(cloud: Cloud) -> LoadBalancerRepository:
    return LoadBalancerRepository(cloud.dynamodb, cloud.table)


def test_a_second_create_with_the_same_name_writes_nothing(
    repository: LoadBalancerRepository, cloud: Cloud, spec: dict[str, Any]
) -> None:
    repository.create(record(spec), event("Created"))
    before = cloud.table_items()
    with pytest.raises(NameInUse) as caught:
        repository.create(record(spec, "lb-0123456789abcdef1"), event("Created"))
    assert caught.value.owner_id == "lb-0123456789abcdef0"
    assert cloud.table_items() == before


def test_desired_capacity_writes_are_conditional_on_the_scaling_version(
    repository: LoadBalancerRepository, spec: dict[str, Any]
) -> None:
    repository.create(record(spec), event("Created"))
    state = ScalingState(last_scale_out_at=NOW, last_decision="scaled out 2 -> 3")
    repository.set_desired_capacity("lb-0123456789abcdef0", 0, 3, state, event("ScaledOut", minute=1))
    stored = repository.get("lb-0123456789abcdef0")
    assert stored is not None
    assert (stored.desired_capacity, stored.scaling_version, stored.scaling) == (3, 1, state)
    assert stored.status.desired_capacity == 3
    with pytest.raises(GenerationMismatch):
        repository.set_desired_capacity("lb-0123456789abcdef0", 0, 4, state, event("ScaledOut"))
    reasons = [e.reason for e in repository.list_events("lb-0123456789abcdef0", 10, None).items]
    assert reasons == ["ScaledOut", "Created"]


def test_status_shows_the_desired_capacity_within_the_current_bounds(
    repository: LoadBalancerRepository, spec: dict[str, Any]
) -> None:
    repository.create(record(spec), event("Created"))
    repository.set_desired_capacity("lb-0123456789abcdef0", 0, 6, ScalingState(), None)
    narrower = parse_spec({**spec, "capacity": {"min": 2, "max": 4}})
    updated = repository.update_spec("lb-0123456789abcdef0", 1, narrower, NOW, event("SpecUpdated"))
    assert updated.desired_capacity == 6  # the scaler's decision is kept...
    assert updated.status.desired_capacity == 4  # ...and held inside the new bounds


def test_no_scaling_write_lands_on_a_load_balancer_being_deleted(
    repository: LoadBalancerRepository, spec: dict[str, Any]
) -> None:
    repository.create(record(spec), event("Created"))
    repository.request_deletion("lb-0123456789abcdef0", None, NOW, event("DeletionRequested"))
    with pytest.raises(BeingDeleted):
        repository.set_desired_capacity("lb-0123456789abcdef0", 0, 3, ScalingState(), event("ScaledOut"))


def test_every_generation_keeps_its_config_version_after_the_spec_moves_on(
    repository: LoadBalancerRepository, cloud: Cloud, spec: dict[str, Any]
) -> None:
    lb_id = "lb-0123456789abcdef0"
    repository.create(record(spec), event("Created"))
    first = repository.get_config(lb_id, 1)
    assert first is not None and first == parse_spec(spec)
    second = parse_spec({**spec, "capacity": {"min": 2, "max": 4}})
    repository.update_spec(lb_id, 1, second, NOW, event("SpecUpdated"), previous=first)
    third = parse_spec({**spec, "capacity": {"min": 3, "max": 4}})
    repository.update_spec(lb_id, 2, third, NOW, event("SpecUpdated"), previous=second)
    assert [repository.get_config(lb_id, v) for v in (1, 2, 3)] == [first, second, third]
    assert repository.get_config(lb_id, 4) is None
    # A stale writer cannot replace a version: the generation condition refuses it, and the version stays.
    with pytest.raises(GenerationMismatch):
        repository.update_spec(
            lb_id, 2, parse_spec({**spec, "capacity": {"min": 1, "max": 2}}), NOW, event("SpecUpdated")
        )
    assert repository.get_config(lb_id, 3) == third


def test_a_load_balancer_from_before_config_versions_gets_its_previous_one_stored_at_its_next_patch(
    repository: LoadBalancerRepository, cloud: Cloud, spec: dict[str, Any]
) -> None:
    lb_id = "lb-0123456789abcdef0"
    repository.create(record(spec), event("Created"))
    cloud.dynamodb.delete_item(
        TableName=cloud.table, Key={"pk": {"S": f"LB#{lb_id}"}, "sk": {"S": "CONFIG#0000000001"}}
    )
    assert repository.get_config(lb_id, 1) is None
    old = parse_spec(spec)
    repository.update_spec(
        lb_id, 1, parse_spec({**spec, "capacity": {"min": 2, "max": 4}}), NOW, event("SpecUpdated"), previous=old
    )
    assert repository.get_config(lb_id, 1) == old
    # ...and a stored version is never overwritten by the backfill.
    other = parse_spec({**spec, "capacity": {"min": 1, "max": 2}})
    repository.update_spec(
        lb_id, 2, parse_spec({**spec, "capacity": {"min": 3, "max": 4}}), NOW, event("SpecUpdated"), previous=other
    )
    assert repository.get_config(lb_id, 2) == parse_spec({**spec, "capacity": {"min": 2, "max": 4}})


def test_config_versions_are_removed_with_the_load_balancer(
    repository: LoadBalancerRepository, cloud: Cloud, spec: dict[str, Any]
) -> None:
    lb_id = "lb-0123456789abcdef0"
    repository.create(record(spec), event("Created"))
    repository.update_spec(lb_id, 1, parse_spec({**spec, "capacity": {"min": 2, "max": 4}}), NOW, event("SpecUpdated"))
    repository.request_deletion(lb_id, None, NOW, event("DeletionRequested"))
    repository.remove(lb_id, event("Deleted"))
    left = [item["sk"]["S"] for item in cloud.table_items() if item["pk"]["S"] == f"LB#{lb_id}"]
    assert left and all(sk.startswith("EVENT#") for sk in left)
