"""The control plane's DynamoDB table: one table, keys and indexes defined once.

The CDK stack, the local runtime and the tests all create the table from
these constants, so the key design lives in exactly one place.

Access patterns (item shapes in ``repository.py``):

==========================================  ===========================================
Access pattern                              Key condition
==========================================  ===========================================
Get a load balancer by id                   pk = ``LB#<id>``, sk = ``LB``
Resolve a name to an id (uniqueness claim)  pk = ``NAME#<name>``, sk = ``NAME``
List load balancers, ordered by name        GSI ``byKind``: gsi1pk = ``LB``, by gsi1sk (name)
Events of a load balancer, newest first     pk = ``LB#<id>``, sk begins_with ``EVENT#``, descending
Rollout history, newest first               pk = ``LB#<id>``, sk begins_with ``ROLLOUT#``, descending
One config version (a generation's spec)    pk = ``LB#<id>``, sk = ``CONFIG#<generation, 10 digits>``
A load balancer's failure streak            pk = ``LB#<id>``, sk = ``RETRY``
The scaler's per-period memory              pk = ``LB#<id>``, sk = ``SCALER`` (BatchGetItem)
Every failure streak (the reconciler's)     GSI ``byKind``: gsi1pk = ``RETRY``
Every LBVM of every load balancer           GSI ``byKindKeys``: gsi2pk = ``LBVM`` (keys), then BatchGetItem
Idempotency records of API creates          pk = ``idempotency#<function>``, sk = key hash
==========================================  ===========================================

``byKind`` projects every attribute, so each write of an item it holds is
paid twice. That suits records written at human rates (load balancers,
streaks), not LBVM records, which their heartbeats rewrite every minute:
they are listed through ``byKindKeys`` instead, which projects only keys.
An update that changes no key of an index costs that index nothing, so a
heartbeat's write costs only the table's; the listing reads the records
themselves with BatchGetItem (100 a call). LBVM records written before this
index existed carry ``byKind``'s keys; their next update moves them
(``lbcp.dal.lbvms``), and the listing reads both until then.

Creates write the load balancer, its name claim and its first event in one
transaction, each conditioned on not existing. Every later change to a load
balancer is a conditional update on its ``generation``. Events, rollout
history items and idempotency records expire through the table's TTL attribute.
Config versions do not: every generation's spec is written once, with the
write that creates it (conditioned on not existing), so that a staged config
change can serve LBVMs the previous version and return the fleet to it. They
are all kept, not pruned to the last few: a rejected version can hold the
fleet on one many generations old (each PATCH while it is rejected adds one),
a spec is a few kilobytes and PATCHes come at human rates; they are removed
with the load balancer.
The current rollouts are part of the status document (``status.rollout`` and
``status.configRollout``, written by the reconciler's conditional status write,
with their history items in the same transaction; both kinds share the
``ROLLOUT#`` history, told apart by their ``kind``); an operator's
pause/resume/abort is the ``rolloutControl`` attribute (template rollouts) or
``configRolloutControl`` (config rollouts), the API's only writes about
rollouts, which the planner carries out.
"""

from __future__ import annotations

from typing import Any, Final

PARTITION_KEY: Final = "pk"
SORT_KEY: Final = "sk"
GSI_BY_KIND: Final = "byKind"
GSI_BY_KIND_PARTITION_KEY: Final = "gsi1pk"
GSI_BY_KIND_SORT_KEY: Final = "gsi1sk"
GSI_BY_KIND_KEYS: Final = "byKindKeys"
GSI_BY_KIND_KEYS_PARTITION_KEY: Final = "gsi2pk"
GSI_BY_KIND_KEYS_SORT_KEY: Final = "gsi2sk"
TTL_ATTRIBUTE: Final = "expiresAt"

DEFAULT_TABLE_NAME: Final = "lbcp"


def create_table_request(table_name: str) -> dict[str, Any]:
    """The CreateTable request for the table (local runtime and tests).

    The CDK stack declares the same keys, index and stream through these
    constants; ``tests/cdk/test_stack.py`` checks that the two agree.
    """
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": SORT_KEY, "AttributeType": "S"},
            {"AttributeName": GSI_BY_KIND_PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": GSI_BY_KIND_SORT_KEY, "AttributeType": "S"},
            {"AttributeName": GSI_BY_KIND_KEYS_PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": GSI_BY_KIND_KEYS_SORT_KEY, "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": GSI_BY_KIND,
                "KeySchema": [
                    {"AttributeName": GSI_BY_KIND_PARTITION_KEY, "KeyType": "HASH"},
                    {"AttributeName": GSI_BY_KIND_SORT_KEY, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": GSI_BY_KIND_KEYS,
                "KeySchema": [
                    {"AttributeName": GSI_BY_KIND_KEYS_PARTITION_KEY, "KeyType": "HASH"},
                    {"AttributeName": GSI_BY_KIND_KEYS_SORT_KEY, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
        ],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    }


def create_table(dynamodb_client: Any, table_name: str) -> None:
    """Create the table with its TTL, as the stack does (idempotent)."""
    existing = dynamodb_client.list_tables().get("TableNames", [])
    if table_name not in existing:
        dynamodb_client.create_table(**create_table_request(table_name))
        dynamodb_client.get_waiter("table_exists").wait(TableName=table_name)
    dynamodb_client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
