"""A ready-to-use account for the local runtime and the tests.

A VPC with subnets in two Availability Zones, an issued certificate, and a
few deliberately unusable things (a second VPC, a spare subnet in an AZ that
is already used, a certificate still pending validation) so that the 422 paths
can be shown and tested against real lookups.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.certs import self_signed


@dataclass(frozen=True)
class LocalAccount:
    region: str
    vpc_id: str
    subnet_ids: list[str]  # one per AZ, in two AZs
    availability_zones: list[str]
    spare_subnet_id: str  # same AZ as subnet_ids[0]
    other_vpc_id: str
    other_vpc_subnet_id: str
    certificate_arn: str  # ISSUED by a private CA: exportable, so agents can fetch its key
    imported_certificate_arn: str  # ISSUED but imported: ACM cannot export it to agents
    pending_certificate_arn: str
    image_id: str  # an available x86_64 image this account may launch, for specs that name one
    # An image whose instances boot but whose agent never becomes healthy: a rollout onto it must roll back.
    broken_image_id: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


BROKEN_IMAGE_DESCRIPTION = (
    "BROKEN ON PURPOSE (lbcp local runtime): instances boot, but their agent never becomes healthy. "
    "Roll onto it to see a rollout fail its canary and roll back."
)


def _named(ec2: Any, resource_id: str, name: str) -> None:
    ec2.create_tags(Resources=[resource_id], Tags=[{"Key": "Name", "Value": name}])


def seed_account(ec2: Any, acm: Any, region: str, acm_pca: Any | None = None) -> LocalAccount:
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
    vpc_id = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    _named(ec2, vpc_id, "lbcp-local")
    subnet_ids = []
    for index, zone in enumerate(zones):
        subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.20.{index + 1}.0/24", AvailabilityZone=zone)
        subnet_ids.append(subnet["Subnet"]["SubnetId"])
        _named(ec2, subnet_ids[-1], f"lbcp-local-{zone}")
    spare = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.20.9.0/24", AvailabilityZone=zones[0])
    spare_id = spare["Subnet"]["SubnetId"]
    _named(ec2, spare_id, f"lbcp-local-spare-{zones[0]}")

    other_vpc_id = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    _named(ec2, other_vpc_id, "lbcp-local-other")
    other_subnet = ec2.create_subnet(VpcId=other_vpc_id, CidrBlock="10.30.1.0/24", AvailabilityZone=zones[0])

    now = datetime.now(UTC)
    # A private CA's certificate: ISSUED at once, and exportable (what agents need).
    authority = f"arn:aws:acm-pca:{region}:123456789012:certificate-authority/lbcp-local"
    if acm_pca is not None:
        authority = acm_pca.create_certificate_authority(
            CertificateAuthorityConfiguration={
                "KeyAlgorithm": "EC_prime256v1",
                "SigningAlgorithm": "SHA256WITHECDSA",
                "Subject": {"CommonName": "lbcp local CA"},
            },
            CertificateAuthorityType="ROOT",
        )["CertificateAuthorityArn"]
    issued = acm.request_certificate(DomainName="*.demo.lbcp.internal", CertificateAuthorityArn=authority)[
        "CertificateArn"
    ]
    material = self_signed("imported.demo.lbcp.internal", now - timedelta(days=1), now + timedelta(days=365))
    imported = acm.import_certificate(Certificate=material.certificate, PrivateKey=material.private_key)[
        "CertificateArn"
    ]
    pending = acm.request_certificate(DomainName="pending.demo.lbcp.internal", ValidationMethod="DNS")["CertificateArn"]
    # The emulator lists public images of its own; the same one every time.
    images = ec2.describe_images(
        Owners=["amazon"],
        Filters=[{"Name": "architecture", "Values": ["x86_64"]}, {"Name": "state", "Values": ["available"]}],
    )["Images"]
    image_id = min(image["ImageId"] for image in images)
    broken_image_id = ec2.register_image(
        Name="lbcp-local-broken-agent",
        Description=BROKEN_IMAGE_DESCRIPTION,
        Architecture="x86_64",
        RootDeviceName="/dev/xvda",
        VirtualizationType="hvm",
    )["ImageId"]
    return LocalAccount(
        region=region,
        vpc_id=vpc_id,
        subnet_ids=subnet_ids,
        availability_zones=zones,
        spare_subnet_id=spare_id,
        other_vpc_id=other_vpc_id,
        other_vpc_subnet_id=other_subnet["Subnet"]["SubnetId"],
        certificate_arn=issued,
        imported_certificate_arn=imported,
        pending_certificate_arn=pending,
        image_id=image_id,
        broken_image_id=broken_image_id,
    )


# Private addresses in the seeded VPC's subnets: where backends would be in AWS.
EXAMPLE_TARGETS: dict[str, list[dict[str, Any]]] = {
    "app": [{"host": "10.20.1.10", "port": 8080}, {"host": "10.20.2.10", "port": 8080}],
    "api": [{"host": "10.20.1.20", "port": 9000}],
}


def example_spec(
    account: LocalAccount, name: str = "web", targets: dict[str, list[dict[str, Any]]] | None = None
) -> dict[str, Any]:
    """A small but complete application load balancer for this account (backends ``app`` and ``api``)."""
    # A copy: callers edit the document they get (the bad-input table does), and
    # must not edit the next caller's.
    targets = copy.deepcopy(targets or EXAMPLE_TARGETS)
    return {
        "name": name,
        "type": "application",
        "vpcId": account.vpc_id,
        "subnetIds": list(account.subnet_ids),
        "listeners": [
            {"protocol": "HTTP", "port": 80, "defaultBackend": "app"},
            {
                "protocol": "HTTPS",
                "port": 443,
                "certificateArn": account.certificate_arn,
                "defaultBackend": "app",
                "rules": [{"pathPrefix": "/api/", "backend": "api"}],
            },
        ],
        "backends": [
            {
                "name": "app",
                "targets": targets["app"],
                "healthCheck": {"protocol": "HTTP", "path": "/healthz"},
            },
            {"name": "api", "targets": targets["api"]},
        ],
        "capacity": {"min": 2, "max": 6},
    }
