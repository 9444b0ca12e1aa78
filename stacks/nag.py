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

from lbcp.models.metrics import NAMESPACE as METRICS_NAMESPACE

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
    "ec2:DescribeVpcs, ec2:DescribeSubnets and ec2:DescribeImages (the API checks that a spec's VPC, "
    "subnets and image exist) do not support resource-level permissions: EC2 Describe actions accept only "
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


API_OBSERVE_WILDCARD: Final = Finding(
    "AwsSolutions-IAM5[Resource::*]",
    "EC2 and ELBv2 Describe actions (ec2:DescribeInstances/DescribeNetworkInterfaces/"
    "DescribeSecurityGroups/DescribeVpcs, elasticloadbalancing:DescribeLoadBalancers/"
    "DescribeTargetGroups/DescribeTargetHealth/DescribeListeners/DescribeTags) do not support "
    "resource-level permissions and accept only Resource '*'. They are read-only and alone in their "
    "policy: the plan preview (GET /v1/load-balancers/{id}/plan) observes the fleet as the reconciler does.",
)


def acknowledge_api_observation(policy: IConstruct) -> None:
    """The API function's plan preview: the reconciler's Describe reads."""
    acknowledge(policy, API_OBSERVE_WILDCARD)


# --- the LBVM fleet machinery (stacks/fleet.py) -----------------------------------------


def _ec2_pattern(resource: str) -> str:
    return f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:{resource}/*]"


FLEET_DESCRIBE_WILDCARD: Final = Finding(
    "AwsSolutions-IAM5[Resource::*]",
    "EC2 and ELBv2 Describe actions (ec2:DescribeInstances/DescribeNetworkInterfaces/"
    "DescribeSecurityGroups/DescribeVpcs, elasticloadbalancing:DescribeLoadBalancers/"
    "DescribeTargetGroups/DescribeTargetHealth/DescribeListeners/DescribeTags) do not support "
    "resource-level permissions and accept only Resource '*' (service authorization reference for EC2 "
    "and ELBv2). They are read-only and alone in their policy: the fleet finds LBVM instances, "
    "interfaces and entry resources by tag and name with them.",
)
STATE_MACHINE_LOGS_AND_TRACES: Final = Finding(
    "AwsSolutions-IAM5[Resource::*]",
    "Resource '*' is for what CDK adds to a state machine's role for logging level ALL and X-Ray "
    "tracing: logs:CreateLogDelivery/GetLogDelivery/UpdateLogDelivery/DeleteLogDelivery/"
    "ListLogDeliveries/PutResourcePolicy/DescribeResourcePolicies/DescribeLogGroups (vended log "
    "delivery, no resource-level permissions) and xray:PutTraceSegments/PutTelemetryRecords/"
    "GetSamplingRules/GetSamplingTargets (no resource-level permissions).",
)
LBVM_INSTANCES: Final = Finding(
    _ec2_pattern("instance"),
    "LBVM instances are launched at run time, one per LBVM, so their ids cannot be listed at deploy "
    "time. Every statement on instance/* carries a tag condition: RunInstances requires "
    "aws:RequestTag/lbcp:product=lbcp, CreateTags is allowed only inside RunInstances "
    "(ec2:CreateAction), TerminateInstances requires ec2:ResourceTag/lbcp:product=lbcp.",
)
LBVM_INTERFACES: Final = Finding(
    _ec2_pattern("network-interface"),
    "Each LBVM's primary network interface is created at run time before its instance. "
    "CreateNetworkInterface requires aws:RequestTag/lbcp:product=lbcp, RunInstances and "
    "DeleteNetworkInterface require ec2:ResourceTag/lbcp:product=lbcp, CreateTags is allowed only "
    "inside the two creates (ec2:CreateAction).",
)
LBVM_VOLUMES: Final = Finding(
    _ec2_pattern("volume"),
    "The LBVM's root volume is created by RunInstances at run time; the statement requires "
    "aws:RequestTag/lbcp:product=lbcp (the volumes are tagged on create) and CreateTags only "
    "inside RunInstances.",
)
LBVM_SUBNETS: Final = Finding(
    _ec2_pattern("subnet"),
    "CreateNetworkInterface and RunInstances need the subnet as a resource. The subnets are the "
    "users' own, named in load-balancer specs at run time (and checked by the API), so they cannot "
    "be listed at deploy time; creating anything in them still requires our owner tags.",
)
LBVM_SECURITY_GROUPS: Final = Finding(
    _ec2_pattern("security-group"),
    "CreateNetworkInterface and RunInstances need the interface's security group as a resource; "
    "the group is created per load balancer at run time by the reconciler, so its id cannot be "
    "known at deploy time. Only the use of a group is allowed here, not its change.",
)
LBVM_IMAGES: Final = Finding(
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>::image/*]",
    "RunInstances needs the AMI as a resource: it is the spec's imageId or the latest Amazon Linux "
    "2023 image, chosen at run time and owned by AWS or the user, so it cannot be listed at deploy "
    "time. Launching from an image does not change the image.",
)
DRAIN_EXECUTIONS: Final = Finding(
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:"
    "execution:Lbcp-lbvm-drain:*]",
    "states:DescribeExecution and states:StopExecution on executions of the drain state machine "
    "only, as the startExecution.sync:2 integration requires; the executions are named after the "
    "LBVMs (drain-<lbvm id>) at run time.",
)
LBVM_TARGET_GROUPS: Final = Finding(
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:elasticloadbalancing:<AWS::Region>:"
    "<AWS::AccountId>:targetgroup/lbcp-*/*]",
    "RegisterTargets/DeregisterTargets on target groups named lbcp-<load balancer id>-<port>, which "
    "the reconciler creates per load balancer at run time, and only when they carry "
    "aws:ResourceTag/lbcp:product=lbcp.",
)
AGENT_CERTIFICATES: Final = Finding(
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:acm:<AWS::Region>:<AWS::AccountId>:certificate/*]",
    "acm:ExportCertificate only, on certificates of this account and region: LBVMs terminate TLS "
    "with the users' certificates, named by ARN in load-balancer specs at run time.",
)


LEGACY_AGENT_ROUTES: Final = tuple(
    Finding(
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:"
        f"<ApiHttpApi4C294DC0>/*/{route}]",
        f"execute-api:Invoke on one route of this API ({route}) in any stage: the agents' two routes, "
        "for LBVMs launched before the agent endpoint (stacks.api.LEGACY_AGENT_ROUTES); the stage is "
        "the only wildcard.",
    )
    for route in ("GET/v1/agent/config", "POST/v1/agent/heartbeat")
)


