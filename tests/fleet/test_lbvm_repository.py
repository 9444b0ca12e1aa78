"""LBVM records: round trip, conditional updates, listing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bench.capacity_units import CapacityMeter
from lbcp.dal.lbvms import LbvmRepository, from_item, lbvm_key, to_item
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
    # Listed through the keys-only index, not byKind (which would be written again at every heartbeat).
    assert item["gsi2pk"] == {"S": "LBVM"}
    assert item["gsi2sk"] == {"S": "lb-0123456789abcdef0#lbvm-0123456789ab"}
    assert "gsi1pk" not in item and "gsi1sk" not in item
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
    assert [lbvm.lbvm_id for lbvm in repository.list_all({"lb-0123456789abcdef1"})] == ["lbvm-0000000000ff"]


def _legacy_item(lbvm: Lbvm) -> dict[str, object]:
    """The record as versions before the keys-only index wrote it: in byKind, whole."""
    item = {name: value for name, value in to_item(lbvm).items() if name not in ("gsi2pk", "gsi2sk")}
    return {**item, "gsi1pk": {"S": "LBVM"}, "gsi1sk": {"S": f"{lbvm.load_balancer_id}#{lbvm.lbvm_id}"}}


def test_records_written_before_the_keys_only_index_are_listed_and_move_at_their_next_update(
    cloud: Cloud, repository: LbvmRepository
) -> None:
    old = marker("lbvm-00000000000a")
    cloud.dynamodb.put_item(TableName=cloud.table, Item=_legacy_item(old))
    repository.create(marker("lbvm-00000000000b"))
    listed = list(repository.list_all())
    assert [lbvm.lbvm_id for lbvm in listed] == ["lbvm-00000000000a", "lbvm-00000000000b"]
    assert listed[0] == old
    moved = repository.update(listed[0], state="Pending", state_since=NOW)
    item = cloud.dynamodb.get_item(TableName=cloud.table, Key=lbvm_key(old.load_balancer_id, old.lbvm_id))["Item"]
    assert "gsi1pk" not in item and "gsi1sk" not in item
    assert item["gsi2sk"] == {"S": f"{old.load_balancer_id}#{old.lbvm_id}"}
    assert [lbvm for lbvm in repository.list_all() if lbvm.lbvm_id == old.lbvm_id] == [moved]
    assert repository.batch_gets >= 2  # the moved record is now read by its key


def test_a_heartbeats_write_costs_no_index_write_and_a_legacy_records_move_costs_two_once(
    cloud: Cloud, repository: LbvmRepository
) -> None:
    """byKind projects whole records: a heartbeat written there would cost as much again as the table's write."""
    import boto3

    probe = boto3.client("dynamodb", region_name="us-east-1")
    meter = CapacityMeter(probe=probe)
    metered = LbvmRepository(meter.watch(boto3.client("dynamodb", region_name="us-east-1")), cloud.table)
    repository.create(marker("lbvm-00000000000b"))
    current = metered.get("lb-0123456789abcdef0", "lbvm-00000000000b")
    assert current is not None
    meter.reset()
    for sequence in range(1, 4):
        beat = {"heartbeat_sequence": sequence, "active_connections": sequence, "last_heartbeat_at": NOW}
        current = metered.update(current, **beat)
    assert meter.write_units == 3
    assert meter.index_write_units == 0
    old = marker("lbvm-00000000000a")
    cloud.dynamodb.put_item(TableName=cloud.table, Item=_legacy_item(old))
    legacy = metered.get(old.load_balancer_id, old.lbvm_id)
    assert legacy is not None
    meter.reset()
    moved = metered.update(legacy, heartbeat_sequence=1)
    assert meter.index_write_units == 2  # out of byKind, into byKindKeys
    meter.reset()
    metered.update(moved, heartbeat_sequence=2)
    assert meter.index_write_units == 0


def test_a_listing_of_some_load_balancers_reads_only_the_key_range_their_ids_span(
    cloud: Cloud, repository: LbvmRepository
) -> None:
    """A work-queue shard is a sorted run of ids: its listing reads its own keys, not the fleet's."""
    ids = [f"lb-0123456789abcde{index:02d}" for index in range(6)]
    for index, lb_id in enumerate(ids):
        repository.create(marker(f"lbvm-0000000000{index:02d}", lb_id))
    legacy = marker("lbvm-0000000000aa", ids[2])
    cloud.dynamodb.put_item(TableName=cloud.table, Item=_legacy_item(legacy))
    # An id that is a prefix of another must not pull the other's keys in (``#`` ends the id in the sort key).
    repository.create(marker("lbvm-0000000000bb", ids[3] + "0"))
    queries: list[dict[str, object]] = []
    cloud.dynamodb.meta.events.register(
        "before-parameter-build.dynamodb.Query", lambda params, **_: queries.append(dict(params))
    )
    listed = list(repository.list_all({ids[1], ids[3], ids[2]}))
    assert [(lbvm.load_balancer_id, lbvm.lbvm_id) for lbvm in listed] == [
        (ids[1], "lbvm-000000000001"),
        (ids[2], "lbvm-000000000002"),
        (ids[2], "lbvm-0000000000aa"),
        (ids[3], "lbvm-000000000003"),
    ]
    assert {params["IndexName"] for params in queries} == {"byKind", "byKindKeys"}
    for params in queries:
        values = params["ExpressionAttributeValues"]
        assert isinstance(values, dict)
        assert (values[":low"], values[":high"]) == ({"S": f"{ids[1]}#"}, {"S": f"{ids[3]}$"})
    assert list(repository.list_all(set())) == []
