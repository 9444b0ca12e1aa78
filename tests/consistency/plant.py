"""Planting orphans in an (emulated) account: the adapter tests and the end-to-end test share these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lbcp.entry.names import owner_tags, target_group_name

LOOKALIKE_TAGS = [{"Key": "Name", "Value": "lbcp-lookalike"}, {"Key": "team", "Value": "someone-else"}]


@dataclass(frozen=True)
class Planted:
    """What was planted, by resource type: the orphans and their untagged look-alikes."""

    orphans: dict[str, str]
    lookalikes: dict[str, str]


def _instance(ec2: Any, image_id: str, subnet_id: str, tags: list[dict[str, str]]) -> str:
    return str(
        ec2.run_instances(
            ImageId=image_id, InstanceType="t3.micro", MinCount=1, MaxCount=1, SubnetId=subnet_id,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )["Instances"][0]["InstanceId"]
    )  # fmt: skip


def _everything(
    ec2: Any, elbv2: Any, *, vpc_id: str, subnet_id: str, image_id: str, tags: list[dict[str, str]], suffix: str
) -> dict[str, str]:
    spec = {"ResourceType": "network-interface", "Tags": tags}
    interface = ec2.create_network_interface(SubnetId=subnet_id, TagSpecifications=[spec])["NetworkInterface"]
    address = ec2.allocate_address(Domain="vpc", TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": tags}])[
        "AllocationId"
    ]
    group = ec2.create_security_group(
        GroupName=f"lbcp-planted-{suffix}", Description="planted", VpcId=vpc_id,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": tags}],
    )["GroupId"]  # fmt: skip
    target_group = elbv2.create_target_group(
        Name=suffix, Protocol="TCP", Port=80, VpcId=vpc_id, TargetType="instance", Tags=tags
    )["TargetGroups"][0]["TargetGroupArn"]
    return {
        "instance": _instance(ec2, image_id, subnet_id, tags),
        "network-interface": interface["NetworkInterfaceId"],
        "elastic-ip": address,
        "security-group": group,
        "target-group": target_group,
    }


def plant_orphans(ec2: Any, elbv2: Any, *, vpc_id: str, subnet_id: str, image_id: str, ghost: str) -> Planted:
    """An instance, interface, Elastic IP, security group and target group of ``ghost`` (no record), and twins
    without our tags."""
    orphans = _everything(
        ec2, elbv2, vpc_id=vpc_id, subnet_id=subnet_id, image_id=image_id,
        tags=owner_tags(ghost), suffix=target_group_name(ghost, 80),
    )  # fmt: skip
    lookalikes = _everything(
        ec2, elbv2, vpc_id=vpc_id, subnet_id=subnet_id, image_id=image_id,
        # The load balancer id, but not the product tag: not ours, whatever it says.
        tags=[*LOOKALIKE_TAGS, owner_tags(ghost)[1]], suffix=target_group_name(ghost, 81),
    )  # fmt: skip
    return Planted(orphans, lookalikes)


def add_ssh_rule(ec2: Any, group_id: str) -> None:
    ec2.authorize_security_group_ingress(
        GroupId=group_id,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )


def still_there(ec2: Any, elbv2: Any, resource_type: str, resource_id: str) -> bool:
    """Whether a planted resource still exists (a terminated instance does not count)."""
    try:
        match resource_type:
            case "instance":
                reservations = ec2.describe_instances(InstanceIds=[resource_id])["Reservations"]
                states = [i["State"]["Name"] for r in reservations for i in r["Instances"]]
                return any(state not in ("shutting-down", "terminated") for state in states)
            case "network-interface":
                return bool(ec2.describe_network_interfaces(NetworkInterfaceIds=[resource_id])["NetworkInterfaces"])
            case "elastic-ip":
                return bool(ec2.describe_addresses(AllocationIds=[resource_id])["Addresses"])
            case "security-group":
                return bool(ec2.describe_security_groups(GroupIds=[resource_id])["SecurityGroups"])
            case "target-group":
                return bool(elbv2.describe_target_groups(TargetGroupArns=[resource_id])["TargetGroups"])
    except Exception as exc:  # botocore's NotFound errors
        if "NotFound" in type(exc).__name__ or "NotFound" in str(exc):
            return False
        raise
    raise ValueError(resource_type)
