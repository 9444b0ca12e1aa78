"""The comparison itself (pure): cloud inventory + table records + specs -> findings.

Rules, by resource (``findings`` explains the kinds):

- Anything carrying our product tag whose load-balancer id has no record is an
  ``orphan`` (instances, interfaces, Elastic IPs, security groups, NLBs,
  target groups).
- An instance or a detached interface of a known load balancer is an
  ``orphan`` when no live LBVM record claims it; an instance launched less
  than ``in_flight_grace`` ago is left alone (a launch in flight whose record
  the listing may not show yet), as the planner does.
- The entry of a live load balancer ``drift``\\ s when its security group
  admits what the spec does not imply (or misses what it does), its NLB has
  the wrong scheme or listener ports, an NLB or target group outlives a switch
  to dns mode or a removed listener, or a target group holds an instance no
  LBVM of it accounts for.
- A record is a ``leak`` when nothing is behind it: an LBVM whose instance is
  gone, a load balancer without its security group or NLB, past a grace.
- A lifecycle or drain execution still running for an LBVM that is terminated
  or has no record, or a deletion far past any teardown, is ``stuck``.
- DNS records cannot be tagged: ours are the A records under our domain that
  alias an ``lbcp-`` NLB or carry an ``lbvm-`` set identifier; such a record
  that no load balancer or live LBVM explains is an ``orphan``. Anything else
  in the zone is not ours and is never looked at.

Resources without our owner tags are never findings: the listing filters on
the tag, and whatever a name-prefix listing adds without it is skipped here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from lbcp.consistency.findings import Finding, FindingKind
from lbcp.consistency.gc_policy import QUARANTINE_TAG, quarantine_time
from lbcp.consistency.inventory import (
    CloudInventory,
    IngressRule,
    Instance,
    NetworkInterface,
    ResourceType,
    TableSnapshot,
    Tagged,
)
from lbcp.entry.names import NAME_PREFIX, record_name, target_group_port
from lbcp.entry.network import desired_rules_for
from lbcp.models.lbvm import Lbvm
from lbcp.models.resource import LoadBalancerRecord
from lbcp.reconcile.observed import INSTANCE_ALIVE_STATES


@dataclass(frozen=True)
class CheckSettings:
    # An instance of a known load balancer that no LBVM record claims yet may be a launch in
    # flight: longer than the planner's orphan grace (5 min), so that the planner acts first.
    in_flight_grace: timedelta = timedelta(minutes=10)
    # A record with nothing behind it for this long is a leak (the reconciler repairs most in a tick).
    leak_grace: timedelta = timedelta(minutes=10)
    # An execution of a terminated LBVM, or a deletion, running this long is stuck.
    stuck_after: timedelta = timedelta(hours=1)


class _Findings:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.items: list[Finding] = []

    def add(
        self, kind: FindingKind, resource_type: ResourceType, resource_id: str, lb_id: str | None, message: str
    ) -> None:
        self.items.append(
            Finding(
                resource_type=resource_type,
                resource_id=resource_id,
                load_balancer_id=lb_id,
                kind=kind,
                first_seen=self.now,
                message=message,
            )
        )


def _claims(
    lbvm: Lbvm | None, load_balancer_id: str, *, instance_id: str | None = None, interface_id: str | None = None
) -> bool:
    """A live LBVM record of this load balancer that accounts for the resource."""
    if lbvm is None or lbvm.load_balancer_id != load_balancer_id or lbvm.state == "Terminated":
        return False
    if instance_id is not None and lbvm.instance_id not in (None, instance_id):
        return False  # a second instance for one LBVM: the recorded one is the LBVM's
    return not (interface_id is not None and lbvm.network_interface_id not in (None, interface_id))


def _unclaimed(lbvm: Lbvm | None, lbvm_id: str | None) -> str:
    if lbvm_id is None:
        return "it carries no LBVM id"
    if lbvm is None:
        return f"LBVM {lbvm_id} has no record"
    if lbvm.state == "Terminated":
        return f"LBVM {lbvm_id} is terminated"
    return f"LBVM {lbvm_id} uses another one"


def check(cloud: CloudInventory, table: TableSnapshot, settings: CheckSettings | None = None) -> list[Finding]:
    """Every finding, as of ``cloud.listed_at``, each ``firstSeen`` then (``carry_forward`` keeps older ones)."""
    settings = settings or CheckSettings()
    out = _Findings(cloud.listed_at)
    records = {record.id: record for record in table.load_balancers}
    lbvms = {lbvm.lbvm_id: lbvm for lbvm in table.lbvms}
    _compute(cloud, records, lbvms, settings, out)
    _entries(cloud, records, lbvms, settings, out)
    _dns(cloud, records, lbvms, out)
    _records(cloud, table, settings, out)
    tagged = _quarantine_tags(cloud)
    findings = [
        f.model_copy(
            update={"quarantined_at": quarantine_time(tagged[(f.resource_type, f.resource_id)], cloud.listed_at)}
        )
        if f.kind == "orphan" and (f.resource_type, f.resource_id) in tagged
        else f
        for f in out.items
    ]
    return sorted(findings, key=lambda f: (f.kind, f.resource_type, f.resource_id))


def _quarantine_tags(cloud: CloudInventory) -> dict[tuple[str, str], str]:
    """The quarantine tag of every listed resource that carries one, read from the listing (no call)."""
    listed: list[tuple[str, str, Tagged]] = [
        *(("instance", r.instance_id, r) for r in cloud.instances),
        *(("network-interface", r.network_interface_id, r) for r in cloud.network_interfaces),
        *(("elastic-ip", r.allocation_id, r) for r in cloud.elastic_ips),
        *(("security-group", r.group_id, r) for r in cloud.security_groups),
        *(("nlb", r.arn, r) for r in cloud.nlbs),
        *(("target-group", r.arn, r) for r in cloud.target_groups),
    ]
    return {(kind, rid): r.tags[QUARANTINE_TAG] for kind, rid, r in listed if QUARANTINE_TAG in r.tags}


def _no_record(what: str, lb_id: str) -> str:
    return f"{what} carries the owner tag of load balancer {lb_id}, which has no record"


def _compute(
    cloud: CloudInventory,
    records: dict[str, LoadBalancerRecord],
    lbvms: dict[str, Lbvm],
    settings: CheckSettings,
    out: _Findings,
) -> None:
    alive: dict[str, Instance] = {}
    for instance in cloud.instances:
        if not instance.ours or instance.state not in INSTANCE_ALIVE_STATES:
            continue
        alive[instance.instance_id] = instance
        lb_id = instance.load_balancer_id
        assert lb_id is not None
        what = f"instance {instance.instance_id} ({instance.state})"
        if lb_id not in records:
            out.add("orphan", "instance", instance.instance_id, lb_id, _no_record(what, lb_id))
            continue
        owner = lbvms.get(instance.lbvm_id or "")
        if _claims(owner, lb_id, instance_id=instance.instance_id):
            continue
        if instance.launched_at is not None and out.now - instance.launched_at < settings.in_flight_grace:
            continue  # a launch in flight
        out.add(
            "orphan",
            "instance",
            instance.instance_id,
            lb_id,
            f"{what} carries the tags of load balancer {lb_id} but no live LBVM record claims it "
            f"({_unclaimed(owner, instance.lbvm_id)})",
        )
    for interface in cloud.network_interfaces:
        if not interface.ours:
            continue
        _interface(interface, records, lbvms, alive, out)
    for address in cloud.elastic_ips:
        if address.ours and address.load_balancer_id not in records:
            lb_id = address.load_balancer_id
            assert lb_id is not None
            what = f"Elastic IP {address.public_ip or address.allocation_id}"
            if address.association_id:
                what += f" (associated: {address.association_id})"
            out.add("orphan", "elastic-ip", address.allocation_id, lb_id, _no_record(what, lb_id))


def _interface(
    interface: NetworkInterface,
    records: dict[str, LoadBalancerRecord],
    lbvms: dict[str, Lbvm],
    alive: dict[str, Instance],
    out: _Findings,
) -> None:
    lb_id = interface.load_balancer_id
    assert lb_id is not None
    what = f"network interface {interface.network_interface_id} ({interface.status})"
    if lb_id not in records:
        out.add("orphan", "network-interface", interface.network_interface_id, lb_id, _no_record(what, lb_id))
        return
    if interface.attached_instance_id in alive:
        return  # it goes with its instance, which is a finding of its own if unclaimed
    owner = lbvms.get(interface.lbvm_id or "")
    if _claims(owner, lb_id, interface_id=interface.network_interface_id):
        return
    out.add(
        "orphan",
        "network-interface",
        interface.network_interface_id,
        lb_id,
        f"{what} carries the tags of load balancer {lb_id} but no live LBVM record claims it "
        f"({_unclaimed(owner, interface.lbvm_id)})",
    )


def _entries(
    cloud: CloudInventory,
    records: dict[str, LoadBalancerRecord],
    lbvms: dict[str, Lbvm],
    settings: CheckSettings,
    out: _Findings,
) -> None:
    for group in cloud.security_groups:
        if not group.ours:
            continue
        lb_id = group.load_balancer_id
        assert lb_id is not None
        record = records.get(lb_id)
        if record is None:
            out.add(
                "orphan", "security-group", group.group_id, lb_id, _no_record(f"security group {group.group_id}", lb_id)
            )
            continue
        if record.deletion_requested_at is not None:
            continue  # teardown is removing it
        spec = record.spec
        if spec.entry.scheme != "internet-facing" and spec.vpc_id not in cloud.vpc_cidrs:
            continue  # the VPC's blocks were not read: nothing to compare with
        wanted = {
            IngressRule("tcp", port, port, source)
            for port, source in desired_rules_for(spec, cloud.vpc_cidrs.get(spec.vpc_id, ()))
        }
        for rule in sorted(group.ingress - wanted):
            out.add(
                "drift",
                "security-group-rule",
                f"{group.group_id}:{rule.as_id()}",
                lb_id,
                f"security group {group.group_id} of load balancer {lb_id} admits {rule.describe()}, which its spec "
                f"does not imply (listener ports {_ports(record)}, scheme {spec.entry.scheme}); "
                "the reconciler revokes it",
            )
        for rule in sorted(wanted - group.ingress):
            out.add(
                "drift",
                "security-group-rule",
                f"{group.group_id}:{rule.as_id()}",
                lb_id,
                f"security group {group.group_id} of load balancer {lb_id} lacks {rule.describe()}, which its spec "
                "implies; the reconciler adds it",
            )
    _nlbs(cloud, records, out)
    _target_groups(cloud, records, lbvms, out)
    _missing_entries(cloud, records, settings, out)


def _nlbs(cloud: CloudInventory, records: dict[str, LoadBalancerRecord], out: _Findings) -> None:
    for nlb in cloud.nlbs:
        if not nlb.ours:
            continue
        lb_id = nlb.load_balancer_id
        assert lb_id is not None
        record = records.get(lb_id)
        if record is None:
            out.add("orphan", "nlb", nlb.arn, lb_id, _no_record(f"NLB {nlb.name}", lb_id))
            continue
        if record.deletion_requested_at is not None:
            continue
        spec = record.spec
        if spec.entry.mode == "dns":
            out.add(
                "drift",
                "nlb",
                nlb.arn,
                lb_id,
                f"NLB {nlb.name} of load balancer {lb_id} is left behind: its entry mode is dns",
            )
            continue
        if nlb.scheme != spec.entry.scheme:
            out.add(
                "drift",
                "nlb",
                nlb.arn,
                lb_id,
                f"NLB {nlb.name} of load balancer {lb_id} is {nlb.scheme}, its spec says {spec.entry.scheme}",
            )
        if nlb.listener_ports is not None:
            wanted_ports = {listener.port for listener in spec.listeners}
            for port in sorted(wanted_ports - nlb.listener_ports):
                out.add(
                    "drift", "listener", f"{nlb.name}:{port}", lb_id,
                    f"NLB {nlb.name} of load balancer {lb_id} has no listener on port {port}, which its spec declares",
                )  # fmt: skip
            for port in sorted(nlb.listener_ports - wanted_ports):
                out.add(
                    "drift", "listener", f"{nlb.name}:{port}", lb_id,
                    f"NLB {nlb.name} of load balancer {lb_id} listens on port {port}, which its spec does not declare",
                )  # fmt: skip


def _target_groups(
    cloud: CloudInventory, records: dict[str, LoadBalancerRecord], lbvms: dict[str, Lbvm], out: _Findings
) -> None:
    for target_group in cloud.target_groups:
        if not target_group.ours:
            continue
        lb_id = target_group.load_balancer_id
        assert lb_id is not None
        record = records.get(lb_id)
        if record is None:
            what = f"target group {target_group.name}"
            out.add("orphan", "target-group", target_group.arn, lb_id, _no_record(what, lb_id))
            continue
        if record.deletion_requested_at is not None:
            continue
        port = target_group_port(lb_id, target_group.name)
        if record.spec.entry.mode == "dns" or port not in {listener.port for listener in record.spec.listeners}:
            why = "its entry mode is dns" if record.spec.entry.mode == "dns" else f"no listener on port {port}"
            out.add(
                "drift",
                "target-group",
                target_group.arn,
                lb_id,
                f"target group {target_group.name} of load balancer {lb_id} is left behind: {why}",
            )
            continue
        if target_group.registered is not None:
            accounted = {
                lbvm.instance_id
                for lbvm in lbvms.values()
                if lbvm.load_balancer_id == lb_id and lbvm.state != "Terminated" and lbvm.instance_id
            }
            for instance_id in sorted(target_group.registered - accounted):
                out.add(
                    "drift",
                    "target-registration",
                    f"{target_group.name}:{instance_id}",
                    lb_id,
                    f"target group {target_group.name} of load balancer {lb_id} routes to {instance_id}, which no "
                    "live LBVM of it accounts for; the reconciler deregisters it",
                )


def _ports(record: LoadBalancerRecord) -> str:
    return ", ".join(str(port) for port in sorted({listener.port for listener in record.spec.listeners}))


def _missing_entries(
    cloud: CloudInventory, records: dict[str, LoadBalancerRecord], settings: CheckSettings, out: _Findings
) -> None:
    with_group = {group.load_balancer_id for group in cloud.security_groups if group.ours}
    with_nlb = {nlb.load_balancer_id for nlb in cloud.nlbs if nlb.ours}
    for record in records.values():
        if record.deletion_requested_at is not None or out.now - record.created_at < settings.leak_grace:
            continue
        missing = [] if record.id in with_group else ["security group"]
        if record.spec.entry.mode == "pool" and record.id not in with_nlb:
            missing.append("NLB")
        if missing:
            out.add(
                "leak",
                "load-balancer-record",
                record.id,
                record.id,
                f"load balancer {record.spec.name} ({record.id}) has been recorded since "
                f"{record.created_at:%Y-%m-%dT%H:%M:%SZ} but its {' and '.join(missing)} does not exist",
            )


def _owner_of_alias(alias_target: str) -> str | None:
    """``lbcp-0123...-99.elb...`` -> ``lb-0123...``: an NLB's DNS name starts with its name."""
    name = alias_target.split(".", 1)[0]
    if not name.startswith(NAME_PREFIX):
        return None
    suffix = name.removeprefix(NAME_PREFIX).split("-", 1)[0]
    return f"lb-{suffix}" if suffix else None


