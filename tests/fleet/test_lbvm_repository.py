"""LBVM records: round trip, conditional updates, listing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lbcp.dal.lbvms import LbvmRepository, from_item, to_item
from lbcp.models.lbvm import Lbvm, LbvmConflict
from tests.conftest import Cloud

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def marker(lbvm_id: str = "lbvm-0123456789ab", lb_id: str = "lb-0123456789abcdef0") -> Lbvm:
    return Lbvm(
        lbvm_id=lbvm_id,
        load_balancer_id=lb_id,
        subnet_id="subnet-0123456789abcdef0",
        availability_zone="us-east-1a",
        state="Launching",
        state_since=NOW,
        version=1,
        launched_generation=1,
        launch_reason="capacity 0 -> 2",
        created_at=NOW,
    )


def test_items_round_trip_with_flat_attributes() -> None:
    lbvm = marker().model_copy(update={"active_connections": 7, "instance_id": "i-0123456789abcdef0"})
    item = to_item(lbvm)
    assert item["state"] == {"S": "Launching"}
    assert item["activeConnections"] == {"N": "7"}
    assert item["gsi1sk"] == {"S": "lb-0123456789abcdef0#lbvm-0123456789ab"}
    assert "callbackToken" not in item
    assert from_item(item) == lbvm


@pytest.fixture
def repository(cloud: Cloud) -> LbvmRepository:
    return LbvmRepository(cloud.dynamodb, cloud.table)


def test_a_marker_is_written_once(repository: LbvmRepository) -> None:
    repository.create(marker())
    with pytest.raises(LbvmConflict):
        repository.create(marker())


def test_updates_are_conditional_on_the_version_and_can_remove_fields(repository: LbvmRepository) -> None:
    repository.create(marker())
    current = repository.get("lb-0123456789abcdef0", "lbvm-0123456789ab")
    assert current is not None
    pending = repository.update(current, state="Pending", instance_id="i-1", callback_token="t", state_since=NOW)
    assert repository.get("lb-0123456789abcdef0", "lbvm-0123456789ab") == pending
    with pytest.raises(LbvmConflict):
        repository.update(current, state="Routable")  # stale version
    cleared = repository.update(pending, callback_token=None)
    stored = repository.get("lb-0123456789abcdef0", "lbvm-0123456789ab")
    assert stored == cleared
    assert stored is not None and stored.callback_token is None and stored.version == 3


def test_listing_spans_load_balancers(repository: LbvmRepository) -> None:
    for index in range(3):
        repository.create(marker(f"lbvm-00000000000{index}", "lb-0123456789abcdef0"))
    repository.create(marker("lbvm-0000000000ff", "lb-0123456789abcdef1"))
    assert sorted(lbvm.lbvm_id for lbvm in repository.list_all()) == [
        "lbvm-000000000000",
        "lbvm-000000000001",
        "lbvm-000000000002",
        "lbvm-0000000000ff",
    ]
    assert [lbvm.lbvm_id for lbvm in repository.list_for("lb-0123456789abcdef1")] == ["lbvm-0000000000ff"]
