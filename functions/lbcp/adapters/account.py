"""Reads the account facts a spec is checked against (EC2 and ACM)."""

from __future__ import annotations

from typing import Any, Protocol

from lbcp.logic.account_checks import AccountFacts, CertificateFacts, FactsNeeded, ImageFacts, SubnetFacts


class AccountInspector(Protocol):
    def gather(self, needed: FactsNeeded) -> AccountFacts: ...


class AwsAccountInspector:
    """Looks things up with filters, so an unknown id is an absent result, not an error."""

    def __init__(self, ec2: Any, acm: Any, region: str) -> None:
        self._ec2 = ec2
        self._acm = acm
        self._region = region

    def gather(self, needed: FactsNeeded) -> AccountFacts:
        vpc_ids: frozenset[str] = frozenset()
        if needed.vpc_id is not None:
            response = self._ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [needed.vpc_id]}])
            vpc_ids = frozenset(vpc["VpcId"] for vpc in response.get("Vpcs", []))
        subnets: dict[str, SubnetFacts] = {}
        if needed.subnet_ids:
            paginator = self._ec2.get_paginator("describe_subnets")
            pages = paginator.paginate(Filters=[{"Name": "subnet-id", "Values": list(needed.subnet_ids)}])
            for page in pages:
                for subnet in page.get("Subnets", []):
                    subnets[subnet["SubnetId"]] = SubnetFacts(
                        subnet_id=subnet["SubnetId"],
                        vpc_id=subnet["VpcId"],
                        availability_zone=subnet["AvailabilityZone"],
                    )
        certificates = {}
        for arn in needed.certificate_arns:
            certificate = self._describe_certificate(arn)
            if certificate is not None:
                certificates[arn] = certificate
        images = {}
        if needed.image_id is not None:
            # Images this account may launch (its own, shared with it, public), by id.
            response = self._ec2.describe_images(Filters=[{"Name": "image-id", "Values": [needed.image_id]}])
            for image in response.get("Images", []):
                images[image["ImageId"]] = ImageFacts(
                    image_id=image["ImageId"], state=image.get("State", "unknown"), architecture=image["Architecture"]
                )
        return AccountFacts(
            region=self._region, vpc_ids=vpc_ids, subnets=subnets, certificates=certificates, images=images
        )

    def _describe_certificate(self, arn: str) -> CertificateFacts | None:
        # A certificate from another region or account cannot be described from here,
        # and cannot be used here either: both count as absent.
        if arn.split(":")[3] != self._region:
            return None
        try:
            detail = self._acm.describe_certificate(CertificateArn=arn)["Certificate"]
        except self._acm.exceptions.ResourceNotFoundException:
            return None
        except self._acm.exceptions.InvalidArnException:
            return None
        exportable = detail.get("Type") == "PRIVATE" or (detail.get("Options") or {}).get("Export") == "ENABLED"
        return CertificateFacts(
            arn=arn,
            status=detail.get("Status", "UNKNOWN"),
            not_after=detail.get("NotAfter"),
            domain_name=detail.get("DomainName"),
            exportable=exportable,
        )