def _dns(cloud: CloudInventory, records: dict[str, LoadBalancerRecord], lbvms: dict[str, Lbvm], out: _Findings) -> None:
    if cloud.dns_records is None or not cloud.dns_domain:
        return
    domain = cloud.dns_domain.strip(".").lower()
    by_name = {record_name(record.spec.name, domain).lower(): record for record in records.values()}
    for dns_record in cloud.dns_records:
        if dns_record.type != "A" or not dns_record.name.endswith("." + domain):
            continue
        lbvm_record = (dns_record.set_identifier or "").startswith("lbvm-")
        alias_of_ours = dns_record.alias_target is not None and dns_record.alias_target.startswith(NAME_PREFIX)
        if not (lbvm_record or alias_of_ours):
            continue  # not a record we make
        owner = by_name.get(dns_record.name)
        if owner is None:
            lb_id = _owner_of_alias(dns_record.alias_target) if dns_record.alias_target else None
            out.add(
                "orphan",
                "dns-record",
                dns_record.resource_id,
                lb_id,
                f"DNS record {dns_record.name} ({dns_record.set_identifier or 'alias'}) names no load balancer "
                "that has a record",
            )
            continue
        if owner.deletion_requested_at is not None or not lbvm_record:
            continue
        lbvm = lbvms.get(dns_record.set_identifier or "")
        if lbvm is None or lbvm.load_balancer_id != owner.id or lbvm.state == "Terminated":
            out.add(
                "orphan",
                "dns-record",
                dns_record.resource_id,
                owner.id,
                f"DNS record {dns_record.name} points at {dns_record.set_identifier}, which "
                f"{'has no record' if lbvm is None else 'is terminated'}",
            )


