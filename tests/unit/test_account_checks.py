"""Checks of a spec against account facts (pure; time passed in)."""

from __future__ import annotations

from datetime import UTC, datetime

from lbcp.logic.account_checks import (
    AccountFacts,
    CertificateFacts,
    SubnetFacts,
    check_against_account,
    facts_needed,
)
from lbcp.validation import parse_spec
from tests.unit.test_spec import CERT, valid

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SUBNET_A, SUBNET_B = "subnet-0123456789abcdef0", "subnet-0123456789abcdef1"


def facts(**overrides: object) -> AccountFacts:
    base: dict[str, object] = {
        "region": "us-east-1",
        "vpc_ids": frozenset({"vpc-0123456789abcdef0"}),
        "subnets": {
            SUBNET_A: SubnetFacts(SUBNET_A, "vpc-0123456789abcdef0", "us-east-1a"),
            SUBNET_B: SubnetFacts(SUBNET_B, "vpc-0123456789abcdef0", "us-east-1b"),
        },
        "certificates": {CERT: CertificateFacts(CERT, "ISSUED", datetime(2027, 1, 1, tzinfo=UTC))},
    }
    base.update(overrides)
    return AccountFacts(**base)  # type: ignore[arg-type]


def fields(account: AccountFacts, now: datetime = NOW) -> dict[str, str]:
    spec = parse_spec(valid())
    return {e.field: e.code for e in check_against_account(spec, facts_needed(spec), account, now)}


def test_everything_present_passes() -> None:
    assert fields(facts()) == {}


def test_unknown_vpc_subnet_and_certificate_are_named() -> None:
    assert fields(facts(vpc_ids=frozenset(), subnets={}, certificates={})) == {
        "vpcId": "not_found",
        "subnetIds[0]": "not_found",
        "subnetIds[1]": "not_found",
        "listeners[1].certificateArn": "not_found",
    }


def test_subnet_in_another_vpc() -> None:
    subnets = dict(facts().subnets)
    subnets[SUBNET_B] = SubnetFacts(SUBNET_B, "vpc-0fffffffffffffff0", "us-east-1b")
    assert fields(facts(subnets=subnets)) == {"subnetIds[1]": "wrong_vpc"}


def test_two_subnets_in_one_zone() -> None:
    subnets = dict(facts().subnets)
    subnets[SUBNET_B] = SubnetFacts(SUBNET_B, "vpc-0123456789abcdef0", "us-east-1a")
    assert fields(facts(subnets=subnets)) == {"subnetIds[1]": "same_zone", "subnetIds": "too_few_zones"}


def test_certificate_must_be_issued_and_unexpired_at_the_given_time() -> None:
    pending = {CERT: CertificateFacts(CERT, "PENDING_VALIDATION", None)}
    assert fields(facts(certificates=pending)) == {"listeners[1].certificateArn": "not_issued"}
    assert fields(facts(), now=datetime(2027, 1, 1, tzinfo=UTC)) == {"listeners[1].certificateArn": "expired"}
    assert fields(facts(), now=datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == {}


def test_a_change_looks_up_only_what_it_touches() -> None:
    before = parse_spec(valid())
    capacity_only = valid()
    capacity_only["capacity"] = {"min": 3, "max": 5}
    needed = facts_needed(parse_spec(capacity_only), before)
    assert (needed.vpc_id, needed.subnet_ids, needed.certificate_arns) == (None, (), ())

    new_certificate = valid()
    other = CERT.replace("0f1e2d3c", "aaaaaaaa")
    new_certificate["listeners"][1]["certificateArn"] = other
    new_certificate["subnetIds"] = [SUBNET_B, SUBNET_A]
    needed = facts_needed(parse_spec(new_certificate), before)
    assert needed.certificate_arns == (other,)
    assert needed.subnet_ids == (SUBNET_B, SUBNET_A)
    assert needed.vpc_id is None


def test_a_certificate_agents_cannot_export_is_refused() -> None:
    imported = {CERT: CertificateFacts(CERT, "ISSUED", datetime(2027, 1, 1, tzinfo=UTC), exportable=False)}
    assert fields(facts(certificates=imported)) == {"listeners[1].certificateArn": "not_exportable"}
