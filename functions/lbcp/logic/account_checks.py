"""Checks of a spec against what exists in the account (pure).

The adapter (``lbcp.adapters.account``) gathers ``AccountFacts``; this module
decides. A failure here is a 422: the spec is well formed, but it names
things that do not exist or cannot be used.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from lbcp.errors import FieldError
from lbcp.instance_types import architecture
from lbcp.models.spec import LoadBalancerSpec


@dataclass(frozen=True)
class SubnetFacts:
    subnet_id: str
    vpc_id: str
    availability_zone: str


@dataclass(frozen=True)
class CertificateFacts:
    arn: str
    status: str  # ACM: PENDING_VALIDATION, ISSUED, INACTIVE, EXPIRED, VALIDATION_TIMED_OUT, REVOKED, FAILED
    not_after: datetime | None
    domain_name: str | None = None
    # Agents fetch the key with acm:ExportCertificate: private-CA certificates and
    # public ones requested with export enabled qualify; imported ones never do.
    exportable: bool = True


@dataclass(frozen=True)
class ImageFacts:
    image_id: str
    state: str  # EC2: available, pending, failed, deregistered, ...
    architecture: str  # x86_64, arm64, i386, ...


@dataclass(frozen=True)
class AccountFacts:
    region: str
    vpc_ids: frozenset[str] = frozenset()
    subnets: dict[str, SubnetFacts] = field(default_factory=dict)
    certificates: dict[str, CertificateFacts] = field(default_factory=dict)
    images: dict[str, ImageFacts] = field(default_factory=dict)


@dataclass(frozen=True)
class FactsNeeded:
    """What to look up: only the parts of a spec a request introduced or changed."""

    vpc_id: str | None
    subnet_ids: tuple[str, ...]
    certificate_arns: tuple[str, ...]
    image_id: str | None = None


def facts_needed(spec: LoadBalancerSpec, previous: LoadBalancerSpec | None = None) -> FactsNeeded:
    """On create, everything; on a change, only what the change touches.

    A certificate that expired after creation must not block an unrelated
    emergency change such as a capacity increase: the reconciler reports it.
    """
    certificates = tuple(dict.fromkeys(ls.certificate_arn for ls in spec.listeners if ls.certificate_arn))
    if previous is None:
        return FactsNeeded(spec.vpc_id, tuple(spec.subnet_ids), certificates, spec.instance.image_id)
    old_certificates = {ls.certificate_arn for ls in previous.listeners}
    subnets_changed = spec.subnet_ids != previous.subnet_ids
    # A new image, or a new instance type for the same image (its architecture must fit):
    # either one rolls the fleet, and a launch that cannot succeed would never finish it.
    image_changed = spec.instance != previous.instance
    return FactsNeeded(
        vpc_id=None,
        subnet_ids=tuple(spec.subnet_ids) if subnets_changed else (),
        certificate_arns=tuple(arn for arn in certificates if arn not in old_certificates),
        image_id=spec.instance.image_id if image_changed else None,
    )


def check_against_account(
    spec: LoadBalancerSpec, needed: FactsNeeded, facts: AccountFacts, now: datetime
) -> list[FieldError]:
    return [
        *_vpc(spec, needed, facts),
        *_subnets(spec, needed, facts),
        *_certificates(spec, needed, facts, now),
        *_image(spec, needed, facts),
    ]


def _image(spec: LoadBalancerSpec, needed: FactsNeeded, facts: AccountFacts) -> Iterator[FieldError]:
    if needed.image_id is None:
        return
    path = ("instance", "imageId")
    image = facts.images.get(needed.image_id)
    if image is None:
        yield FieldError(
            path,
            f"image {needed.image_id} does not exist in {facts.region} or this account may not launch it",
            "not_found",
        )
    elif image.state != "available":
        yield FieldError(path, f"image is {image.state}; it must be available", "not_available")
    elif image.architecture != (wanted := architecture(spec.instance.type)):
        yield FieldError(
            path,
            f"image {image.image_id} is built for {image.architecture}; instance type {spec.instance.type} "
            f"needs {wanted}",
            "wrong_architecture",
        )


def _vpc(spec: LoadBalancerSpec, needed: FactsNeeded, facts: AccountFacts) -> Iterator[FieldError]:
    if needed.vpc_id is not None and needed.vpc_id not in facts.vpc_ids:
        yield FieldError(("vpcId",), f"VPC {spec.vpc_id} does not exist in {facts.region}", "not_found")


def _subnets(spec: LoadBalancerSpec, needed: FactsNeeded, facts: AccountFacts) -> Iterator[FieldError]:
    if not needed.subnet_ids:
        return
    zones: dict[str, int] = {}
    unusable = 0
    for index, subnet_id in enumerate(spec.subnet_ids):
        subnet = facts.subnets.get(subnet_id)
        if subnet is None:
            unusable += 1
            yield FieldError(("subnetIds", index), f"subnet {subnet_id} does not exist in {facts.region}", "not_found")
            continue
        if subnet.vpc_id != spec.vpc_id:
            unusable += 1
            yield FieldError(
                ("subnetIds", index),
                f"subnet {subnet_id} is in {subnet.vpc_id}, not in {spec.vpc_id}",
                "wrong_vpc",
            )
            continue
        zone = subnet.availability_zone
        if zone in zones and spec.subnet_ids[zones[zone]] != subnet_id:
            yield FieldError(
                ("subnetIds", index),
                f"subnet {subnet_id} is in {zone}, like subnetIds[{zones[zone]}]: use one subnet per Availability Zone",
                "same_zone",
            )
        zones.setdefault(zone, index)
    # Count zones only when every subnet is usable: otherwise the errors above already say what to fix.
    if spec.type == "application" and unusable == 0 and len(zones) < 2 and len(set(spec.subnet_ids)) >= 2:
        yield FieldError(
            ("subnetIds",),
            f"an application load balancer needs subnets in at least two Availability Zones; "
            f"these are all in {', '.join(sorted(zones))}",
            "too_few_zones",
        )


def _certificates(
    spec: LoadBalancerSpec, needed: FactsNeeded, facts: AccountFacts, now: datetime
) -> Iterator[FieldError]:
    for index, listener in enumerate(spec.listeners):
        arn = listener.certificate_arn
        if arn is None or arn not in needed.certificate_arns:
            continue
        path = ("listeners", index, "certificateArn")
        certificate = facts.certificates.get(arn)
        if certificate is None:
            yield FieldError(path, f"certificate {arn} does not exist in ACM in {facts.region}", "not_found")
        elif certificate.status != "ISSUED":
            yield FieldError(path, f"certificate is {certificate.status}; it must be ISSUED", "not_issued")
        elif certificate.not_after is not None and certificate.not_after <= now:
            yield FieldError(path, f"certificate expired on {certificate.not_after:%Y-%m-%d}", "expired")
        elif not certificate.exportable:
            yield FieldError(
                path,
                "LBVMs terminate TLS themselves and fetch the key with acm:ExportCertificate, which ACM allows "
                "only for private-CA certificates and public ones requested with export enabled; "
                "this one cannot be exported",
                "not_exportable",
            )
