"""cdk-nag wiring and every acknowledged finding, each with its reason.

cdk-nag 3 is a CDK policy-validation plugin: ``add_nag_checks`` registers the
AWS Solutions pack on the app, and any finding not acknowledged with
``Validations.of(construct).acknowledge(...)`` fails the synth (CLI, tests and
``python app.py`` alike). Everything fixable is fixed instead (PITR, log
retention, access logs, IAM auth on every route). The acknowledgments are
attached to the narrowest construct (one policy, one function), never to the
stack, so a new finding elsewhere still fails. They are also written into the
template's ``Metadata.cdk_nag.rules_to_suppress`` as an audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from aws_cdk import Acknowledgment, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

if TYPE_CHECKING:
    from stacks.api import ApiFunction
    from stacks.functions import LbcpFunction

PACK: Final = "AwsSolutions"


@dataclass(frozen=True)
class Finding:
    """A finding we accept, as cdk-nag names it, and why."""

    rule: str
    reason: str

    @property
    def acknowledgment_id(self) -> str:
        # cdk-nag's report prints the id to acknowledge as '<pack>::<rule>'.
        return f"{PACK}::{self.rule}"


XRAY_WILDCARD: Final = Finding(
    "AwsSolutions-IAM5[Resource::*]",
    "Resource '*' is for xray:PutTraceSegments and xray:PutTelemetryRecords only (added by "
    "CDK for active tracing): X-Ray write actions do not support resource-level permissions "
    "(https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsx-ray.html).",
)
EC2_DESCRIBE_WILDCARD: Final = Finding(
    "AwsSolutions-IAM5[Resource::*]",
    "ec2:DescribeVpcs and ec2:DescribeSubnets (the API checks that a spec's VPC and subnets "
    "exist) do not support resource-level permissions: EC2 Describe actions accept only "
    "Resource '*' (https://docs.aws.amazon.com/service-authorization/latest/reference/"
    "list_amazonec2.html). They are read-only and alone in this policy.",
)
ACM_CERTIFICATES: Final = Finding(
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:acm:<AWS::Region>:<AWS::AccountId>:certificate/*]",
    "acm:DescribeCertificate only, on certificates of this account and region: the "
    "certificates are the users' own, named by ARN in load-balancer specs at run time, so "
    "they cannot be listed at deploy time. The API only reads their status.",
)
PYTHON_RUNTIME_PIN: Final = Finding(
    "AwsSolutions-L1",
    "The runtime is pinned to python3.13 on purpose: the dependency layer is built for "
    "cp313 manylinux2014_aarch64 wheels (stacks/bundling.py) and pydantic-core is a "
    "compiled extension, so moving to a newer runtime means rebuilding the layer for it "
    "and is a deliberate upgrade, not an automatic one.",
)


def add_nag_checks(app: IConstruct) -> None:
    """Run the AWS Solutions pack on every synth of ``app``; findings fail it."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True, write_suppressions_to_cloud_formation=True))


def acknowledge(scope: IConstruct, *findings: Finding) -> None:
    Validations.of(scope).acknowledge(
        *(Acknowledgment(id=finding.acknowledgment_id, reason=finding.reason) for finding in findings)
    )


def acknowledge_function(fn: LbcpFunction) -> None:
    """What every ``LbcpFunction`` needs: X-Ray's wildcard and the runtime pin."""
    acknowledge(fn.default_policy, XRAY_WILDCARD)
    acknowledge(fn.function, PYTHON_RUNTIME_PIN)


def acknowledge_api_function(fn: ApiFunction) -> None:
    """The API function's own: EC2 Describe and ACM certificate reads."""
    acknowledge(fn.network_read_policy, EC2_DESCRIBE_WILDCARD)
    acknowledge(fn.default_policy, ACM_CERTIFICATES)