def _records(cloud: CloudInventory, table: TableSnapshot, settings: CheckSettings, out: _Findings) -> None:
    alive = {i.instance_id for i in cloud.instances if i.ours and i.state in INSTANCE_ALIVE_STATES}
    for lbvm in table.lbvms:
        if lbvm.state == "Terminated" or lbvm.instance_id is None or lbvm.instance_id in alive:
            continue
        if out.now - lbvm.state_since < settings.leak_grace:
            continue
        out.add(
            "leak",
            "lbvm-record",
            lbvm.lbvm_id,
            lbvm.load_balancer_id,
            f"LBVM {lbvm.lbvm_id} has been {lbvm.state} since {lbvm.state_since:%Y-%m-%dT%H:%M:%SZ} but its "
            f"instance {lbvm.instance_id} does not exist",
        )
    for record in table.load_balancers:
        requested = record.deletion_requested_at
        if requested is not None and out.now - requested > settings.stuck_after:
            out.add(
                "stuck",
                "load-balancer-record",
                record.id,
                record.id,
                f"load balancer {record.spec.name} ({record.id}) has been Deleting since "
                f"{requested:%Y-%m-%dT%H:%M:%SZ}, longer than any teardown takes",
            )
    if cloud.executions is None:
        return
    by_id = {lbvm.lbvm_id: lbvm for lbvm in table.lbvms}
    for execution in cloud.executions:
        owner = by_id.get(execution.lbvm_id)
        if owner is not None and owner.state != "Terminated":
            continue
        since = (owner.terminated_at if owner is not None else None) or execution.started_at
        if out.now - since <= settings.stuck_after:
            continue
        why = "has no record" if owner is None else "is terminated"
        out.add(
            "stuck",
            "execution",
            execution.arn,
            owner.load_balancer_id if owner is not None else None,
            f"{execution.kind} execution {execution.name} has been running since "
            f"{execution.started_at:%Y-%m-%dT%H:%M:%SZ}, but LBVM {execution.lbvm_id} {why}",
        )