def acknowledge_lbvm_role(policy: IConstruct) -> None:
    acknowledge(policy, AGENT_CERTIFICATES, *LEGACY_AGENT_ROUTES)


def acknowledge_tasks_function(fn: LbcpFunction, describe_policy: IConstruct) -> None:
    acknowledge(fn.default_policy, LBVM_TARGET_GROUPS)
    acknowledge(describe_policy, FLEET_DESCRIBE_WILDCARD)


def acknowledge_state_machine(default_policy: IConstruct, describe_policy: IConstruct, *, launches: bool) -> None:
    findings = [STATE_MACHINE_LOGS_AND_TRACES, LBVM_INSTANCES, LBVM_INTERFACES]
    if launches:
        findings += [LBVM_VOLUMES, LBVM_SUBNETS, LBVM_SECURITY_GROUPS, LBVM_IMAGES, DRAIN_EXECUTIONS]
    acknowledge(default_policy, *findings)
    acknowledge(describe_policy, FLEET_DESCRIBE_WILDCARD)


# --- the reconciler's entry permissions (stacks/entry_permissions.py) ---------------------

ENTRY_SECURITY_GROUPS: Final = Finding(
    _ec2_pattern("security-group"),
    "Each load balancer's LBVM security group is created at run time, so its id cannot be listed at "
    "deploy time: CreateSecurityGroup requires aws:RequestTag/lbcp:product=lbcp, CreateTags is allowed "
    "only inside it (ec2:CreateAction), and ingress changes and deletes require "
    "ec2:ResourceTag/lbcp:product=lbcp.",
)
ENTRY_VPCS: Final = Finding(
    _ec2_pattern("vpc"),
    "CreateSecurityGroup needs the VPC as a resource; the VPCs are the users' own, named in specs at "
    "run time. Only the creation of a tagged group in them is allowed.",
)
ENTRY_ELBV2: Final = tuple(
    Finding(
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:elasticloadbalancing:<AWS::Region>:"
        f"<AWS::AccountId>:{pattern}]",
        f"ELBv2 {kind} of the entries, created per load balancer at run time with names starting lbcp-: "
        "creates require aws:RequestTag/lbcp:product=lbcp, tagging only inside the creates "
        "(elasticloadbalancing:CreateAction), changes and deletes aws:ResourceTag/lbcp:product=lbcp.",
    )
    for kind, pattern in (
        ("load balancers", "loadbalancer/net/lbcp-*/*"),
        ("target groups", "targetgroup/lbcp-*/*"),
        ("listeners", "listener/net/lbcp-*/*/*"),
    )
)


def acknowledge_entry_management(policy: IConstruct, describe_policy: IConstruct) -> None:
    acknowledge(policy, ENTRY_SECURITY_GROUPS, ENTRY_VPCS, *ENTRY_ELBV2)
    acknowledge(describe_policy, FLEET_DESCRIBE_WILDCARD)


# --- the reconciler (stacks/reconciler.py) --------------------------------------------------

