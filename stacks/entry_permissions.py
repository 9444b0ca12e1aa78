"""What the reconciler may do to the entries: their NLBs, listeners, target groups and security groups.

One construct with two policies on the reconciler's role:

- ``management``: creates require the owner tags on the request, tagging is
  allowed only inside the creates, changes and deletes require the owner tag
  on the resource; ELBv2 resources are also fenced by the ``lbcp-`` name
  prefix every entry resource has (``stacks/arns.py``). With a hosted zone,
  the entry's DNS records too.
- ``describe``: the Describe actions, which accept only Resource "*", alone in
  a policy so that the wildcard is acknowledged apart from everything else.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks import arns, nag, owner_tags
from stacks.arns import ELB

# Registering LBVMs with an entry's target groups (the reconciler, the lifecycle tasks).
TARGET_REGISTRATION_ACTIONS: Final = (f"{ELB}:RegisterTargets", f"{ELB}:DeregisterTargets")
# Writing an entry's DNS records (the reconciler, the lifecycle tasks).
RECORD_ACTIONS: Final = ("route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets")

ENTRY_CHANGE_ACTIONS: Final = (
    f"{ELB}:SetSubnets",
    f"{ELB}:DeleteLoadBalancer",
    f"{ELB}:ModifyTargetGroup",
    f"{ELB}:ModifyTargetGroupAttributes",
    f"{ELB}:DeleteTargetGroup",
    *TARGET_REGISTRATION_ACTIONS,
    f"{ELB}:ModifyListener",
    f"{ELB}:DeleteListener",
)
SECURITY_GROUP_CHANGE_ACTIONS: Final = (
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:DeleteSecurityGroup",
)
ENTRY_DESCRIBE_ACTIONS: Final = (
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeVpcs",
    "ec2:DescribeInstances",
    f"{ELB}:DescribeLoadBalancers",
    f"{ELB}:DescribeTargetGroups",
    f"{ELB}:DescribeTargetHealth",
    f"{ELB}:DescribeListeners",
    f"{ELB}:DescribeTags",
)


def records_statement(sid: str, hosted_zone_id: str) -> iam.PolicyStatement:
    """Change and list the records of the entries' hosted zone."""
    return iam.PolicyStatement(sid=sid, actions=list(RECORD_ACTIONS), resources=[arns.hosted_zone(hosted_zone_id)])


class EntryPermissions(Construct):
    """Build, change and tear down entries: ``management`` and ``describe`` on ``role``."""

    def __init__(self, scope: Construct, construct_id: str, *, role: iam.IRole, hosted_zone_id: str | None) -> None:
        super().__init__(scope, construct_id)
        load_balancers = arns.entry_load_balancers()
        target_groups = arns.entry_target_groups()
        listeners = arns.entry_listeners()
        security_groups = arns.ec2("security-group")
        statements = [
            iam.PolicyStatement(
                sid="CreateTaggedSecurityGroup",
                actions=["ec2:CreateSecurityGroup"],
                resources=[security_groups],
                conditions=owner_tags.REQUEST_TAGGED,
            ),
            iam.PolicyStatement(
                sid="SecurityGroupVpc", actions=["ec2:CreateSecurityGroup"], resources=[arns.ec2("vpc")]
            ),
            iam.PolicyStatement(
                sid="TagSecurityGroupOnCreate",
                actions=["ec2:CreateTags"],
                resources=[security_groups],
                conditions=owner_tags.tagging_only_inside("ec2:CreateAction", "CreateSecurityGroup"),
            ),
            iam.PolicyStatement(
                sid="ChangeOwnSecurityGroups",
                actions=list(SECURITY_GROUP_CHANGE_ACTIONS),
                resources=[security_groups],
                conditions=owner_tags.EC2_RESOURCE_TAGGED,
            ),
            iam.PolicyStatement(
                sid="CreateTaggedEntry",
                actions=[f"{ELB}:CreateLoadBalancer", f"{ELB}:CreateTargetGroup"],
                resources=[load_balancers, target_groups],
                conditions=owner_tags.REQUEST_TAGGED,
            ),
            iam.PolicyStatement(
                sid="CreateListeners",
                actions=[f"{ELB}:CreateListener"],
                resources=[load_balancers, listeners],
                conditions=owner_tags.REQUEST_TAGGED,
            ),
            iam.PolicyStatement(
                sid="TagEntryOnCreate",
                actions=[f"{ELB}:AddTags"],
                resources=[load_balancers, target_groups, listeners],
                conditions=owner_tags.tagging_only_inside(
                    f"{ELB}:CreateAction", "CreateLoadBalancer", "CreateTargetGroup", "CreateListener"
                ),
            ),
            iam.PolicyStatement(
                sid="ChangeOwnEntry",
                actions=list(ENTRY_CHANGE_ACTIONS),
                resources=[load_balancers, target_groups, listeners],
                conditions=owner_tags.RESOURCE_TAGGED,
            ),
        ]
        if hosted_zone_id:
            statements.append(records_statement("EntryRecords", hosted_zone_id))
        self.management = iam.Policy(self, "Management", roles=[role], statements=statements)
        self.describe = iam.Policy(
            self,
            "Describe",
            roles=[role],
            statements=[
                iam.PolicyStatement(sid="DescribeEntries", actions=list(ENTRY_DESCRIBE_ACTIONS), resources=["*"])
            ],
        )
        nag.acknowledge_entry_management(self.management, self.describe)
