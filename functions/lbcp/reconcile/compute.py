"""EC2 as the reconciler sees it: instances and interfaces found by our product tag.

A full tick lists everything that carries the product tag (one paginated listing each of
instances and interfaces); a tick for some load balancers (a spec change, an
instance's state change, a work-queue shard) lists only theirs, by the owner tag's
values, so its cost follows the load balancers asked about and not the fleet.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

from lbcp import LB_ID_TAG_KEY, LBVM_ID_TAG_KEY, PRODUCT_TAG_KEY, PRODUCT_TAG_VALUE
from lbcp.reconcile.observed import ObservedInstance, ObservedNetworkInterface

# EventBridge's event for an instance changing state, and the states in which an
# LBVM stops serving: the reconciler is run for its load balancer at once.
INSTANCE_STATE_CHANGE = "EC2 Instance State-change Notification"
INSTANCE_LOST_STATES = ("shutting-down", "terminated", "stopping", "stopped")

# The EC2 filter that lists what carries our product tag (the checker lists by it too).
PRODUCT_TAG_FILTER = [{"Name": f"tag:{PRODUCT_TAG_KEY}", "Values": [PRODUCT_TAG_VALUE]}]
# EC2 accepts at most 200 values in one filter (DescribeInstances: "The maximum number of
# filter values specified on a single call is 200"): more load balancers are listed in chunks.
FILTER_VALUES_LIMIT = 200


def owner_filters(load_balancer_ids: Collection[str] | None) -> Iterator[list[dict[str, Any]]]:
    """The Filters of each listing: the product tag alone, or with at most 200 load balancer ids each."""
    if load_balancer_ids is None:
        yield PRODUCT_TAG_FILTER
        return
    ordered = sorted(set(load_balancer_ids))
    for start in range(0, len(ordered), FILTER_VALUES_LIMIT):
        chunk = ordered[start : start + FILTER_VALUES_LIMIT]
        yield [*PRODUCT_TAG_FILTER, {"Name": f"tag:{LB_ID_TAG_KEY}", "Values": chunk}]


class NotOurs(Exception):
    """Refused: the resource does not carry this load balancer's owner tags."""


def tags_of(resource: dict[str, Any], key: str = "Tags") -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in resource.get(key) or []}


class Ec2Compute:
    """One paginated DescribeInstances and DescribeNetworkInterfaces a tick (a 200 load balancers chunk, if scoped)."""

    def __init__(self, ec2: Any) -> None:
        self._ec2 = ec2
        self._zones: dict[str, str | None] = {}  # subnets never move between zones

    def observe(
        self, load_balancer_ids: Collection[str] | None = None
    ) -> tuple[list[ObservedInstance], list[ObservedNetworkInterface]]:
        """What carries our product tag; with ``load_balancer_ids``, only what carries one of theirs.

        An empty collection lists nothing (no call): there is nothing to look for.
        """
        instances: list[ObservedInstance] = []
        interfaces: list[ObservedNetworkInterface] = []
        for filters in owner_filters(load_balancer_ids):
            instances += self._instances(filters)
            interfaces += self._interfaces(filters)
        return instances, interfaces

    def _instances(self, filters: list[dict[str, Any]]) -> list[ObservedInstance]:
        instances: list[ObservedInstance] = []
        for page in self._ec2.get_paginator("describe_instances").paginate(
            Filters=filters, PaginationConfig={"PageSize": 1000}
        ):
            for reservation in page.get("Reservations", []):
                for instance in reservation.get("Instances", []):
                    tags = tags_of(instance)
                    if LB_ID_TAG_KEY not in tags:
                        continue
                    instances.append(
                        ObservedInstance(
                            instance_id=instance["InstanceId"],
                            load_balancer_id=tags[LB_ID_TAG_KEY],
                            lbvm_id=tags.get(LBVM_ID_TAG_KEY),
                            state=instance["State"]["Name"],
                            subnet_id=instance.get("SubnetId"),
                            private_ip=instance.get("PrivateIpAddress"),
                            launched_at=instance.get("LaunchTime"),
                            image_id=instance.get("ImageId"),
                        )
                    )
        return instances

    def _interfaces(self, filters: list[dict[str, Any]]) -> list[ObservedNetworkInterface]:
        interfaces: list[ObservedNetworkInterface] = []
        for page in self._ec2.get_paginator("describe_network_interfaces").paginate(
            Filters=filters, PaginationConfig={"PageSize": 1000}
        ):
            for interface in page.get("NetworkInterfaces", []):
                tags = tags_of(interface, "TagSet")
                if LB_ID_TAG_KEY not in tags:
                    continue
                interfaces.append(
                    ObservedNetworkInterface(
                        network_interface_id=interface["NetworkInterfaceId"],
                        load_balancer_id=tags[LB_ID_TAG_KEY],
                        lbvm_id=tags.get(LBVM_ID_TAG_KEY),
                        status=interface.get("Status", "unknown"),
                        attached_instance_id=(interface.get("Attachment") or {}).get("InstanceId"),
                    )
                )
        return interfaces

    def owner_of(self, instance_id: str) -> str | None:
        """The load balancer an instance belongs to by its owner tags; None when it is not ours or gone."""
        try:
            described = self._ec2.describe_instances(InstanceIds=[instance_id])
        except self._ec2.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code", "").startswith("InvalidInstanceID"):
                return None  # gone already, or never existed: the minute tick will see what is left
            raise
        for reservation in described.get("Reservations", []):
            for instance in reservation.get("Instances", []):
                tags = tags_of(instance)
                if tags.get(PRODUCT_TAG_KEY) == PRODUCT_TAG_VALUE and LB_ID_TAG_KEY in tags:
                    return tags[LB_ID_TAG_KEY]
        return None

    def availability_zone(self, subnet_id: str) -> str | None:
        if subnet_id not in self._zones:
            subnets = self._ec2.describe_subnets(SubnetIds=[subnet_id]).get("Subnets", [])
            self._zones[subnet_id] = subnets[0]["AvailabilityZone"] if subnets else None
        return self._zones[subnet_id]

    def terminate_instance(self, load_balancer_id: str, instance_id: str) -> None:
        # Nothing is deleted that does not carry our owner tag: check it at the moment of deletion.
        described = self._ec2.describe_instances(InstanceIds=[instance_id])
        for reservation in described.get("Reservations", []):
            for instance in reservation.get("Instances", []):
                self._require_ours(tags_of(instance), load_balancer_id, instance_id)
                if instance["State"]["Name"] not in ("shutting-down", "terminated"):
                    self._ec2.terminate_instances(InstanceIds=[instance_id])

    def delete_network_interface(self, load_balancer_id: str, network_interface_id: str) -> None:
        described = self._ec2.describe_network_interfaces(NetworkInterfaceIds=[network_interface_id])
        for interface in described.get("NetworkInterfaces", []):
            self._require_ours(tags_of(interface, "TagSet"), load_balancer_id, network_interface_id)
            self._ec2.delete_network_interface(NetworkInterfaceId=network_interface_id)

    @staticmethod
    def _require_ours(tags: dict[str, str], load_balancer_id: str, resource_id: str) -> None:
        if tags.get(PRODUCT_TAG_KEY) != PRODUCT_TAG_VALUE or tags.get(LB_ID_TAG_KEY) != load_balancer_id:
            raise NotOurs(f"{resource_id} does not carry the owner tags of {load_balancer_id}")