RECONCILER_OBSERVE_WILDCARD: Final = Finding(
    "AwsSolutions-IAM5[Resource::*]",
    "ec2:DescribeInstances, ec2:DescribeNetworkInterfaces (the reconciler's one paginated look at "
    "every LBVM instance and interface per tick) and ec2:DescribeSubnets (a new LBVM's zone) do not "
    "support resource-level permissions: EC2 "
    "Describe actions accept only Resource '*'. Read-only and alone in this policy.",
)
RECONCILER_ORPHANS: Final = tuple(
    Finding(
        _ec2_pattern(resource),
        f"ec2:TerminateInstances and ec2:DeleteNetworkInterface on {what} created at run time by the "
        "lifecycle, so their ids cannot be listed at deploy time: fenced by "
        "aws:ResourceTag/lbcp:product=lbcp and a present lbcp:load-balancer-id tag (the code also checks "
        "the id before acting).",
    )
    for resource, what in (("instance", "LBVM instances"), ("network-interface", "LBVM network interfaces"))
)
RECONCILER_IMAGES: Final = Finding(
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ssm:<AWS::Region>::parameter/aws/service/"
    "ami-amazon-linux-latest/*]",
    "ssm:GetParameter on AWS's public Amazon Linux image parameters only (the default LBVM image); the "
    "architecture (x86_64 or arm64) is chosen at run time from the spec's instance type.",
)
RECONCILER_ALARMS: Final = Finding(
    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:alarm:*]",
    "cloudwatch:DescribeAlarms (read-only) on this account's alarms: a spec's rollout.alarmNames are the "
    "users' own alarms, named in the spec at run time, so they cannot be listed at deploy time.",
)


RECONCILE_DEAD_LETTER_QUEUE: Final = Finding(
    "AwsSolutions-SQS3",
    "This queue is itself a dead-letter queue: the reconciler sends one message to it per load balancer whose "
    "reconcile failed many times in a row; nothing consumes it (a person reads it; its depth has an alarm).",
)

STREAM_DEAD_LETTER_QUEUE: Final = Finding(
    "AwsSolutions-SQS3",
    "This queue is itself the dead-letter destination of the reconciler's DynamoDB stream event source "
    "(an on-failure destination, which cdk-nag does not recognise as a DLQ); it has an alarm, and the "
    "minute tick re-reconciles whatever its records were about.",
)


def acknowledge_reconciler(fn: LbcpFunction, observe_policy: IConstruct) -> None:
    acknowledge(observe_policy, RECONCILER_OBSERVE_WILDCARD)
    acknowledge(fn.default_policy, *RECONCILER_ORPHANS, RECONCILER_IMAGES, RECONCILER_ALARMS)


# --- the consistency checker (stacks/consistency.py) ----------------------------------------

CONSISTENCY_DESCRIBE_WILDCARD: Final = Finding(
    "AwsSolutions-IAM5[Resource::*]",
    "The checker's listings (ec2:DescribeInstances/NetworkInterfaces/Addresses/SecurityGroups/Vpcs, "
    "elasticloadbalancing:DescribeLoadBalancers/TargetGroups/Tags/Listeners/TargetHealth) do not support "
    "resource-level permissions and accept only Resource '*'; cloudwatch:PutMetricData neither, and it is "
    f"limited to the namespace {METRICS_NAMESPACE} by the cloudwatch:namespace condition. Read-only listings and "
    "one metric write, alone in this policy.",
)
CONSISTENCY_SWEEPS: Final = (
    *(
        Finding(
            _ec2_pattern(resource),
            f"The garbage collector removes orphaned {what}, created at run time, so their ids cannot be listed at "
            "deploy time: fenced by aws:ResourceTag/lbcp:product=lbcp and a present lbcp:load-balancer-id tag; "
            "the code also re-checks the tags and the owner records just before each deletion.",
        )
        for resource, what in (
            ("instance", "LBVM instances"),
            ("network-interface", "network interfaces"),
            ("elastic-ip", "Elastic IPs"),
            ("security-group", "security groups"),
        )
    ),
    *(
        Finding(finding.rule, finding.reason.replace("changes and deletes", "the garbage collector's deletes"))
        for finding in ENTRY_ELBV2
    ),
    *(
        Finding(
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:"
            f"execution:Lbcp-lbvm-{machine}:*]",
            f"states:DescribeExecution and states:StopExecution on executions of the {machine} state machine only: "
            "the sweep stops a stuck one (its LBVM has no record or was terminated over an hour ago), named after "
            "its LBVM at run time, after re-reading the execution and the LBVM record just before the call.",
        )
        for machine in ("lifecycle", "drain")
    ),
)


def acknowledge_consistency(fn: LbcpFunction, describe_policy: IConstruct) -> None:
    acknowledge(describe_policy, CONSISTENCY_DESCRIBE_WILDCARD)
    acknowledge(fn.default_policy, *CONSISTENCY_SWEEPS)
