"""The LBVMs' security group: one per load balancer, open on the listener ports.

NLB instance targets see the clients' own addresses (client IP preservation),
so the group admits the clients: anyone for an internet-facing load balancer,
the VPC's CIDR blocks for an internal one. NLB health checks come from the
NLB's addresses in the VPC, which both cases admit. The rules converge on the
spec: missing ones are added, and every other one is removed (ours that no longer
match a listener, and any rule a person added: a port range, UDP, another group).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import ClientError

from lbcp import LB_ID_TAG_KEY
from lbcp.entry.names import has_owner_tags, owner_tags, security_group_name
from lbcp.models.spec import LoadBalancerSpec
from lbcp.reconcile.compute import FILTER_VALUES_LIMIT

ANYWHERE = "0.0.0.0/0"


SourceKind = Literal["cidr", "cidr6", "prefix-list", "group"]
# Where each kind of source sits in an IpPermission, and the key of its value.
_SOURCES: tuple[tuple[SourceKind, str, str], ...] = (
    ("cidr", "IpRanges", "CidrIp"),
    ("cidr6", "Ipv6Ranges", "CidrIpv6"),
    ("prefix-list", "PrefixListIds", "PrefixListId"),
    ("group", "UserIdGroupPairs", "GroupId"),
)


@dataclass(frozen=True)
class IngressAtom:
    """One ingress rule with one source, and the IpPermission that revokes exactly it."""

    protocol: str  # tcp, udp, icmp, -1
    from_port: int | None
    to_port: int | None
    source: str
    kind: SourceKind
    permission: dict[str, Any] = field(compare=False, repr=False)

    @property
    def ours(self) -> tuple[int, str] | None:
        """(port, cidr) when it is the only kind of rule the spec implies: TCP, one port, an IPv4 CIDR."""
        single_port = self.from_port is not None and self.from_port == self.to_port
        if self.protocol == "tcp" and self.kind == "cidr" and single_port and self.from_port is not None:
            return (self.from_port, self.source)
        return None

    def describe(self) -> str:
        ports = "" if self.from_port is None else f"/{self.from_port}"
        if self.to_port is not None and self.to_port != self.from_port:
            ports += f"-{self.to_port}"
        return f"{self.protocol}{ports} {self.source}"


def ingress_atoms(group: dict[str, Any]) -> list[IngressAtom]:
    """Every ingress rule of a described group, one per source (CIDR, IPv6 CIDR, prefix list or group)."""
    atoms: list[IngressAtom] = []
    for permission in group.get("IpPermissions", []):
        protocol = str(permission.get("IpProtocol", "-1"))
        ports = {key: permission[key] for key in ("FromPort", "ToPort") if key in permission}
        from_port, to_port = (None, None) if protocol == "-1" else (ports.get("FromPort"), ports.get("ToPort"))
        for kind, list_key, value_key in _SOURCES:
            for item in permission.get(list_key, []):
                if value_key not in item:
                    continue
                source = {k: v for k, v in item.items() if k != "Description"}
                atoms.append(
                    IngressAtom(
                        protocol=protocol,
                        from_port=None if from_port is None else int(from_port),
                        to_port=None if to_port is None else int(to_port),
                        source=str(item[value_key]),
                        kind=kind,
                        permission={"IpProtocol": protocol, **ports, list_key: [source]},
                    )
                )
    return atoms


@dataclass(frozen=True)
class SecurityGroup:
    group_id: str
    vpc_id: str
    rules: frozenset[tuple[int, str]]  # (port, cidr) of the TCP ingress rules
    tags: tuple[tuple[str, str], ...]
    # Every other ingress rule (a port range, UDP, all traffic, IPv6, a prefix list, another group):
    # the spec never implies one, so each is drift, revoked by ensure_security_group.
    foreign: tuple[IngressAtom, ...] = ()


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def parse_security_group(group: dict[str, Any]) -> SecurityGroup:
    atoms = ingress_atoms(group)
    return SecurityGroup(
        group_id=group["GroupId"],
        vpc_id=group["VpcId"],
        rules=frozenset(rule for atom in atoms if (rule := atom.ours) is not None),
        tags=tuple((tag["Key"], tag["Value"]) for tag in group.get("Tags", [])),
        foreign=tuple(sorted((atom for atom in atoms if atom.ours is None), key=IngressAtom.describe)),
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


def list_owned_security_groups(
    ec2: Any, product_tag: tuple[str, str], load_balancer_ids: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """Every security group carrying our product tag (paginated); with ``load_balancer_ids``, only theirs
    (their owner tag's values, 200 a filter)."""
    key, value = product_tag
    product = [{"Name": f"tag:{key}", "Values": [value]}]
    ordered = sorted(set(load_balancer_ids)) if load_balancer_ids is not None else None
    chunks = (
        [product]
        if ordered is None
        else [
            [*product, {"Name": f"tag:{LB_ID_TAG_KEY}", "Values": ordered[start : start + FILTER_VALUES_LIMIT]}]
            for start in range(0, len(ordered), FILTER_VALUES_LIMIT)
        ]
    )
    groups: list[dict[str, Any]] = []
    for filters in chunks:
        for page in ec2.get_paginator("describe_security_groups").paginate(Filters=filters):
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
    revoke = [*_permissions(extra), *(atom.permission for atom in group.foreign)]
    if revoke:
        ec2.revoke_security_group_ingress(GroupId=group.group_id, IpPermissions=revoke)
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
