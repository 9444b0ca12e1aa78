"""Lists the cloud for the checker: every resource carrying our product tag, paginated.

A fixed number of paginated listings whatever the number of load balancers:
instances, interfaces, Elastic IPs and security groups by the product tag
filter (EC2 filters on tags server-side); NLBs and target groups by the
``lbcp-`` name prefix, then their tags (ELBv2 cannot filter on tags;
DescribeTags takes 20 ARNs per call, its page); the hosted zone's records;
the RUNNING executions of the two state machines. What costs one call per
load balancer (an NLB's listeners, a target group's registrations) is read
for at most ``detail_budget`` load balancers per run, in rotation
(``verification_batch``, as the reconciler does), so every load balancer is
verified every ceil(n / budget) runs and a run's calls stay bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Final

from lbcp import LB_ID_TAG_KEY, PRODUCT_TAG_KEY, PRODUCT_TAG_VALUE
from lbcp.consistency.inventory import (
    CloudInventory,
    DnsRecord,
    ElasticIp,
    Execution,
    ExecutionKind,
    IngressRule,
    Instance,
    NetworkInterface,
    Nlb,
    SecurityGroup,
    TargetGroup,
)
from lbcp.entry import dns, network, pool
from lbcp.entry.names import target_group_port
from lbcp.reconcile.compute import PRODUCT_TAG_FILTER, tags_of
from lbcp.reconcile.run import verification_batch

DEFAULT_DETAIL_BUDGET: Final = 10
# DescribeVpcs takes at most 200 values per filter.
VPC_BATCH: Final = 200


def _ingress(group: dict[str, Any]) -> frozenset[IngressRule]:
    """Every ingress rule of a described group, one per source, as the reconciler sees them (``ingress_atoms``)."""
    return frozenset(
        IngressRule(atom.protocol, atom.from_port, atom.to_port, atom.source) for atom in network.ingress_atoms(group)
    )


class CountingClients:
    """Counts every AWS call made through the clients it hands out (botocore's before-call event)."""

    def __init__(self, client: Callable[[str], Any]) -> None:
        self._client = client
        self._clients: dict[str, Any] = {}
        self.calls = 0

    def __call__(self, service: str) -> Any:
        if service not in self._clients:
            made = self._client(service)
            made.meta.events.register("before-call.*.*", self._count)
            self._clients[service] = made
        return self._clients[service]

    def _count(self, **_: Any) -> None:
        self.calls += 1


class AwsInventory:
    def __init__(
        self,
        client: Callable[[str], Any],
        *,
        hosted_zone_id: str | None,
        dns_domain: str | None,
        state_machine_arns: dict[ExecutionKind, str | None],
        detail_budget: int = DEFAULT_DETAIL_BUDGET,
        run_period: timedelta = timedelta(minutes=15),
    ) -> None:
        self._clients = CountingClients(client)
        self._zone = hosted_zone_id
        self._domain = dns_domain
        self._machines = {kind: arn for kind, arn in state_machine_arns.items() if arn}
        self._budget = detail_budget
        self._period = run_period

    def list(self, now: datetime) -> CloudInventory:
        start = self._clients.calls
        ec2, elbv2 = self._clients("ec2"), self._clients("elbv2")
        groups = self._security_groups(ec2)
        nlbs, target_groups = self._entries(elbv2, now)
        return CloudInventory(
            listed_at=now,
            instances=self._instances(ec2),
            network_interfaces=self._interfaces(ec2),
            elastic_ips=self._addresses(ec2),
            security_groups=groups,
            nlbs=nlbs,
            target_groups=target_groups,
            dns_records=self._dns_records(),
            dns_domain=self._domain if self._zone else None,
            executions=self._executions() if self._machines else None,
            vpc_cidrs=self._vpc_cidrs(ec2, {group.vpc_id for group in groups}),
            calls=self._clients.calls - start,
        )

    # --- EC2 -----------------------------------------------------------------------------

    def _instances(self, ec2: Any) -> tuple[Instance, ...]:
        found: list[Instance] = []
        for page in ec2.get_paginator("describe_instances").paginate(
            Filters=PRODUCT_TAG_FILTER, PaginationConfig={"PageSize": 1000}
        ):
            for reservation in page.get("Reservations", []):
                for raw in reservation.get("Instances", []):
                    found.append(
                        Instance(
                            tags=tags_of(raw),
                            instance_id=raw["InstanceId"],
                            state=raw["State"]["Name"],
                            launched_at=raw.get("LaunchTime"),
                        )
                    )
        return tuple(found)

    def _interfaces(self, ec2: Any) -> tuple[NetworkInterface, ...]:
        found: list[NetworkInterface] = []
        for page in ec2.get_paginator("describe_network_interfaces").paginate(
            Filters=PRODUCT_TAG_FILTER, PaginationConfig={"PageSize": 1000}
        ):
            for raw in page.get("NetworkInterfaces", []):
                found.append(
                    NetworkInterface(
                        tags=tags_of(raw, "TagSet"),
                        network_interface_id=raw["NetworkInterfaceId"],
                        status=raw.get("Status", "unknown"),
                        attached_instance_id=(raw.get("Attachment") or {}).get("InstanceId"),
                    )
                )
        return tuple(found)

    def _addresses(self, ec2: Any) -> tuple[ElasticIp, ...]:
        # DescribeAddresses is not paginated: it answers every matching address at once.
        raw_addresses = ec2.describe_addresses(Filters=PRODUCT_TAG_FILTER).get("Addresses", [])
        return tuple(
            ElasticIp(
                tags=tags_of(raw),
                allocation_id=raw.get("AllocationId", raw.get("PublicIp", "")),
                public_ip=raw.get("PublicIp"),
                association_id=raw.get("AssociationId"),
            )
            for raw in raw_addresses
        )

    def _security_groups(self, ec2: Any) -> tuple[SecurityGroup, ...]:
        return tuple(
            SecurityGroup(
                tags=tags_of(raw),
                group_id=raw["GroupId"],
                name=raw.get("GroupName", ""),
                vpc_id=raw.get("VpcId", ""),
                ingress=_ingress(raw),
            )
            for raw in network.list_owned_security_groups(ec2, (PRODUCT_TAG_KEY, PRODUCT_TAG_VALUE))
        )

    def _vpc_cidrs(self, ec2: Any, vpc_ids: Iterable[str]) -> dict[str, tuple[str, ...]]:
        ids = sorted(vpc_id for vpc_id in vpc_ids if vpc_id)
        cidrs: dict[str, tuple[str, ...]] = {}
        for start in range(0, len(ids), VPC_BATCH):
            batch = ids[start : start + VPC_BATCH]
            for page in ec2.get_paginator("describe_vpcs").paginate(Filters=[{"Name": "vpc-id", "Values": batch}]):
                for vpc in page.get("Vpcs", []):
                    cidrs[vpc["VpcId"]] = network.vpc_cidr_blocks(vpc)
        return cidrs

    # --- ELBv2 ---------------------------------------------------------------------------

    def _entries(self, elbv2: Any, now: datetime) -> tuple[tuple[Nlb, ...], tuple[TargetGroup, ...]]:
        nlbs = pool.list_product_nlbs(elbv2)
        raw_groups = pool.list_product_target_groups(elbv2)
        tags = {
            arn: {tag["Key"]: tag["Value"] for tag in listed}
            for arn, listed in pool.tags_by_arn(
                elbv2, [nlb.arn for nlb in nlbs] + [raw["TargetGroupArn"] for raw in raw_groups]
            ).items()
        }
        owners = {nlb.arn: tags.get(nlb.arn, {}).get(LB_ID_TAG_KEY) for nlb in nlbs}
        verify = verification_batch((owner for owner in owners.values() if owner), now, self._budget, self._period)
        listed_nlbs: list[Nlb] = []
        for nlb in nlbs:
            ports: frozenset[int] | None = None
            if owners[nlb.arn] in verify:
                listeners = elbv2.describe_listeners(LoadBalancerArn=nlb.arn).get("Listeners", [])
                ports = frozenset(int(listener["Port"]) for listener in listeners)
            listed_nlbs.append(
                Nlb(tags=tags.get(nlb.arn, {}), arn=nlb.arn, name=nlb.name, scheme=nlb.scheme, listener_ports=ports)
            )
        listed_groups: list[TargetGroup] = []
        for raw in raw_groups:
            group_tags = tags.get(raw["TargetGroupArn"], {})
            owner = group_tags.get(LB_ID_TAG_KEY)
            port = target_group_port(owner, raw["TargetGroupName"]) if owner else None
            registered: frozenset[str] | None = None
            if owner in verify and port is not None:
                registered = pool.registered_instances(
                    elbv2, pool.TargetGroup(raw["TargetGroupArn"], raw["TargetGroupName"], port)
                )
            listed_groups.append(
                TargetGroup(
                    tags=group_tags,
                    arn=raw["TargetGroupArn"],
                    name=raw["TargetGroupName"],
                    port=int(raw.get("Port") or 0),
                    registered=registered,
                )
            )
        return tuple(listed_nlbs), tuple(listed_groups)

    # --- Route 53 and Step Functions ------------------------------------------------------

    def _dns_records(self) -> tuple[DnsRecord, ...] | None:
        if not self._zone or not self._domain:
            return None
        return tuple(
            DnsRecord(record.name, record.type, record.set_identifier, record.alias_target)
            for record in dns.iter_zone_records(self._clients("route53"), self._zone)
        )

    def _executions(self) -> tuple[Execution, ...]:
        sfn = self._clients("stepfunctions")
        found: list[Execution] = []
        for kind, arn in self._machines.items():
            for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn, statusFilter="RUNNING"):
                for raw in page.get("executions", []):
                    found.append(Execution(raw["executionArn"], raw["name"], kind, raw["startDate"]))
        return tuple(found)
