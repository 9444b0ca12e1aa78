"""A simulated world for the pure checker: consistent load balancers, then planted faults.

``World`` builds what a converged fleet looks like (records, LBVMs, their
instances and interfaces, each entry's security group, NLB, listeners,
target groups and DNS records), and each ``plant_*`` adds one fault and
returns the key of the finding the checker must report for it (or None for
races the checker must not report).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from lbcp import LB_ID_TAG_KEY, LBVM_ID_TAG_KEY, PRODUCT_TAG_KEY, PRODUCT_TAG_VALUE
from lbcp.consistency.inventory import (
    CloudInventory,
    DnsRecord,
    ElasticIp,
    Execution,
    IngressRule,
    Instance,
    NetworkInterface,
    Nlb,
    SecurityGroup,
    TableSnapshot,
    TargetGroup,
)
from lbcp.entry.names import nlb_name, record_name, target_group_name
from lbcp.models.lbvm import Lbvm
from lbcp.models.resource import LoadBalancerRecord
from lbcp.service import initial_status
from lbcp.validation import parse_spec

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=2)
DOMAIN = "lb.example.internal"
VPC = "vpc-0123456789abcdef0"
VPC_CIDR = "10.20.0.0/16"

Key = tuple[str, str, str]


def owner(lb_id: str, lbvm_id: str | None = None, product: bool = True) -> dict[str, str]:
    tags = {LB_ID_TAG_KEY: lb_id}
    if product:
        tags[PRODUCT_TAG_KEY] = PRODUCT_TAG_VALUE
    if lbvm_id:
        tags[LBVM_ID_TAG_KEY] = lbvm_id
    return tags


def spec_document(
    name: str, *, ports: tuple[int, ...] = (80, 443), mode: str = "pool", scheme: str = "internet-facing"
) -> dict[str, Any]:
    return {
        "name": name,
        "type": "classic",
        "vpcId": VPC,
        "subnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
        "listeners": [{"protocol": "TCP", "port": port, "defaultBackend": "app"} for port in ports],
        "backends": [{"name": "app", "targets": [{"host": "10.20.1.10", "port": 8080}]}],
        "capacity": {"min": 1, "max": 6},
        "entry": {"mode": mode, "scheme": scheme},
    }


@dataclass
class World:
    rng: random.Random
    records: list[LoadBalancerRecord] = field(default_factory=list)
    lbvms: list[Lbvm] = field(default_factory=list)
    instances: list[Instance] = field(default_factory=list)
    interfaces: list[NetworkInterface] = field(default_factory=list)
    addresses: list[ElasticIp] = field(default_factory=list)
    groups: list[SecurityGroup] = field(default_factory=list)
    nlbs: list[Nlb] = field(default_factory=list)
    target_groups: list[TargetGroup] = field(default_factory=list)
    dns_records: list[DnsRecord] = field(default_factory=list)
    executions: list[Execution] = field(default_factory=list)
    counter: int = 0

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter:017x}"

    # --- a converged load balancer --------------------------------------------------------

    def load_balancer(
        self, *, mode: str = "pool", scheme: str = "internet-facing", lbvms: int = 2
    ) -> LoadBalancerRecord:
        lb_id = self.next_id("lb")
        name = f"lb{self.counter}"
        spec = parse_spec(spec_document(name, mode=mode, scheme=scheme))
        record = LoadBalancerRecord(
            id=lb_id, generation=1, spec=spec, status=initial_status(spec), created_at=LONG_AGO,
            updated_at=LONG_AGO, desired_capacity=lbvms,
        )  # fmt: skip
        self.records.append(record)
        sources = ["0.0.0.0/0"] if scheme == "internet-facing" else [VPC_CIDR]
        rules = frozenset(IngressRule("tcp", p, p, s) for p in (80, 443) for s in sources)
        self.groups.append(SecurityGroup(owner(lb_id), self.next_id("sg"), f"lbcp-{lb_id}-lbvms", VPC, rules))
        instance_ids = []
        for _ in range(lbvms):
            instance_ids.append(self.lbvm(record).instance_id or "")
        if mode == "pool":
            self.nlbs.append(
                Nlb(owner(lb_id), f"arn:nlb/{lb_id}", nlb_name(lb_id), scheme, LONG_AGO, frozenset({80, 443}))
            )
            for port in (80, 443):
                self.target_groups.append(
                    TargetGroup(owner(lb_id), f"arn:tg/{lb_id}/{port}", target_group_name(lb_id, port), port,
                                frozenset(instance_ids))
                )  # fmt: skip
            self.dns_records.append(
                DnsRecord(record_name(name, DOMAIN), "A", None, f"{nlb_name(lb_id)}-1.elb.amazonaws.com")
            )
        return record

    def lbvm(self, record: LoadBalancerRecord, state: str = "Routable") -> Lbvm:
        lbvm_id = self.next_id("lbvm")
        instance_id, interface_id = self.next_id("i"), self.next_id("eni")
        lbvm = Lbvm(
            lbvm_id=lbvm_id, load_balancer_id=record.id, subnet_id="subnet-0123456789abcdef0", state=state,
            state_since=LONG_AGO, version=3, launched_generation=1, launch_reason="test", created_at=LONG_AGO,
            instance_id=instance_id, network_interface_id=interface_id, execution_arn=f"arn:exec/{lbvm_id}",
        )  # fmt: skip
        self.lbvms.append(lbvm)
        self.instances.append(Instance(owner(record.id, lbvm_id), instance_id, "running", LONG_AGO))
        self.interfaces.append(NetworkInterface(owner(record.id, lbvm_id), interface_id, "in-use", instance_id))
        self.executions.append(Execution(f"arn:exec/{lbvm_id}", lbvm_id, "lifecycle", LONG_AGO))
        if record.spec.entry.mode == "dns":
            self.dns_records.append(DnsRecord(record_name(record.spec.name, DOMAIN), "A", lbvm_id, None))
        return lbvm

    # --- faults ---------------------------------------------------------------------------

    def plant_orphan(self) -> Key | None:
        """A resource tagged for a load balancer id that has no record (an untagged twin alongside)."""
        ghost = self.next_id("lb")
        kind = self.rng.choice(["instance", "network-interface", "elastic-ip", "security-group", "nlb", "target-group"])
        untagged = owner(ghost, product=False)
        match kind:
            case "instance":
                resource = self.next_id("i")
                self.instances.append(Instance(owner(ghost, "lbvm-gone"), resource, "running", LONG_AGO))
                self.instances.append(Instance(untagged, self.next_id("i"), "running", LONG_AGO))
            case "network-interface":
                resource = self.next_id("eni")
                self.interfaces.append(NetworkInterface(owner(ghost), resource, "available"))
                self.interfaces.append(NetworkInterface(untagged, self.next_id("eni"), "available"))
            case "elastic-ip":
                resource = self.next_id("eipalloc")
                self.addresses.append(ElasticIp(owner(ghost), resource, "203.0.113.9"))
                self.addresses.append(ElasticIp(untagged, self.next_id("eipalloc"), "203.0.113.10"))
            case "security-group":
                resource = self.next_id("sg")
                self.groups.append(SecurityGroup(owner(ghost), resource, f"lbcp-{ghost}-lbvms", VPC))
                self.groups.append(SecurityGroup(untagged, self.next_id("sg"), "look-alike", VPC))
            case "nlb":
                resource = f"arn:nlb/{ghost}"
                self.nlbs.append(Nlb(owner(ghost), resource, nlb_name(ghost)))
                self.nlbs.append(Nlb(untagged, f"arn:nlb/{ghost}-twin", nlb_name(ghost) + "x"))
            case _:
                resource = f"arn:tg/{ghost}"
                self.target_groups.append(TargetGroup(owner(ghost), resource, target_group_name(ghost, 80), 80))
                self.target_groups.append(TargetGroup(untagged, resource + "-twin", target_group_name(ghost, 81), 81))
        return ("orphan", kind, resource)

    def plant_unclaimed_instance(self) -> Key | None:
        """An instance of a live load balancer that no LBVM record claims: old, or a launch in flight."""
        record = self.rng.choice(self.records)
        instance_id = self.next_id("i")
        in_flight = self.rng.random() < 0.5
        launched = NOW - timedelta(minutes=2) if in_flight else NOW - timedelta(hours=1)
        self.instances.append(Instance(owner(record.id, self.next_id("lbvm")), instance_id, "running", launched))
        return None if in_flight else ("orphan", "instance", instance_id)

    def plant_launching_marker(self) -> Key | None:
        """A Launching LBVM whose instance exists but is not recorded on it yet: claimed, not an orphan."""
        record = self.rng.choice(self.records)
        lbvm = self.lbvm(record, state="Launching")
        index = self.lbvms.index(lbvm)
        self.lbvms[index] = lbvm.model_copy(update={"instance_id": None, "network_interface_id": None})
        return None

    def plant_leak(self) -> Key | None:
        record = self.rng.choice(self.records)
        lbvm = self.lbvm(record)
        self.instances = [i for i in self.instances if i.instance_id != lbvm.instance_id]
        self.interfaces = [n for n in self.interfaces if n.attached_instance_id != lbvm.instance_id]
        for group in self.target_groups:
            if group.registered is not None and lbvm.instance_id in group.registered:
                self.target_groups[self.target_groups.index(group)] = replace(
                    group, registered=group.registered - {lbvm.instance_id or ""}
                )
        return ("leak", "lbvm-record", lbvm.lbvm_id)

    def plant_rule_drift(self) -> Key | None:
        index = self.rng.randrange(len(self.groups))
        group = self.groups[index]
        if not group.ours or group.load_balancer_id not in {r.id for r in self.records}:
            return None
        rule = IngressRule("tcp", 22, 22, "0.0.0.0/0")
        if rule in group.ingress:
            return None
        self.groups[index] = replace(group, ingress=group.ingress | {rule})
        return ("drift", "security-group-rule", f"{group.group_id}:tcp/22:0.0.0.0/0")

    def plant_listener_drift(self) -> Key | None:
        candidates = [i for i, n in enumerate(self.nlbs) if n.listener_ports and 443 in n.listener_ports]
        if not candidates:
            return None
        index = self.rng.choice(candidates)
        nlb = self.nlbs[index]
        self.nlbs[index] = replace(nlb, listener_ports=(nlb.listener_ports or frozenset()) - {443})
        return ("drift", "listener", f"{nlb.name}:443")

    def plant_stuck_execution(self) -> Key | None:
        record = self.rng.choice(self.records)
        lbvm = self.lbvm(record)
        index = self.lbvms.index(lbvm)
        self.lbvms[index] = lbvm.model_copy(update={"state": "Terminated", "terminated_at": NOW - timedelta(hours=3)})
        # Its drain took it out of the entry (the execution is what is stuck, not the LBVM).
        self.dns_records = [r for r in self.dns_records if r.set_identifier != lbvm.lbvm_id]
        self.instances = [i for i in self.instances if i.instance_id != lbvm.instance_id]
        self.interfaces = [n for n in self.interfaces if n.attached_instance_id != lbvm.instance_id]
        for group in self.target_groups:
            if group.registered is not None and lbvm.instance_id in group.registered:
                self.target_groups[self.target_groups.index(group)] = replace(
                    group, registered=group.registered - {lbvm.instance_id or ""}
                )
        return ("stuck", "execution", f"arn:exec/{lbvm.lbvm_id}")

    # --- what the checker is given ----------------------------------------------------------

    def cloud(self) -> CloudInventory:
        return CloudInventory(
            listed_at=NOW,
            instances=tuple(self.instances),
            network_interfaces=tuple(self.interfaces),
            elastic_ips=tuple(self.addresses),
            security_groups=tuple(self.groups),
            nlbs=tuple(self.nlbs),
            target_groups=tuple(self.target_groups),
            dns_records=tuple(self.dns_records),
            dns_domain=DOMAIN,
            executions=tuple(self.executions),
            vpc_cidrs={VPC: (VPC_CIDR,)},
        )

    def table(self) -> TableSnapshot:
        return TableSnapshot(tuple(self.records), tuple(self.lbvms))
