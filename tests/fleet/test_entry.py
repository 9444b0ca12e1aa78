"""The entry adapter against moto's EC2, ELBv2 and Route53: build, converge, register, observe, tear down."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from lbcp import LB_ID_TAG_KEY, PRODUCT_TAG_KEY
from lbcp.entry import EntryAdapter, EntryNotConfigured, EntryNotReady
from lbcp.entry.names import ELBV2_NAME_MAX, nlb_name, target_group_name
from lbcp.models.lbvm import Lbvm
from lbcp.models.spec import LoadBalancerSpec
from lbcp.reconcile.observed import EntryView
from lbcp_local.seed import example_spec
from tests.conftest import REGION, Cloud

LB_ID = "lb-0123456789abcdef0"


@pytest.fixture
def zone(cloud: Cloud) -> tuple[str, str]:
    route53 = boto3.client("route53", region_name=REGION)
    domain = f"{uuid.uuid4().hex[:8]}.lbcp.test"
    zone_id = route53.create_hosted_zone(Name=domain, CallerReference=uuid.uuid4().hex)["HostedZone"]["Id"]
    return zone_id.rsplit("/", 1)[-1], domain


class BothWays(EntryAdapter):
    """Every observation made both ways: from the account's listings and by name (``scoped``); they must agree.

    So each test of this module that observes an entry also checks the scoped reads (a tick of a
    few load balancers) against the listings, on the states it builds: ready, half built, dns mode,
    a mode switch's leftovers, drifted rules, another scheme, registrations. The one difference
    allowed is the documented one: a target group neither behind the NLB nor named for a listener
    of the spec (``observe_entries``), which only changes ``resources_left``.
    """

    def observe_entries(
        self,
        load_balancers: Sequence[tuple[str, LoadBalancerSpec]],
        verify: Iterable[str] = (),
        *,
        scoped: bool = False,
    ) -> dict[str, EntryView]:
        verify = list(verify)
        listed = super().observe_entries(load_balancers, verify)
        by_name = super().observe_entries(load_balancers, verify, scoped=True)
        for lb_id, view in listed.items():
            assert replace(by_name[lb_id], resources_left=view.resources_left) == view, lb_id
            assert by_name[lb_id].resources_left <= view.resources_left
        self.compared += len(listed)
        return by_name if scoped else listed

    compared = 0


@pytest.fixture
def adapter(cloud: Cloud, zone: tuple[str, str]) -> Iterator[EntryAdapter]:
    checked = BothWays(
        ec2=cloud.ec2,
        elbv2=boto3.client("elbv2", region_name=REGION),
        route53=boto3.client("route53", region_name=REGION),
        hosted_zone_id=zone[0],
        dns_domain=zone[1],
    )
    yield checked


@pytest.fixture
def elbv2() -> Any:
    return boto3.client("elbv2", region_name=REGION)


@pytest.fixture
def lb_ids() -> Iterator[list[str]]:
    # Unique per test: the module's account is shared, and names derive from the id.
    yield [f"lb-{uuid.uuid4().hex[:17]}" for _ in range(3)]


def spec_of(cloud: Cloud, **changes: Any) -> LoadBalancerSpec:
    return LoadBalancerSpec.model_validate({**example_spec(cloud.account), **changes})


def instance(cloud: Cloud) -> dict[str, Any]:
    image = cloud.ec2.register_image(Name=f"entry-{uuid.uuid4().hex[:6]}", RootDeviceName="/dev/xvda")["ImageId"]
    found: dict[str, Any] = cloud.ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, SubnetId=cloud.account.subnet_ids[0]
    )["Instances"][0]
    return found


def _tags(elbv2: Any, arn: str) -> dict[str, str]:
    (description,) = elbv2.describe_tags(ResourceArns=[arn])["TagDescriptions"]
    return {tag["Key"]: tag["Value"] for tag in description["Tags"]}


def test_names_fit_the_elbv2_limits() -> None:
    assert len(nlb_name(LB_ID)) <= ELBV2_NAME_MAX
    assert len(target_group_name(LB_ID, 65535)) <= ELBV2_NAME_MAX


def test_pool_entry_is_built_once_with_owner_tags(
    cloud: Cloud, adapter: EntryAdapter, elbv2: Any, zone: tuple[str, str], lb_ids: list[str]
) -> None:
    lb_id = lb_ids[0]
    spec = spec_of(cloud)
    view = adapter.ensure_entry(spec, lb_id)
    assert view.ready and view.dns_name == f"web.{zone[1]}"
    assert adapter.ensure_entry(spec, lb_id) == view  # idempotent

    (nlb,) = elbv2.describe_load_balancers(Names=[nlb_name(lb_id)])["LoadBalancers"]
    assert (nlb["Type"], nlb["Scheme"]) == ("network", "internet-facing")
    groups = elbv2.describe_target_groups(LoadBalancerArn=nlb["LoadBalancerArn"])["TargetGroups"]
    assert sorted((g["Port"], g["Protocol"], g["TargetType"], g["HealthCheckProtocol"]) for g in groups) == [
        (80, "TCP", "instance", "TCP"),
        (443, "TCP", "instance", "TCP"),  # HTTPS passes through: the LBVM terminates TLS
    ]
    listeners = elbv2.describe_listeners(LoadBalancerArn=nlb["LoadBalancerArn"])["Listeners"]
    assert sorted((listener["Port"], listener["Protocol"]) for listener in listeners) == [(80, "TCP"), (443, "TCP")]
    for arn in [nlb["LoadBalancerArn"], *(g["TargetGroupArn"] for g in groups)]:
        assert {PRODUCT_TAG_KEY: "lbcp", LB_ID_TAG_KEY: lb_id}.items() <= _tags(elbv2, arn).items()
    attributes = {
        a["Key"]: a["Value"]
        for a in elbv2.describe_target_group_attributes(TargetGroupArn=groups[0]["TargetGroupArn"])["Attributes"]
    }
    assert attributes["deregistration_delay.timeout_seconds"] == str(spec.drain.timeout_seconds)
    # A dead LBVM is out of the NLB's rotation within 10 s: 2 failed checks 5 s apart.
    for group in groups:
        assert (
            group["HealthCheckIntervalSeconds"],
            group["HealthyThresholdCount"],
            group["UnhealthyThresholdCount"],
        ) == (5, 3, 2)

    (group,) = cloud.ec2.describe_security_groups(GroupIds=[view.security_group_id])["SecurityGroups"]
    rules = {(p["FromPort"], r["CidrIp"]) for p in group["IpPermissions"] for r in p["IpRanges"]}
    assert rules == {(80, "0.0.0.0/0"), (443, "0.0.0.0/0")}
    records = boto3.client("route53", region_name=REGION).list_resource_record_sets(HostedZoneId=zone[0])
    (alias,) = [r for r in records["ResourceRecordSets"] if "AliasTarget" in r]
    assert alias["Name"].rstrip(".") == f"web.{zone[1]}"
    assert alias["AliasTarget"]["DNSName"].rstrip(".") == nlb["DNSName"]


def test_a_target_group_with_another_health_check_gets_ours(
    cloud: Cloud, adapter: EntryAdapter, elbv2: Any, lb_ids: list[str]
) -> None:
    spec = spec_of(cloud)
    adapter.ensure_entry(spec, lb_ids[0])
    arn = elbv2.describe_target_groups(Names=[target_group_name(lb_ids[0], 80)])["TargetGroups"][0]["TargetGroupArn"]
    # As an earlier version created it (NLB's default interval), or as someone changed it by hand.
    elbv2.modify_target_group(TargetGroupArn=arn, HealthCheckIntervalSeconds=30, UnhealthyThresholdCount=3)
    adapter.ensure_entry(spec, lb_ids[0])
    [group] = elbv2.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"]
    assert (group["HealthCheckIntervalSeconds"], group["UnhealthyThresholdCount"]) == (5, 2)


def test_the_entry_converges_on_a_changed_spec(
    cloud: Cloud, adapter: EntryAdapter, elbv2: Any, lb_ids: list[str]
) -> None:
    lb_id = lb_ids[0]
    adapter.ensure_entry(spec_of(cloud), lb_id)
    changed = spec_of(
        cloud,
        listeners=[{"protocol": "TCP", "port": 8443, "defaultBackend": "app"}],
        entry={"scheme": "internal"},
    )
    view = adapter.ensure_entry(changed, lb_id)
    (nlb,) = elbv2.describe_load_balancers(Names=[nlb_name(lb_id)])["LoadBalancers"]
    # An NLB's scheme is fixed at creation: it was made again, internal.
    assert nlb["Scheme"] == "internal"
    nlb_arn = nlb["LoadBalancerArn"]
    assert [listener["Port"] for listener in elbv2.describe_listeners(LoadBalancerArn=nlb_arn)["Listeners"]] == [8443]
    names = {g["TargetGroupName"] for g in elbv2.describe_target_groups()["TargetGroups"]}
    assert target_group_name(lb_id, 8443) in names
    assert target_group_name(lb_id, 80) not in names
    (group,) = cloud.ec2.describe_security_groups(GroupIds=[view.security_group_id])["SecurityGroups"]
    assert {(p["FromPort"], r["CidrIp"]) for p in group["IpPermissions"] for r in p["IpRanges"]} == {
        (8443, "10.20.0.0/16")  # internal: the VPC only
    }


def test_register_deregister_and_observe_in_pool_mode(cloud: Cloud, adapter: EntryAdapter, lb_ids: list[str]) -> None:
    lb_id = lb_ids[0]
    spec = spec_of(cloud)
    adapter.ensure_entry(spec, lb_id)
    vm = instance(cloud)
    registration = adapter.register_lbvm(
        spec, lb_id, lbvm_id="lbvm-000000000001", instance_id=vm["InstanceId"], private_ip=vm["PrivateIpAddress"]
    )
    assert registration.describe() == "2 target groups"
    view = adapter.observe_entries([(lb_id, spec)], verify=[lb_id])[lb_id]
    assert view.ready and view.registered_instance_ids == frozenset({vm["InstanceId"]})
    # Not verified: registrations are not read at all.
    assert adapter.observe_entries([(lb_id, spec)])[lb_id].registered_instance_ids is None

    adapter.deregister_lbvm(spec, lb_id, lbvm_id="lbvm-000000000001", instance_id=vm["InstanceId"])
    adapter.deregister_lbvm(spec, lb_id, lbvm_id="lbvm-000000000001", instance_id=vm["InstanceId"])  # again: fine
    assert adapter.observe_entries([(lb_id, spec)], verify=[lb_id])[lb_id].registered_instance_ids == frozenset()


def test_registering_before_the_entry_exists_is_refused(cloud: Cloud, adapter: EntryAdapter) -> None:
    with pytest.raises(EntryNotReady):
        adapter.register_lbvm(
            spec_of(cloud),
            f"lb-{uuid.uuid4().hex[:17]}",
            lbvm_id="lbvm-000000000001",
            instance_id="i-1",
            private_ip=None,
        )


def test_dns_mode_has_one_record_per_lbvm(
    cloud: Cloud, adapter: EntryAdapter, zone: tuple[str, str], lb_ids: list[str]
) -> None:
    lb_id = lb_ids[0]
    spec = spec_of(cloud, name="direct", entry={"mode": "dns", "scheme": "internal"})
    view = adapter.ensure_entry(spec, lb_id)
    assert view.ready and view.dns_name == f"direct.{zone[1]}" and view.security_group_id is not None
    for index, address in enumerate(["10.20.1.5", "10.20.1.6"]):
        adapter.register_lbvm(spec, lb_id, lbvm_id=f"lbvm-00000000000{index}", instance_id="i-x", private_ip=address)
    observed = adapter.observe_entries([(lb_id, spec)], verify=[lb_id])[lb_id]
    assert observed.dns_record_ips == {"lbvm-000000000000": "10.20.1.5", "lbvm-000000000001": "10.20.1.6"}
    records = [
        r
        for r in boto3.client("route53", region_name=REGION).list_resource_record_sets(HostedZoneId=zone[0])[
            "ResourceRecordSets"
        ]
        if r.get("SetIdentifier")
    ]
    assert {(r["TTL"], r["MultiValueAnswer"]) for r in records} == {(30, True)}

    adapter.deregister_lbvm(spec, lb_id, lbvm_id="lbvm-000000000000", instance_id="i-x")
    observed = adapter.observe_entries([(lb_id, spec)], verify=[lb_id])[lb_id]
    assert observed.dns_record_ips == {"lbvm-000000000001": "10.20.1.6"}


def test_dns_mode_needs_a_hosted_zone(cloud: Cloud) -> None:
    adapter = EntryAdapter(
        ec2=cloud.ec2,
        elbv2=boto3.client("elbv2", region_name=REGION),
        route53=boto3.client("route53", region_name=REGION),
        hosted_zone_id=None,
        dns_domain=None,
    )
    with pytest.raises(EntryNotConfigured, match="hosted zone"):
        adapter.ensure_entry(spec_of(cloud, entry={"mode": "dns"}), f"lb-{uuid.uuid4().hex[:17]}")


def test_observe_reads_many_load_balancers_with_a_fixed_number_of_listings(
    cloud: Cloud, adapter: EntryAdapter, lb_ids: list[str]
) -> None:
    specs = [(lb_id, spec_of(cloud, name=f"web{index}")) for index, lb_id in enumerate(lb_ids)]
    for lb_id, spec in specs[:2]:
        adapter.ensure_entry(spec, lb_id)
    calls: list[str] = []
    for client in (adapter._ec2, adapter._elbv2, adapter._route53):
        client.meta.events.register("before-call.*.*", lambda model, **_: calls.append(model.name))
    views = EntryAdapter.observe_entries(adapter, specs)  # once: the checked fixture would observe twice
    assert [views[lb_id].ready for lb_id, _ in specs] == [True, True, False]
    assert views[specs[2][0]].resources_left == 0
    # One listing each, however many load balancers: no per-load-balancer reads when nothing is verified.
    assert sorted(calls) == [
        "DescribeLoadBalancers",
        "DescribeSecurityGroups",
        "DescribeTargetGroups",
        "ListResourceRecordSets",
    ]


def test_teardown_removes_everything_and_is_idempotent(
    cloud: Cloud, adapter: EntryAdapter, elbv2: Any, zone: tuple[str, str], lb_ids: list[str]
) -> None:
    lb_id = lb_ids[0]
    spec = spec_of(cloud)
    adapter.ensure_entry(spec, lb_id)
    assert adapter.teardown_entry(spec, lb_id) == []
    assert adapter.teardown_entry(spec, lb_id) == []
    view = adapter.observe_entries([(lb_id, spec)], verify=[lb_id])[lb_id]
    assert (view.ready, view.security_group_id, view.resources_left) == (False, None, 0)
    names = {g["TargetGroupName"] for g in elbv2.describe_target_groups()["TargetGroups"]}
    assert not any(name.startswith(nlb_name(lb_id)) for name in names)
    records = boto3.client("route53", region_name=REGION).list_resource_record_sets(HostedZoneId=zone[0])
    assert not [r for r in records["ResourceRecordSets"] if r["Type"] == "A"]


def test_teardown_leaves_what_is_not_ours(cloud: Cloud, adapter: EntryAdapter, elbv2: Any, lb_ids: list[str]) -> None:
    lb_id = lb_ids[0]
    spec = spec_of(cloud)
    # Someone else's NLB that happens to carry our name (no owner tags).
    elbv2.create_load_balancer(Name=nlb_name(lb_id), Subnets=list(spec.subnet_ids), Type="network")
    left = adapter.teardown_entry(spec, lb_id)
    assert left == [f"NLB {nlb_name(lb_id)} (not ours: no owner tags)"]
    assert elbv2.describe_load_balancers(Names=[nlb_name(lb_id)])["LoadBalancers"]


# --- mode and scheme switches ----------------------------------------------------------


def serving_lbvm(lb_id: str, vm: dict[str, Any], lbvm_id: str = "lbvm-000000000001") -> Lbvm:
    now = datetime.now(UTC)
    return Lbvm(
        lbvm_id=lbvm_id, load_balancer_id=lb_id, subnet_id=vm["SubnetId"], state="Routable", state_since=now,
        version=1, launched_generation=1, launch_reason="test", created_at=now, instance_id=vm["InstanceId"],
        private_ip=vm["PrivateIpAddress"],
    )  # fmt: skip


class RecordChanges:
    """Every ChangeResourceRecordSets call the adapter makes, as (action, set identifier or 'alias') lists."""

    def __init__(self, route53: Any) -> None:
        self.batches: list[list[tuple[str, str]]] = []
        route53.meta.events.register("provide-client-params.route53.ChangeResourceRecordSets", self._seen)

    def _seen(self, params: dict[str, Any], **_: Any) -> None:
        self.batches.append(
            [
                (c["Action"], c["ResourceRecordSet"].get("SetIdentifier") or "alias")
                for c in params["ChangeBatch"]["Changes"]
            ]
        )


def names_of(route53: Any, zone_id: str) -> list[tuple[str, str]]:
    """(set identifier or 'alias', value) of the A records in the zone."""
    found = []
    for record in route53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]:
        if record["Type"] == "A":
            value = record.get("AliasTarget", {}).get("DNSName") or record["ResourceRecords"][0]["Value"]
            found.append((record.get("SetIdentifier", "alias"), value.rstrip(".")))
    return sorted(found)


def test_pool_to_dns_moves_the_name_to_the_lbvms_in_one_change_then_removes_the_nlb(
    cloud: Cloud, adapter: EntryAdapter, elbv2: Any, zone: tuple[str, str], lb_ids: list[str]
) -> None:
    lb_id = lb_ids[0]
    pool_spec = spec_of(cloud, entry={"scheme": "internal"})
    adapter.ensure_entry(pool_spec, lb_id)
    vm = instance(cloud)
    adapter.register_lbvm(
        pool_spec, lb_id, lbvm_id="lbvm-000000000001", instance_id=vm["InstanceId"], private_ip=vm["PrivateIpAddress"]
    )
    dns_spec = spec_of(cloud, entry={"mode": "dns", "scheme": "internal"})
    view = adapter.observe_entries([(lb_id, dns_spec)], verify=[lb_id])[lb_id]
    assert view.ready and len(view.drift) == 1
    assert f"NLB {nlb_name(lb_id)}" in view.drift[0] and "left from pool mode" in view.drift[0]
    assert target_group_name(lb_id, 80) in view.drift[0] and "the alias record" in view.drift[0]

    route53 = boto3.client("route53", region_name=REGION)
    changes = RecordChanges(adapter._route53)
    adapter.ensure_entry(dns_spec, lb_id, [serving_lbvm(lb_id, vm)])
    # One atomic batch: the name never answers nothing (nor both kinds of record, which Route 53 refuses).
    assert changes.batches == [[("DELETE", "alias"), ("UPSERT", "lbvm-000000000001")]]
    assert names_of(route53, zone[0]) == [("lbvm-000000000001", vm["PrivateIpAddress"])]
    assert nlb_name(lb_id) not in {nlb["LoadBalancerName"] for nlb in elbv2.describe_load_balancers()["LoadBalancers"]}
    left = {g["TargetGroupName"] for g in elbv2.describe_target_groups()["TargetGroups"]}
    assert not {target_group_name(lb_id, 80), target_group_name(lb_id, 443)} & left
    after = adapter.observe_entries([(lb_id, dns_spec)], verify=[lb_id])[lb_id]
    assert after.drift == () and after.dns_record_ips == {"lbvm-000000000001": vm["PrivateIpAddress"]}


def test_dns_to_pool_moves_the_name_to_the_nlb_once_it_routes_to_the_lbvms(
    cloud: Cloud, adapter: EntryAdapter, elbv2: Any, zone: tuple[str, str], lb_ids: list[str]
) -> None:
    lb_id = lb_ids[0]
    dns_spec = spec_of(cloud, entry={"mode": "dns", "scheme": "internal"})
    adapter.ensure_entry(dns_spec, lb_id)
    vm = instance(cloud)
    adapter.register_lbvm(
        dns_spec, lb_id, lbvm_id="lbvm-000000000001", instance_id=vm["InstanceId"], private_ip=vm["PrivateIpAddress"]
    )
    pool_spec = spec_of(cloud, entry={"scheme": "internal"})
    assert not adapter.observe_entries([(lb_id, pool_spec)])[lb_id].ready  # no alias yet: EnsureEntry runs

    route53 = boto3.client("route53", region_name=REGION)
    changes = RecordChanges(adapter._route53)
    adapter.ensure_entry(pool_spec, lb_id, [serving_lbvm(lb_id, vm)])
    assert changes.batches == [[("DELETE", "lbvm-000000000001"), ("UPSERT", "alias")]]
    (nlb,) = elbv2.describe_load_balancers(Names=[nlb_name(lb_id)])["LoadBalancers"]
    assert names_of(route53, zone[0]) == [("alias", nlb["DNSName"])]
    view = adapter.observe_entries([(lb_id, pool_spec)], verify=[lb_id])[lb_id]
    # The serving LBVM was registered before the name moved: the NLB had somewhere to send clients.
    assert view.ready and view.registered_instance_ids == frozenset({vm["InstanceId"]}) and view.drift == ()


def test_dns_to_pool_keeps_the_lbvm_records_while_no_lbvm_passes_the_nlb_health_check(
    cloud: Cloud, adapter: EntryAdapter, zone: tuple[str, str], lb_ids: list[str]
) -> None:
    lb_id = lb_ids[0]
    dns_spec = spec_of(cloud, entry={"mode": "dns", "scheme": "internal"})
    adapter.ensure_entry(dns_spec, lb_id)
    vm = instance(cloud)
    adapter.register_lbvm(
        dns_spec, lb_id, lbvm_id="lbvm-000000000001", instance_id=vm["InstanceId"], private_ip=vm["PrivateIpAddress"]
    )
    cloud.ec2.stop_instances(InstanceIds=[vm["InstanceId"]])  # the NLB's health check cannot pass
    pool_spec = spec_of(cloud, entry={"scheme": "internal"})
    with pytest.raises(EntryNotReady, match=r"keeps answering with the LBVMs' own records"):
        adapter.ensure_entry(pool_spec, lb_id, [serving_lbvm(lb_id, vm)])
    route53 = boto3.client("route53", region_name=REGION)
    assert names_of(route53, zone[0]) == [("lbvm-000000000001", vm["PrivateIpAddress"])]


def test_a_wrong_scheme_is_drift_and_the_repair_makes_the_nlb_again_keeping_registrations(
    cloud: Cloud, adapter: EntryAdapter, elbv2: Any, zone: tuple[str, str], lb_ids: list[str]
) -> None:
    lb_id = lb_ids[0]
    public = spec_of(cloud)
    adapter.ensure_entry(public, lb_id)
    vm = instance(cloud)
    adapter.register_lbvm(
        public, lb_id, lbvm_id="lbvm-000000000001", instance_id=vm["InstanceId"], private_ip=vm["PrivateIpAddress"]
    )
    old_arn = elbv2.describe_load_balancers(Names=[nlb_name(lb_id)])["LoadBalancers"][0]["LoadBalancerArn"]
    internal = spec_of(cloud, entry={"scheme": "internal"})
    # The security group's rules drift too (internal admits the VPC only); the NLB is the new part.
    (drift,) = [d for d in adapter.observe_entries([(lb_id, internal)])[lb_id].drift if d.startswith("NLB")]
    assert drift.startswith(f"NLB {nlb_name(lb_id)} is internet-facing but the spec asks for internal")
    adapter.ensure_entry(internal, lb_id, [serving_lbvm(lb_id, vm)])
    (nlb,) = elbv2.describe_load_balancers(Names=[nlb_name(lb_id)])["LoadBalancers"]
    assert nlb["Scheme"] == "internal" and nlb["LoadBalancerArn"] != old_arn  # a new NLB
    route53 = boto3.client("route53", region_name=REGION)
    assert names_of(route53, zone[0]) == [("alias", nlb["DNSName"])]
    view = adapter.observe_entries([(lb_id, internal)], verify=[lb_id])[lb_id]
    assert view.ready and view.drift == () and view.registered_instance_ids == frozenset({vm["InstanceId"]})


def test_every_kind_of_hand_added_rule_is_drift_and_revoked(
    cloud: Cloud, adapter: EntryAdapter, lb_ids: list[str]
) -> None:
    lb_id = lb_ids[0]
    spec = spec_of(cloud)
    group_id = adapter.ensure_entry(spec, lb_id).security_group_id
    assert group_id is not None
    other = cloud.ec2.create_security_group(GroupName=f"other-{lb_id}", Description="x", VpcId=spec.vpc_id)["GroupId"]
    cloud.ec2.authorize_security_group_ingress(
        GroupId=group_id,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 1000, "ToPort": 2000, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
            {"IpProtocol": "udp", "FromPort": 53, "ToPort": 53, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
            {"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "::/0", "Description": "by hand"}]},
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": other}]},
        ],
    )
    drift = adapter.observe_entries([(lb_id, spec)])[lb_id].drift
    assert sorted(drift) == sorted(
        f"security group {group_id} admits {rule}, which the spec does not imply"
        for rule in ("tcp/1000-2000 0.0.0.0/0", "udp/53 10.0.0.0/8", "-1 ::/0", f"tcp/80 {other}")
    )
    adapter.ensure_entry(spec, lb_id)
    (group,) = cloud.ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    left = [
        (p["IpProtocol"], p.get("FromPort"), r["CidrIp"]) for p in group["IpPermissions"] for r in p.get("IpRanges", [])
    ]
    assert sorted(left) == [("tcp", 80, "0.0.0.0/0"), ("tcp", 443, "0.0.0.0/0")]
    assert all(not p.get("Ipv6Ranges") and not p.get("UserIdGroupPairs") for p in group["IpPermissions"])
    assert adapter.observe_entries([(lb_id, spec)])[lb_id].drift == ()
