"""What one checker run saw: the cloud (by our owner tags) and the table, as plain immutable data.

The cloud is listed before the table is read (Karpenter's ordering): our
records are always written before the resources they describe (the LBVM
marker before its launch, the load balancer record before its entry), so a
resource created between the two reads already has its record when the table
is read, and is never called an orphan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

from lbcp import LB_ID_TAG_KEY, LBVM_ID_TAG_KEY, PRODUCT_TAG_KEY, PRODUCT_TAG_VALUE
from lbcp.models.lbvm import Lbvm
from lbcp.models.resource import LoadBalancerRecord

ResourceType = Literal[
    "instance",
    "network-interface",
    "elastic-ip",
    "security-group",
    "security-group-rule",
    "nlb",
    "listener",
    "target-group",
    "target-registration",
    "dns-record",
    "execution",
    "lbvm-record",
    "load-balancer-record",
]
RESOURCE_TYPES: Final[tuple[str, ...]] = ResourceType.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Tagged:
    """What every listed resource has: its tags, read from the listing itself."""

    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def ours(self) -> bool:
        """Carries our product tag and a load balancer id: the only resources we ever touch."""
        return self.tags.get(PRODUCT_TAG_KEY) == PRODUCT_TAG_VALUE and bool(self.tags.get(LB_ID_TAG_KEY))

    @property
    def load_balancer_id(self) -> str | None:
        return self.tags.get(LB_ID_TAG_KEY) or None

    @property
    def lbvm_id(self) -> str | None:
        return self.tags.get(LBVM_ID_TAG_KEY) or None


@dataclass(frozen=True)
class Instance(Tagged):
    instance_id: str = ""
    state: str = "running"
    launched_at: datetime | None = None


@dataclass(frozen=True)
class NetworkInterface(Tagged):
    network_interface_id: str = ""
    status: str = "available"
    attached_instance_id: str | None = None


@dataclass(frozen=True)
class ElasticIp(Tagged):
    allocation_id: str = ""
    public_ip: str | None = None
    association_id: str | None = None


@dataclass(frozen=True, order=True)
class IngressRule:
    protocol: str  # tcp, udp, icmp, -1
    from_port: int | None
    to_port: int | None
    source: str  # a CIDR, a prefix list or a security group id

    def describe(self) -> str:
        ports = "" if self.from_port is None else f"/{self.from_port}"
        if self.to_port is not None and self.to_port != self.from_port:
            ports += f"-{self.to_port}"
        return f"{self.protocol}{ports} {self.source}"

    def as_id(self) -> str:
        return self.describe().replace(" ", ":")


@dataclass(frozen=True)
class SecurityGroup(Tagged):
    group_id: str = ""
    name: str = ""
    vpc_id: str = ""
    ingress: frozenset[IngressRule] = frozenset()


@dataclass(frozen=True)
class Nlb(Tagged):
    arn: str = ""
    name: str = ""
    scheme: str = "internet-facing"
    created_at: datetime | None = None
    # Listener ports, only for the NLBs verified in this run (None otherwise).
    listener_ports: frozenset[int] | None = None


@dataclass(frozen=True)
class TargetGroup(Tagged):
    arn: str = ""
    name: str = ""
    port: int = 0
    # Registered instance ids, only for the groups verified in this run (None otherwise).
    registered: frozenset[str] | None = None


@dataclass(frozen=True)
class DnsRecord:
    """A record of our hosted zone (records cannot carry tags: ours by name and shape, see ``check``)."""

    name: str
    type: str
    set_identifier: str | None
    alias_target: str | None

    @property
    def resource_id(self) -> str:
        return f"{self.name}/{self.type}/{self.set_identifier or 'alias'}"


ExecutionKind = Literal["lifecycle", "drain"]


@dataclass(frozen=True)
class Execution:
    """A RUNNING execution of one of our state machines (named after its LBVM)."""

    arn: str
    name: str
    kind: ExecutionKind
    started_at: datetime

    @property
    def lbvm_id(self) -> str:
        return self.name.removeprefix("drain-")


@dataclass(frozen=True)
class CloudInventory:
    listed_at: datetime
    instances: tuple[Instance, ...] = ()
    network_interfaces: tuple[NetworkInterface, ...] = ()
    elastic_ips: tuple[ElasticIp, ...] = ()
    security_groups: tuple[SecurityGroup, ...] = ()
    nlbs: tuple[Nlb, ...] = ()
    target_groups: tuple[TargetGroup, ...] = ()
    # None when this deployment has no hosted zone (nothing to compare).
    dns_records: tuple[DnsRecord, ...] | None = None
    dns_domain: str | None = None
    # None when the state machines are not known to this run.
    executions: tuple[Execution, ...] | None = None
    # The CIDR blocks of the VPCs of internal load balancers (what their security groups admit).
    vpc_cidrs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # The AWS calls the listing cost (for the bench and the report).
    calls: int = 0


@dataclass(frozen=True)
class TableSnapshot:
    """The records, read after the cloud was listed."""

    load_balancers: tuple[LoadBalancerRecord, ...] = ()
    lbvms: tuple[Lbvm, ...] = ()
