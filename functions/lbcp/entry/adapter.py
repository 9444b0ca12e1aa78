"""The entry adapter: how clients reach a load balancer's LBVMs.

One object for the reconciler (``ensure``, ``observe``, ``register``,
``deregister``, ``teardown``: the ``EntryPort`` of ``lbcp.reconcile.ports``) and
for the lifecycle tasks function (``register_lbvm``, ``deregister_lbvm``).

- ``pool`` mode: the LBVMs' security group, an NLB across the spec's subnets,
  a TCP target group and listener per listener port, and, when a hosted zone is
  configured, the alias ``<name>.<domain>`` for the NLB. LBVMs are instance
  targets of every target group.
- ``dns`` mode: the security group only; each routable LBVM is one multivalue
  A record ``<name>.<domain>`` with ``SetIdentifier`` = its id.

Every call is idempotent: resources are found by deterministic names before
anything is created, registrations and UPSERTs can be repeated, deletes of
what is already gone succeed. Nothing without our owner tags is deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import ClientError

from lbcp import LB_ID_TAG_KEY, PRODUCT_TAG_KEY, PRODUCT_TAG_VALUE
from lbcp.entry import dns, network, pool
from lbcp.entry.names import nlb_name, record_name, security_group_name, target_group_port
from lbcp.models.lbvm import Lbvm
from lbcp.models.resource import LoadBalancerRecord
from lbcp.models.spec import LoadBalancerSpec
from lbcp.reconcile.observed import EntryView
from lbcp.settings import Settings

logger = logging.getLogger(__name__)

# Registrations are verified for at most this many target groups per observe
# call, so one tick's reads stay bounded however many load balancers there are.
DEFAULT_MAX_VERIFIED_TARGET_GROUPS: Final = 50


class EntryNotConfigured(Exception):
    """The spec asks for something this deployment cannot do (dns mode without a hosted zone)."""


class EntryNotReady(Exception):
    """The entry is not (fully) built yet: ``ensure`` has to run first."""


def _left_from_pool(
    nlb: pool.Nlb | None, groups: dict[int, pool.TargetGroup], alias: Sequence[dns.ZoneRecord]
) -> tuple[str, ...]:
    """A dns-mode entry's drift: what pool mode left (after a switch, or a teardown that did not finish)."""
    left = [f"NLB {nlb.name}"] if nlb is not None else []
    left += [f"target group {group.name}" for _, group in sorted(groups.items())]
    left += [f"the alias record {record.name}" for record in alias]
    if not left:
        return ()
    return (f"the entry is in dns mode but {', '.join(left)} {'is' if len(left) == 1 else 'are'} left from pool mode",)


def _scheme_drift(nlb: pool.Nlb | None, spec: LoadBalancerSpec) -> tuple[str, ...]:
    if nlb is None or nlb.scheme == spec.entry.scheme:
        return ()
    return (
        f"NLB {nlb.name} is {nlb.scheme} but the spec asks for {spec.entry.scheme}; an NLB's scheme is fixed at "
        "creation, so it is replaced (its DNS name changes, the alias record follows, connections through it end)",
    )


@dataclass(frozen=True)
class Registration:
    """What ``register_lbvm``/``deregister_lbvm`` did, for events."""

    mode: str
    target_groups: int = 0
    record_name: str | None = None
    address: str | None = None

    def describe(self) -> str:
        if self.mode == "pool":
            return f"{self.target_groups} target group{'s' if self.target_groups != 1 else ''}"
        return f"DNS record {self.record_name} -> {self.address}" if self.address else f"DNS record {self.record_name}"


