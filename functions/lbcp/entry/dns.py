"""Route53: the pool's alias record and the per-LBVM records of ``dns`` mode.

``dns`` mode publishes one multivalue-answer A record per routable LBVM under
the load balancer's name, told apart by ``SetIdentifier`` = the LBVM id, so
adding or removing one LBVM never touches the others' records.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import ClientError

DEFAULT_DNS_TTL_SECONDS: Final = 30


@dataclass(frozen=True)
class ZoneRecord:
    name: str  # without the trailing dot
    type: str
    set_identifier: str | None
    values: tuple[str, ...]
    alias_target: str | None  # the alias's DNS name, without the trailing dot
    raw: dict[str, Any]


def _strip(name: str) -> str:
    # Route53 returns names with a trailing dot and escapes some characters (e.g. '*' as \052).
    return name.rstrip(".").replace("\\052", "*").lower()


def _record(raw: dict[str, Any]) -> ZoneRecord:
    alias = raw.get("AliasTarget")
    return ZoneRecord(
        name=_strip(raw["Name"]),
        type=raw["Type"],
        set_identifier=raw.get("SetIdentifier"),
        values=tuple(value["Value"] for value in raw.get("ResourceRecords", [])),
        alias_target=_strip(alias["DNSName"]) if alias else None,
        raw=raw,
    )


def iter_zone_records(route53: Any, hosted_zone_id: str) -> Iterator[ZoneRecord]:
    """Every record of the zone (paginated)."""
    for page in route53.get_paginator("list_resource_record_sets").paginate(HostedZoneId=hosted_zone_id):
        for raw in page.get("ResourceRecordSets", []):
            yield _record(raw)


def records_named(route53: Any, hosted_zone_id: str, name: str, record_type: str = "A") -> list[ZoneRecord]:
    """The records of one name and type, read from where that name starts in the zone's order."""
    found: list[ZoneRecord] = []
    request: dict[str, Any] = {
        "HostedZoneId": hosted_zone_id,
        "StartRecordName": name,
        "StartRecordType": record_type,
    }
    wanted = _strip(name)
    while True:
        response = route53.list_resource_record_sets(**request)
        for raw in response.get("ResourceRecordSets", []):
            record = _record(raw)
            if record.name != wanted or record.type != record_type:
                return found
            found.append(record)
        if not response.get("IsTruncated"):
            return found
        request["StartRecordName"] = response["NextRecordName"]
        request["StartRecordType"] = response["NextRecordType"]
        if "NextRecordIdentifier" in response:
            request["StartRecordIdentifier"] = response["NextRecordIdentifier"]
        else:
            request.pop("StartRecordIdentifier", None)


def _change(route53: Any, hosted_zone_id: str, action: str, record_set: dict[str, Any], comment: str) -> None:
    route53.change_resource_record_sets(
        HostedZoneId=hosted_zone_id,
        ChangeBatch={"Comment": comment, "Changes": [{"Action": action, "ResourceRecordSet": record_set}]},
    )


def _delete(route53: Any, hosted_zone_id: str, record: ZoneRecord, comment: str) -> None:
    try:
        _change(route53, hosted_zone_id, "DELETE", record.raw, comment)
    except ClientError as exc:
        # Gone (or changed) since we listed it: the next listing decides.
        if exc.response.get("Error", {}).get("Code") != "InvalidChangeBatch":
            raise


def _alias_record_set(name: str, dns_name: str, canonical_zone_id: str) -> dict[str, Any]:
    return {
        "Name": name,
        "Type": "A",
        "AliasTarget": {"HostedZoneId": canonical_zone_id, "DNSName": dns_name, "EvaluateTargetHealth": True},
    }


def _lbvm_record_set(name: str, lbvm_id: str, address: str, ttl: int | None) -> dict[str, Any]:
    return {
        "Name": name,
        "Type": "A",
        "SetIdentifier": lbvm_id,
        "MultiValueAnswer": True,
        "TTL": ttl or DEFAULT_DNS_TTL_SECONDS,
        "ResourceRecords": [{"Value": address}],
    }


