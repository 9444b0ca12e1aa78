"""Checks of a spec against account facts (pure; time passed in)."""

from __future__ import annotations

from datetime import UTC, datetime

from lbcp.logic.account_checks import (
    AccountFacts,
    CertificateFacts,
    ImageFacts,
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


IMAGE_X86, IMAGE_ARM = "ami-0123456789abcdef0", "ami-0fedcba9876543210"
IMAGES = {
    IMAGE_X86: ImageFacts(IMAGE_X86, "available", "x86_64"),
    IMAGE_ARM: ImageFacts(IMAGE_ARM, "available", "arm64"),
}


def image_errors(instance: dict[str, str], images: dict[str, ImageFacts] = IMAGES) -> dict[str, str]:
    spec = parse_spec({**valid(), "instance": instance})
    return {e.field: e.code for e in check_against_account(spec, facts_needed(spec), facts(images=images), NOW)}


def test_an_image_must_exist_be_available_and_fit_the_instance_type() -> None:
    assert image_errors({"type": "c6i.large", "imageId": IMAGE_X86}) == {}
    assert image_errors({"type": "c7g.large", "imageId": IMAGE_ARM}) == {}
    assert image_errors({"type": "c7g.large", "imageId": IMAGE_X86}) == {"instance.imageId": "wrong_architecture"}
    assert image_errors({"imageId": "ami-00000000000000001"}) == {"instance.imageId": "not_found"}
    pending = {IMAGE_X86: ImageFacts(IMAGE_X86, "pending", "x86_64")}
    assert image_errors({"imageId": IMAGE_X86}, pending) == {"instance.imageId": "not_available"}
    assert image_errors({"type": "c7g.large"}) == {}  # no image named: the latest Amazon Linux for its architecture


def test_a_change_of_instance_type_checks_the_image_again_other_changes_do_not() -> None:
    before = parse_spec({**valid(), "instance": {"type": "c6i.large", "imageId": IMAGE_X86}})
    to_graviton = parse_spec({**valid(), "instance": {"type": "c7g.large", "imageId": IMAGE_X86}})
    needed = facts_needed(to_graviton, before)
    assert needed.image_id == IMAGE_X86
    errors = check_against_account(to_graviton, needed, facts(images=IMAGES), NOW)
    assert [(e.field, e.code) for e in errors] == [("instance.imageId", "wrong_architecture")]
    capacity_only = parse_spec(
        {**valid(), "instance": {"type": "c6i.large", "imageId": IMAGE_X86}, "capacity": {"min": 3, "max": 4}}
    )
    assert facts_needed(capacity_only, before).image_id is None
