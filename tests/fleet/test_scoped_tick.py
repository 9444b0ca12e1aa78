"""A tick for some load balancers observes only them; a full tick still lists the account once.

Against moto in-process, with the real reconciler: every AWS call its clients
make is recorded (a botocore ``before-parameter-build`` hook, see
``test_reconciler_backoff.Faults``), so the tests assert on the requests
themselves: their filters, keys and index names.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import boto3

from lbcp import LB_ID_TAG_KEY
from lbcp.reconcile.compute import FILTER_VALUES_LIMIT, PRODUCT_TAG_FILTER, Ec2Compute
from tests.conftest import REGION, Cloud
from tests.fleet.test_reconciler_backoff import Build, world  # noqa: F401

EC2_LISTINGS = ("DescribeInstances", "DescribeNetworkInterfaces")


def calls(w: Any, service: str, *operations: str) -> list[dict[str, Any]]:
    return [params for svc, op, params in w.faults.calls if svc == service and op in operations]


def owner_values(params: dict[str, Any]) -> list[str] | None:
    """The load balancer ids a listing filtered on (None: not filtered by owner)."""
    for entry in params.get("Filters", []):
        if entry["Name"] == f"tag:{LB_ID_TAG_KEY}":
            return list(entry["Values"])
    return None


def test_a_tick_for_one_load_balancer_reads_nothing_of_the_others(world: Build) -> None:  # noqa: F811
    w, (a, b) = world(["a-one", "b-other"])
    w.heartbeat()
    w.faults.calls.clear()
    report = w.reconciler.tick({a})
    assert report.load_balancers == 1
    assert set(report.plans) == {a}
    assert w.record(a).status.observed_generation == 1  # it converged from what it observed
    assert w.record(b).status.observed_generation != 1  # not touched
    # EC2: listings filtered by the product tag and A's owner tag, never the account-wide listing.
    listings = calls(w, "ec2", *EC2_LISTINGS)
    assert {op for svc, op, _ in w.faults.calls if svc == "ec2" and op in EC2_LISTINGS} == set(EC2_LISTINGS)
    for params in listings:
        assert PRODUCT_TAG_FILTER[0] in params["Filters"]
        assert owner_values(params) == [a]
    # DynamoDB: no listing of any index (records, streaks, LBVMs of every load balancer) ...
    assert [p for p in calls(w, "dynamodb", "Query", "Scan") if "IndexName" in p or "TableName" not in p] == []
    # ... the record and streak of A by key, and A's LBVMs by its partition.
    batches = calls(w, "dynamodb", "BatchGetItem")
    keys = [key["pk"]["S"] for params in batches for table in params["RequestItems"].values() for key in table["Keys"]]
    assert sorted(keys) == [f"LB#{a}", f"LB#{a}"]
    partitions = {p["ExpressionAttributeValues"][":pk"]["S"] for p in calls(w, "dynamodb", "Query")}
    assert partitions <= {f"LB#{a}"}
    # Nothing at all names B.
    assert b not in repr(w.faults.calls)


def test_a_full_tick_lists_the_account_once(world: Build) -> None:  # noqa: F811
    w, (a, b) = world(["a-one", "b-other"])
    w.heartbeat()
    w.faults.calls.clear()
    report = w.reconciler.tick()
    assert set(report.plans) == {a, b}
    listings = calls(w, "ec2", *EC2_LISTINGS)
    assert len(listings) == 2
    assert all(params["Filters"] == PRODUCT_TAG_FILTER for params in listings)
    # Batch reads of LBVM records only (the keys-only index's listing), never of records or streaks by key.
    batches = calls(w, "dynamodb", "BatchGetItem")
    keys = [key["sk"]["S"] for params in batches for table in params["RequestItems"].values() for key in table["Keys"]]
    assert keys and all(key.startswith("LBVM#") for key in keys)
    queries = [p for p in calls(w, "dynamodb", "Query") if "IndexName" in p]
    indexed = [(p["IndexName"], p["ExpressionAttributeValues"][":kind"]["S"]) for p in queries]
    assert sorted(indexed) == [("byKind", "LB"), ("byKind", "LBVM"), ("byKind", "RETRY"), ("byKindKeys", "LBVM")]
    assert all(":low" not in p["ExpressionAttributeValues"] for p in queries)  # unbounded: the whole fleet


def test_a_scoped_tick_finds_a_backing_off_streak_by_key(world: Build) -> None:  # noqa: F811
    w, (poison, healthy) = world(["a-poison", "b-healthy"])
    w.faults.poisoned.add(poison)
    first = w.tick({poison, healthy})
    assert set(first.failures) == {poison}
    # Within its first delay (one tick at least): the streak was read by key, not from the listing.
    w.advance(first.streaks[poison].not_before - w.clock[0] - timedelta(seconds=1))
    again = w.tick({poison, healthy})
    assert again.backed_off == [poison]
    assert set(again.plans) == {healthy}


def test_owner_filters_are_chunked_at_the_filter_value_limit(cloud: Cloud) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    seen: list[dict[str, Any]] = []
    ec2.meta.events.register(
        "before-parameter-build.ec2.*", lambda params, model, **_: seen.append({"op": model.name, **params})
    )
    ids = [f"lb-{index:017x}" for index in range(2 * FILTER_VALUES_LIMIT + 50)]
    instances, interfaces = Ec2Compute(ec2).observe(ids)
    assert instances == [] and interfaces == []
    for operation in EC2_LISTINGS:
        chunks = [owner_values(params) or [] for params in seen if params["op"] == operation]
        assert [len(chunk) for chunk in chunks] == [FILTER_VALUES_LIMIT, FILTER_VALUES_LIMIT, 50]
        assert sorted(value for chunk in chunks for value in chunk) == sorted(ids)
    seen.clear()
    assert Ec2Compute(ec2).observe([]) == ([], [])
    assert seen == []


def test_scoped_observe_returns_only_the_named_load_balancers_instances(world: Build) -> None:  # noqa: F811
    w, (a, b) = world(["a-one", "b-other"])
    for lb_id in (a, b):
        tags = [{"Key": "lbcp:product", "Value": "lbcp"}, {"Key": LB_ID_TAG_KEY, "Value": lb_id}]
        w.cloud.ec2.create_network_interface(
            SubnetId=w.cloud.account.subnet_ids[0],
            TagSpecifications=[{"ResourceType": "network-interface", "Tags": tags}],
        )
    compute = Ec2Compute(w.cloud.ec2)
    instances, interfaces = compute.observe([a])
    assert len(instances) == 2 and len(interfaces) == 1
    assert {i.load_balancer_id for i in instances} == {a}
    assert {n.load_balancer_id for n in interfaces} == {a}
    # The account-wide listing has both (and whatever other tests of this session left in the account).
    every_instance, every_interface = compute.observe()
    assert {a, b} <= {i.load_balancer_id for i in every_instance}
    assert {a, b} <= {n.load_balancer_id for n in every_interface}


def test_a_tick_for_more_than_a_few_reads_their_lbvms_by_the_key_range_they_span(world: Build) -> None:  # noqa: F811
    names = [f"{letter}-lb" for letter in "abcdefg"]
    w, ids = world(names)
    w.heartbeat()
    w.faults.calls.clear()
    some = set(sorted(ids)[:6])
    report = w.reconciler.tick(some)
    assert set(report.plans) == some
    listings = [p for p in calls(w, "dynamodb", "Query") if p.get("IndexName") == "byKindKeys"]
    assert [p["ExpressionAttributeValues"][":low"]["S"] for p in listings] == [f"{min(some)}#"]
    assert [p["ExpressionAttributeValues"][":high"]["S"] for p in listings] == [f"{max(some)}$"]
    # One load balancer's partition is queried only under its lease, to act (the consistent re-read).
    partitions = [
        p["ExpressionAttributeValues"][":pk"]["S"] for p in calls(w, "dynamodb", "Query") if "IndexName" not in p
    ]
    assert sorted(partitions) == sorted(f"LB#{lb_id}" for lb_id in report.acted)