def ensure_alias(route53: Any, hosted_zone_id: str, name: str, dns_name: str, canonical_zone_id: str) -> None:
    current = [record for record in records_named(route53, hosted_zone_id, name) if record.set_identifier is None]
    if current and current[0].alias_target == _strip(dns_name):
        return  # one read instead of a write: Route53 allows five changes per second per account
    _change(
        route53,
        hosted_zone_id,
        "UPSERT",
        _alias_record_set(name, dns_name, canonical_zone_id),
        "lbcp: the load balancer's entry (NLB alias)",
    )


def _is_lbvm_record(record: ZoneRecord) -> bool:
    return record.set_identifier is not None and record.set_identifier.startswith("lbvm-")


def lbvm_records_named(route53: Any, hosted_zone_id: str, name: str) -> list[ZoneRecord]:
    return [record for record in records_named(route53, hosted_zone_id, name) if _is_lbvm_record(record)]


# An entry that changes mode moves its name from one kind of record to the other. Route 53
# refuses a simple (alias) record and multivalue records of the same name and type side by
# side, and deleting one kind before creating the other leaves the name answering nothing
# for a while; one change batch is atomic, so each switch is one batch.


def swap_alias_for_lbvm_records(
    route53: Any, hosted_zone_id: str, name: str, addresses: dict[str, str], ttl: int | None
) -> bool:
    """pool -> dns: the NLB alias goes and each serving LBVM's record comes, in one batch; False: no alias."""
    alias = [r for r in records_named(route53, hosted_zone_id, name) if r.alias_target and r.set_identifier is None]
    if not alias:
        return False
    changes = [{"Action": "DELETE", "ResourceRecordSet": record.raw} for record in alias]
    changes += [
        {"Action": "UPSERT", "ResourceRecordSet": _lbvm_record_set(name, lbvm_id, address, ttl)}
        for lbvm_id, address in sorted(addresses.items())
    ]
    route53.change_resource_record_sets(
        HostedZoneId=hosted_zone_id,
        ChangeBatch={"Comment": "lbcp: entry mode pool -> dns", "Changes": changes},
    )
    return True


def swap_lbvm_records_for_alias(
    route53: Any, hosted_zone_id: str, name: str, dns_name: str, canonical_zone_id: str
) -> int:
    """dns -> pool: the LBVMs' own records go and the NLB alias comes, in one batch; how many records went."""
    records = lbvm_records_named(route53, hosted_zone_id, name)
    if not records:
        return 0
    changes = [{"Action": "DELETE", "ResourceRecordSet": record.raw} for record in records]
    changes.append({"Action": "UPSERT", "ResourceRecordSet": _alias_record_set(name, dns_name, canonical_zone_id)})
    route53.change_resource_record_sets(
        HostedZoneId=hosted_zone_id,
        ChangeBatch={"Comment": "lbcp: entry mode dns -> pool", "Changes": changes},
    )
    return len(records)


def delete_alias(route53: Any, hosted_zone_id: str, name: str) -> bool:
    """Delete the alias record if present; True if there was one."""
    found = False
    for record in records_named(route53, hosted_zone_id, name):
        if record.alias_target is not None and record.set_identifier is None:
            _delete(route53, hosted_zone_id, record, "lbcp: load balancer deleted")
            found = True
    return found


def upsert_lbvm_record(
    route53: Any, hosted_zone_id: str, name: str, *, lbvm_id: str, address: str, ttl: int | None
) -> None:
    _change(
        route53, hosted_zone_id, "UPSERT", _lbvm_record_set(name, lbvm_id, address, ttl), f"lbcp: {lbvm_id} is routable"
    )


def delete_lbvm_record(route53: Any, hosted_zone_id: str, name: str, lbvm_id: str) -> bool:
    """Delete the LBVM's record if present (DELETE needs the exact current record)."""
    for record in records_named(route53, hosted_zone_id, name):
        if record.set_identifier == lbvm_id:
            _delete(route53, hosted_zone_id, record, f"lbcp: {lbvm_id} is no longer routable")
            return True
    return False


def delete_lbvm_records(route53: Any, hosted_zone_id: str, name: str) -> int:
    """Delete every per-LBVM record under ``name`` (teardown)."""
    records = lbvm_records_named(route53, hosted_zone_id, name)
    for record in records:
        _delete(route53, hosted_zone_id, record, "lbcp: load balancer deleted")
    return len(records)
