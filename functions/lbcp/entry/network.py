"""The LBVMs' security group: one per load balancer, open on the listener ports.

NLB instance targets see the clients' own addresses (client IP preservation),
so the group admits the clients: anyone for an internet-facing load balancer,
the VPC's CIDR blocks for an internal one. NLB health checks come from the
NLB's addresses in the VPC, which both cases admit. The rules converge on the
spec: missing ones are added, ours that no longer match a listener are removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from lbcp.entry.names import has_owner_tags, owner_tags, security_group_name
from lbcp.models.spec import LoadBalancerSpec

ANYWHERE = "0.0.0.0/0"


@dataclass(frozen=True)
class SecurityGroup:
    group_id: str
    vpc_id: str
    rules: frozenset[tuple[int, str]]  # (port, cidr) of the TCP ingress rules
    tags: tuple[tuple[str, str], ...]


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def parse_security_group(group: dict[str, Any]) -> SecurityGroup:
    rules: set[tuple[int, str]] = set()
    for permission in group.get("IpPermissions", []):
        if permission.get("IpProtocol") != "tcp" or permission.get("FromPort") != permission.get("ToPort"):
            continue
        for ip_range in permission.get("IpRanges", []):
            rules.add((int(permission["FromPort"]), ip_range["CidrIp"]))
    return SecurityGroup(
        group_id=group["GroupId"],
        vpc_id=group["VpcId"],
        rules=frozenset(rules),
        tags=tuple((tag["Key"], tag["Value"]) for tag in group.get("Tags", [])),
    )


def find_security_group(ec2: Any, load_balancer_id: str, vpc_id: str | None = None) -> SecurityGroup | None:
    filters = [{"Name": "group-name", "Values": [security_group_name(load_balancer_id)]}]
    if vpc_id is not None:
        filters.append({"Name": "vpc-id", "Values": [vpc_id]})
    groups = ec2.describe_security_groups(Filters=filters).get("SecurityGroups", [])
    owned = [
        group
        for group in groups
        if has_owner_tags([{"Key": k, "Value": v} for k, v in parse_security_group(group).tags], load_balancer_id)
    ]
    return parse_security_group(owned[0]) if owned else None


def list_owned_security_groups(ec2: Any, product_tag: tuple[str, str]) -> list[dict[str, Any]]:
    """Every security group carrying our product tag (paginated)."""
    key, value = product_tag
    groups: list[dict[str, Any]] = []
    for page in ec2.get_paginator("describe_security_groups").paginate(
        Filters=[{"Name": f"tag:{key}", "Values": [value]}]
    ):
        groups.extend(page.get("SecurityGroups", []))
    return groups


def vpc_cidr_blocks(vpc: dict[str, Any]) -> tuple[str, ...]:
    """Every IPv4 CIDR block of a described VPC (the primary one and its associations)."""
    blocks = {association["CidrBlock"] for association in vpc.get("CidrBlockAssociationSet", [])}
    if "CidrBlock" in vpc:
        blocks.add(vpc["CidrBlock"])
    return tuple(sorted(blocks))


def desired_rules_for(spec: LoadBalancerSpec, vpc_cidrs: Sequence[str]) -> frozenset[tuple[int, str]]:
    """The (port, source) ingress rules the spec implies, given its VPC's CIDR blocks (pure)."""
    sources = [ANYWHERE] if spec.entry.scheme == "internet-facing" else sorted(vpc_cidrs)
    return frozenset((listener.port, source) for listener in spec.listeners for source in sources)


def desired_rules(ec2: Any, spec: LoadBalancerSpec) -> frozenset[tuple[int, str]]:
    cidrs: tuple[str, ...] = ()
    if spec.entry.scheme != "internet-facing":
        vpcs = ec2.describe_vpcs(VpcIds=[spec.vpc_id]).get("Vpcs", [])
        cidrs = tuple(block for vpc in vpcs for block in vpc_cidr_blocks(vpc))
    return desired_rules_for(spec, cidrs)


def _permissions(rules: set[tuple[int, str]] | frozenset[tuple[int, str]]) -> list[dict[str, Any]]:
    return [
        {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": cidr}]}
        for port, cidr in sorted(rules)
    ]


def ensure_security_group(ec2: Any, spec: LoadBalancerSpec, load_balancer_id: str) -> SecurityGroup:
    group = find_security_group(ec2, load_balancer_id, spec.vpc_id)
    if group is None:
        try:
            created = ec2.create_security_group(
                GroupName=security_group_name(load_balancer_id),
                Description=f"lbcp LBVMs of {spec.name} ({load_balancer_id}): listener ports",
                VpcId=spec.vpc_id,
                TagSpecifications=[
                    {
                        "ResourceType": "security-group",
                        "Tags": [*owner_tags(load_balancer_id), {"Key": "Name", "Value": f"lbcp-{spec.name}"}],
                    }
                ],
            )
        except ClientError as exc:
            if _error_code(exc) != "InvalidGroup.Duplicate":
                raise
            # Created by a concurrent call between our read and our create.
            group = find_security_group(ec2, load_balancer_id, spec.vpc_id)
            if group is None:
                raise
        else:
            group = SecurityGroup(created["GroupId"], spec.vpc_id, frozenset(), ())
    wanted = desired_rules(ec2, spec)
    missing = set(wanted - group.rules)
    extra = set(group.rules - wanted)
    if missing:
        try:
            ec2.authorize_security_group_ingress(GroupId=group.group_id, IpPermissions=_permissions(missing))
        except ClientError as exc:
            if _error_code(exc) != "InvalidPermission.Duplicate":
                raise
    if extra:
        ec2.revoke_security_group_ingress(GroupId=group.group_id, IpPermissions=_permissions(extra))
    return SecurityGroup(group.group_id, group.vpc_id, wanted, group.tags)


def delete_security_group(ec2: Any, load_balancer_id: str) -> bool:
    """Delete the group if it exists; False while something (an LBVM's ENI) still uses it."""
    group = find_security_group(ec2, load_balancer_id)
    if group is None:
        return True
    try:
        ec2.delete_security_group(GroupId=group.group_id)
    except ClientError as exc:
        if _error_code(exc) == "InvalidGroup.NotFound":
            return True
        if _error_code(exc) == "DependencyViolation":
            return False
        raise
    return True