class EntryAdapter:
    def __init__(
        self,
        *,
        ec2: Any,
        elbv2: Any,
        route53: Any,
        hosted_zone_id: str | None,
        dns_domain: str | None,
        max_verified_target_groups: int = DEFAULT_MAX_VERIFIED_TARGET_GROUPS,
    ) -> None:
        self._ec2 = ec2
        self._elbv2 = elbv2
        self._route53 = route53
        self._zone = hosted_zone_id
        self._domain = dns_domain
        self._max_verified = max_verified_target_groups

    @classmethod
    def from_settings(cls, settings: Settings, session: Any = None) -> EntryAdapter:
        import boto3

        source = session or boto3
        return cls(
            ec2=source.client("ec2"),
            elbv2=source.client("elbv2"),
            route53=source.client("route53"),
            hosted_zone_id=settings.hosted_zone_id,
            dns_domain=settings.dns_domain,
        )

    # --- names -----------------------------------------------------------------------

    @property
    def dns_configured(self) -> bool:
        return bool(self._zone and self._domain)

    def record_name(self, spec: LoadBalancerSpec) -> str | None:
        return record_name(spec.name, self._domain) if self._zone and self._domain else None

    def _require_zone(self, spec: LoadBalancerSpec) -> tuple[str, str]:
        name = self.record_name(spec)
        if self._zone is None or name is None:
            raise EntryNotConfigured(
                f"entry mode dns needs a hosted zone: this deployment has none configured (load balancer {spec.name})"
            )
        return self._zone, name

    # --- ensure ------------------------------------------------------------------------

    def ensure_entry(self, spec: LoadBalancerSpec, load_balancer_id: str, serving: Sequence[Lbvm] = ()) -> EntryView:
        """Create or converge everything the spec's entry needs; returns it as observed.

        ``serving``: the Routable LBVMs. An entry that changes mode moves its
        name to them (pool -> dns) or to the NLB once it can carry them (dns -> pool).
        """
        if spec.entry.mode == "dns":
            zone, record = self._require_zone(spec)
            group = network.ensure_security_group(self._ec2, spec, load_balancer_id)
            self._leave_pool(spec, load_balancer_id, zone, record, serving)
            return EntryView(ready=True, dns_name=record, security_group_id=group.group_id, resources_left=1)
        group = network.ensure_security_group(self._ec2, spec, load_balancer_id)
        behind_old_nlb = self._replace_nlb_of_another_scheme(spec, load_balancer_id)
        nlb, groups = pool.ensure_pool(self._elbv2, spec, load_balancer_id)
        for port, stale in behind_old_nlb.items():
            if port not in groups:  # the new NLB never had them: ensure_pool cannot see them as stale
                pool.delete_target_group(self._elbv2, stale)
        name = self.record_name(spec)
        if self._zone is not None and name is not None:
            self._point_name_at_nlb(load_balancer_id, nlb, groups=groups, zone=self._zone, name=name, serving=serving)
        return EntryView(
            ready=True,
            dns_name=name or nlb.dns_name,
            security_group_id=group.group_id,
            resources_left=2 + len(groups) + (1 if name else 0),
        )

    def _replace_nlb_of_another_scheme(
        self, spec: LoadBalancerSpec, load_balancer_id: str
    ) -> dict[int, pool.TargetGroup]:
        """An NLB's scheme is fixed at creation: one of the wrong scheme is deleted, and made again.

        Its DNS name changes (the alias record follows) and connections through
        it end, as with any NLB replacement; the target groups, and so the
        LBVMs' registrations, are kept. Returns the groups the old NLB had.
        """
        nlb = pool.find_nlb(self._elbv2, load_balancer_id)
        if nlb is None or nlb.scheme == spec.entry.scheme:
            return {}
        behind = pool.target_groups_of_nlb(self._elbv2, load_balancer_id, nlb)
        gone = pool.delete_nlb(self._elbv2, load_balancer_id, nlb)
        if gone is None:
            raise EntryNotReady(f"NLB {nlb.name} has the wrong scheme ({nlb.scheme}) but no owner tags: not replaced")
        if not gone:
            raise EntryNotReady(
                f"NLB {nlb.name} is {nlb.scheme} and the spec asks for {spec.entry.scheme}: it is being deleted, "
                "to be made again once it is gone"
            )
        logger.warning("replaced NLB %s: scheme %s -> %s", nlb.name, nlb.scheme, spec.entry.scheme)
        return behind

    def _leave_pool(
        self, spec: LoadBalancerSpec, load_balancer_id: str, zone: str, name: str, serving: Sequence[Lbvm]
    ) -> None:
        """pool -> dns: the name moves from the NLB to the serving LBVMs in one change, then the NLB goes."""
        addresses: dict[str, str] = {}
        for lbvm in serving:
            if lbvm.instance_id is None:
                continue
            try:
                addresses[lbvm.lbvm_id] = self._address(spec, lbvm.instance_id, lbvm.private_ip)
            except EntryNotReady:
                continue  # no address yet: registration publishes it later
        if dns.swap_alias_for_lbvm_records(self._route53, zone, name, addresses, spec.entry.dns_ttl_seconds):
            logger.info("entry %s: %s moved from the NLB to %d LBVM records", load_balancer_id, name, len(addresses))
        left = pool.teardown_pool(self._elbv2, load_balancer_id, spec)
        if left:
            logger.info("entry %s: left from pool mode, still going: %s", load_balancer_id, "; ".join(left))

    def _point_name_at_nlb(
        self,
        load_balancer_id: str,
        nlb: pool.Nlb,
        *,
        groups: dict[int, pool.TargetGroup],
        zone: str,
        name: str,
        serving: Sequence[Lbvm],
    ) -> None:
        """The alias record; dns -> pool moves the name only once the NLB can carry the serving LBVMs."""
        if not dns.lbvm_records_named(self._route53, zone, name):
            dns.ensure_alias(self._route53, zone, name, nlb.dns_name, nlb.canonical_zone_id)
            return
        # The name still answers with the LBVMs' own records: it keeps doing so until
        # the new NLB is active and routes to them on every port.
        instance_ids = sorted({lbvm.instance_id for lbvm in serving if lbvm.instance_id})
        for instance_id in instance_ids:
            try:
                pool.register(self._elbv2, groups.values(), instance_id)
            except ClientError as exc:
                # Not running (stopping, or stopped behind our back): it cannot carry the name either.
                if exc.response.get("Error", {}).get("Code") != "InvalidTarget":
                    raise
        current = pool.find_nlb(self._elbv2, load_balancer_id) or nlb  # a new NLB was read as it was created
        if current.state != "active":
            raise EntryNotReady(
                f"entry mode dns -> pool: NLB {nlb.name} is {current.state}; {name} keeps answering with the "
                "LBVMs' own records until it is active"
            )
        if instance_ids:
            waiting = [port for port, group in sorted(groups.items()) if not pool.healthy_instances(self._elbv2, group)]
            if waiting:
                raise EntryNotReady(
                    f"entry mode dns -> pool: no LBVM passes the NLB's health check yet on port(s) {waiting}; "
                    f"{name} keeps answering with the LBVMs' own records until one does"
                )
        moved = dns.swap_lbvm_records_for_alias(self._route53, zone, name, nlb.dns_name, nlb.canonical_zone_id)
        logger.info("entry: %s moved from %d LBVM records to NLB %s", name, moved, nlb.name)

    # --- registration ----------------------------------------------------------------

    def register_lbvm(
        self,
        spec: LoadBalancerSpec,
        load_balancer_id: str,
        *,
        lbvm_id: str,
        instance_id: str,
        private_ip: str | None,
    ) -> Registration:
        if spec.entry.mode == "dns":
            zone, name = self._require_zone(spec)
            address = self._address(spec, instance_id, private_ip)
            dns.upsert_lbvm_record(
                self._route53, zone, name, lbvm_id=lbvm_id, address=address, ttl=spec.entry.dns_ttl_seconds
            )
            return Registration("dns", record_name=name, address=address)
        ports = {listener.port for listener in spec.listeners}
        groups = pool.find_target_groups(self._elbv2, load_balancer_id, ports)
        missing = sorted(ports - groups.keys())
        if missing:
            raise EntryNotReady(f"no target group for port(s) {missing} of {load_balancer_id}")
        count = pool.register(self._elbv2, groups.values(), instance_id)
        return Registration("pool", target_groups=count)

    def deregister_lbvm(
        self,
        spec: LoadBalancerSpec | None,
        load_balancer_id: str,
        *,
        lbvm_id: str | None,
        instance_id: str | None,
    ) -> Registration:
        """Take the LBVM out of the entry; a no-op for what is not there.

        Without a spec (the record is gone) both kinds of trace are looked for.
        """
        removed_record = None
        name = self.record_name(spec) if spec is not None else None
        if (
            lbvm_id
            and self._zone is not None
            and name is not None
            and dns.delete_lbvm_record(self._route53, self._zone, name, lbvm_id)
        ):
            removed_record = name
        count = 0
        if instance_id is not None and (spec is None or spec.entry.mode == "pool"):
            groups = pool.all_target_groups(self._elbv2, load_balancer_id, spec)
            count = pool.deregister(self._elbv2, groups.values(), instance_id)
        mode = spec.entry.mode if spec is not None else ("dns" if removed_record else "pool")
        return Registration(mode, target_groups=count, record_name=removed_record)

    def _address(self, spec: LoadBalancerSpec, instance_id: str, private_ip: str | None) -> str:
        """The address a dns-mode record publishes: the public one for internet-facing entries."""
        if spec.entry.scheme == "internet-facing":
            reservations = self._ec2.describe_instances(InstanceIds=[instance_id]).get("Reservations", [])
            for reservation in reservations:
                for instance in reservation.get("Instances", []):
                    if instance.get("PublicIpAddress"):
                        return str(instance["PublicIpAddress"])
            logger.warning(
                "internet-facing dns entry: %s has no public address; publishing its private one", instance_id
            )
        if private_ip is None:
            raise EntryNotReady(f"{instance_id} has no address yet")
        return private_ip

    # --- observe -----------------------------------------------------------------------

    def observe_entries(
        self,
        load_balancers: Sequence[tuple[str, LoadBalancerSpec]],
        verify: Iterable[str] = (),
        *,
        scoped: bool = False,
    ) -> dict[str, EntryView]:
        """The entry of each load balancer, from a fixed number of paginated listings.

        Registrations (target health, per-LBVM records) are read only for the
        ids in ``verify``, and for at most ``max_verified_target_groups`` target
        groups in all.

        ``scoped``: read these load balancers' resources by name instead of listing every one of
        the account (``_scoped_sources``: about three calls each), for a tick of one or a few
        whose latency must not grow with the fleet. The views are the listing's, except that a
        target group neither behind the NLB nor named for a listener of the spec is not seen (a
        leftover the next full listing reports): never for a load balancer being deleted, whose
        finalizer must see everything that is left.
        """
        if not load_balancers:
            return {}
        verify_ids = set(verify)
        groups_by_lb: dict[str, str] = {}
        parsed_by_lb: dict[str, network.SecurityGroup] = {}
        owned = network.list_owned_security_groups(
            self._ec2, (PRODUCT_TAG_KEY, PRODUCT_TAG_VALUE), [lb_id for lb_id, _ in load_balancers] if scoped else None
        )
        for raw in owned:
            tags = {tag["Key"]: tag["Value"] for tag in raw.get("Tags", [])}
            if LB_ID_TAG_KEY in tags:
                groups_by_lb[tags[LB_ID_TAG_KEY]] = raw["GroupId"]
                parsed_by_lb[tags[LB_ID_TAG_KEY]] = network.parse_security_group(raw)
        drift = self._rule_drift(load_balancers, parsed_by_lb)
        nlbs, ours_by_lb, records = (
            self._scoped_sources(load_balancers) if scoped else self._listed_sources(load_balancers)
        )
        budget = self._max_verified
        views: dict[str, EntryView] = {}
        for load_balancer_id, spec in load_balancers:
            name = self.record_name(spec)
            named = [record for record in records if name is not None and record.name == name]
            lbvm_records = {r.set_identifier: r.values[0] for r in named if r.set_identifier and r.values}
            security_group = groups_by_lb.get(load_balancer_id)
            nlb = nlbs.get(nlb_name(load_balancer_id))
            ours = ours_by_lb.get(load_balancer_id, {})
            alias = [r for r in named if r.alias_target is not None and r.set_identifier is None]
            if spec.entry.mode == "dns":
                views[load_balancer_id] = EntryView(
                    ready=security_group is not None and name is not None,
                    dns_name=name,
                    security_group_id=security_group,
                    dns_record_ips=lbvm_records if load_balancer_id in verify_ids else None,
                    resources_left=(1 if security_group else 0) + len(lbvm_records),
                    drift=drift.get(load_balancer_id, ()) + _left_from_pool(nlb, ours, alias),
                )
                continue
            wanted_ports = {listener.port for listener in spec.listeners}
            ready = (
                security_group is not None
                and nlb is not None
                and wanted_ports <= ours.keys()
                and (name is None or (bool(alias) and nlb is not None and alias[0].alias_target == nlb.dns_name))
            )
            registered: frozenset[str] | None = None
            if load_balancer_id in verify_ids and nlb is not None and ready and len(wanted_ports) <= budget:
                budget -= len(wanted_ports)
                sets = [pool.registered_instances(self._elbv2, ours[port]) for port in sorted(wanted_ports)]
                registered = frozenset.intersection(*sets) if sets else frozenset()
                listeners = self._elbv2.describe_listeners(LoadBalancerArn=nlb.arn).get("Listeners", [])
                ready = wanted_ports <= {listener["Port"] for listener in listeners}
            views[load_balancer_id] = EntryView(
                ready=ready,
                dns_name=name or (nlb.dns_name if nlb else None),
                security_group_id=security_group,
                registered_instance_ids=registered,
                dns_record_ips=lbvm_records if load_balancer_id in verify_ids and lbvm_records else None,
                resources_left=(1 if security_group else 0)
                + (1 if nlb else 0)
                + len(ours)
                + len(alias)
                + len(lbvm_records),
                drift=drift.get(load_balancer_id, ()) + _scheme_drift(nlb, spec),
            )
        return views

    def _listed_sources(
        self, load_balancers: Sequence[tuple[str, LoadBalancerSpec]]
    ) -> tuple[dict[str, pool.Nlb], dict[str, dict[int, pool.TargetGroup]], list[dns.ZoneRecord]]:
        """Every NLB, target group and zone record of ours in the account: one paginated listing each."""
        # Listed for dns-mode entries too: what a switch from pool mode left behind is drift.
        nlbs = {nlb.name: nlb for nlb in pool.list_product_nlbs(self._elbv2)}
        ours_by_lb: dict[str, dict[int, pool.TargetGroup]] = {}
        target_groups = pool.list_product_target_groups(self._elbv2)
        for load_balancer_id, _spec in load_balancers:
            ours_by_lb[load_balancer_id] = {
                port: pool.TargetGroup(raw["TargetGroupArn"], raw["TargetGroupName"], port)
                for raw in target_groups
                if (port := target_group_port(load_balancer_id, raw["TargetGroupName"])) is not None
            }
        records: list[dns.ZoneRecord] = []
        if self._zone is not None and self._domain is not None:
            records = list(dns.iter_zone_records(self._route53, self._zone))
        return nlbs, ours_by_lb, records

    def _scoped_sources(
        self, load_balancers: Sequence[tuple[str, LoadBalancerSpec]]
    ) -> tuple[dict[str, pool.Nlb], dict[str, dict[int, pool.TargetGroup]], list[dns.ZoneRecord]]:
        """The same, read by name for each load balancer: its NLB, the target groups behind it or named
        for the spec's listeners, and the A records of its name (about three calls each)."""
        nlbs: dict[str, pool.Nlb] = {}
        ours_by_lb: dict[str, dict[int, pool.TargetGroup]] = {}
        records: list[dns.ZoneRecord] = []
        for load_balancer_id, spec in load_balancers:
            nlb = pool.find_nlb(self._elbv2, load_balancer_id)
            found = pool.target_groups_of_nlb(self._elbv2, load_balancer_id, nlb) if nlb is not None else {}
            missing = [listener.port for listener in spec.listeners if listener.port not in found]
            found.update(pool.find_target_groups(self._elbv2, load_balancer_id, missing))
            if nlb is not None:
                nlbs[nlb.name] = nlb
            ours_by_lb[load_balancer_id] = found
            name = self.record_name(spec)
            if self._zone is not None and name is not None:
                records += dns.records_named(self._route53, self._zone, name)
        return nlbs, ours_by_lb, records

    def _rule_drift(
        self, load_balancers: Sequence[tuple[str, LoadBalancerSpec]], groups: dict[str, network.SecurityGroup]
    ) -> dict[str, tuple[str, ...]]:
        """Per load balancer, the ingress rules of its group that differ from the spec (one DescribeVpcs at most).

        Every kind of rule: those the spec implies are TCP, one port, an IPv4 CIDR, so
        any other (a range, UDP, a group) is drift that ``ensure_security_group`` revokes.
        """
        internal_vpcs = sorted(
            {
                spec.vpc_id
                for lb_id, spec in load_balancers
                if lb_id in groups and spec.entry.scheme != "internet-facing"
            }
        )
        cidrs: dict[str, tuple[str, ...]] = {}
        if internal_vpcs:
            for vpc in self._ec2.describe_vpcs(VpcIds=internal_vpcs).get("Vpcs", []):
                cidrs[vpc["VpcId"]] = network.vpc_cidr_blocks(vpc)
        drift: dict[str, tuple[str, ...]] = {}
        for lb_id, spec in load_balancers:
            group = groups.get(lb_id)
            if group is None:
                continue
            wanted = network.desired_rules_for(spec, cidrs.get(spec.vpc_id, ()))
            found = [f"security group {group.group_id} admits tcp/{port} {cidr}, which the spec does not imply"
                     for port, cidr in sorted(group.rules - wanted)]  # fmt: skip
            found += [f"security group {group.group_id} admits {atom.describe()}, which the spec does not imply"
                      for atom in group.foreign]  # fmt: skip
            found += [f"security group {group.group_id} lacks tcp/{port} {cidr}, which the spec implies"
                      for port, cidr in sorted(wanted - group.rules)]  # fmt: skip
            if found:
                drift[lb_id] = tuple(found)
        return drift

    # --- teardown ----------------------------------------------------------------------

    def teardown_entry(self, spec: LoadBalancerSpec | None, load_balancer_id: str) -> list[str]:
        """Delete every entry resource of the load balancer; returns what is left (empty when done).

        Call again until it returns nothing: the NLB is deleted asynchronously,
        and the security group stays while an LBVM's network interface uses it.
        """
        left: list[str] = []
        name = self.record_name(spec) if spec is not None else None
        if self._zone is not None and name is not None:
            dns.delete_alias(self._route53, self._zone, name)
            dns.delete_lbvm_records(self._route53, self._zone, name)
        left.extend(pool.teardown_pool(self._elbv2, load_balancer_id, spec))
        if not network.delete_security_group(self._ec2, load_balancer_id):
            left.append(f"security group {security_group_name(load_balancer_id)} (in use)")
        return left

    # --- the reconciler's EntryPort ----------------------------------------------------

    def ensure(self, record: LoadBalancerRecord, serving: Sequence[Lbvm] = ()) -> EntryView:
        return self.ensure_entry(record.spec, record.id, serving)

    def register(self, record: LoadBalancerRecord, lbvm: Lbvm) -> None:
        if lbvm.instance_id is None:
            raise EntryNotReady(f"{lbvm.lbvm_id} has no instance yet")
        self.register_lbvm(
            record.spec, record.id, lbvm_id=lbvm.lbvm_id, instance_id=lbvm.instance_id, private_ip=lbvm.private_ip
        )

    def deregister(self, record: LoadBalancerRecord, *, lbvm_id: str | None, instance_id: str | None) -> None:
        self.deregister_lbvm(record.spec, record.id, lbvm_id=lbvm_id, instance_id=instance_id)

    def observe(
        self, records: Sequence[LoadBalancerRecord], verify: Iterable[str], *, scoped: bool = False
    ) -> dict[str, EntryView]:
        return self.observe_entries([(record.id, record.spec) for record in records], verify, scoped=scoped)

    def teardown(self, record: LoadBalancerRecord) -> int:
        return len(self.teardown_entry(record.spec, record.id))
