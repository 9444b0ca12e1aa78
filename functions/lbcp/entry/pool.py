"""``pool`` mode: an NLB, one TCP target group and listener per spec listener port.

The LBVMs terminate TLS and speak HTTP themselves, so the NLB only passes TCP
through: HTTP, HTTPS, TLS and TCP listeners all become TCP listeners on the
same port, forwarding to an instance target group with TCP health checks.
Everything is found by its deterministic name before it is created, and
everything carries the owner tags.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from botocore.exceptions import ClientError

from lbcp.entry.names import has_owner_tags, nlb_name, owner_tags, target_group_name, target_group_port
from lbcp.models.spec import LoadBalancerSpec

# ELBv2 takes at most 20 names or ARNs per Describe*/DescribeTags call.
DESCRIBE_BATCH: Final = 20
PAGE_SIZE: Final = 400
# Target states of an instance that is not (or no longer) registered.
NOT_REGISTERED_STATES: Final = frozenset({"unused", "draining"})


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _batches(items: list[str], size: int = DESCRIBE_BATCH) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class TargetGroup:
    arn: str
    name: str
    port: int
    load_balancer_arns: tuple[str, ...] = ()
    health_check: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Nlb:
    arn: str
    name: str
    dns_name: str
    canonical_zone_id: str
    state: str
    scheme: str
    subnet_ids: frozenset[str] = field(default_factory=frozenset)


def _nlb(raw: dict[str, Any]) -> Nlb:
    return Nlb(
        arn=raw["LoadBalancerArn"],
        name=raw["LoadBalancerName"],
        dns_name=raw["DNSName"],
        canonical_zone_id=raw["CanonicalHostedZoneId"],
        state=raw.get("State", {}).get("Code", "active"),
        scheme=raw.get("Scheme", "internet-facing"),
        subnet_ids=frozenset(zone["SubnetId"] for zone in raw.get("AvailabilityZones", []) if "SubnetId" in zone),
    )


# How the NLB checks an LBVM itself (its own health checks, apart from the control
# plane's heartbeats): the shortest interval NLB allows and the fewest failures,
# so a target that dies without telling anyone (a crashed proxy, a lost host)
# stops getting new connections within about 10 s rather than the 60 s of NLB's
# defaults (30 s x 2). Three successes before a new target is routed; a check
# must answer within 4 s (NLB wants the timeout no longer than the interval).
TARGET_HEALTH_CHECK: dict[str, Any] = {
    "HealthCheckIntervalSeconds": 5,
    "HealthCheckTimeoutSeconds": 4,
    "HealthyThresholdCount": 3,
    "UnhealthyThresholdCount": 2,
}


def _target_group(raw: dict[str, Any], port: int) -> TargetGroup:
    return TargetGroup(
        raw["TargetGroupArn"],
        raw["TargetGroupName"],
        port,
        tuple(raw.get("LoadBalancerArns", [])),
        health_check={key: raw[key] for key in TARGET_HEALTH_CHECK if key in raw},
    )


def tags_by_arn(elbv2: Any, arns: list[str]) -> dict[str, list[dict[str, str]]]:
    """The tags of each ARN (DescribeTags, in batches of the 20 it takes)."""
    tags: dict[str, list[dict[str, str]]] = {}
    for batch in _batches(arns):
        for description in elbv2.describe_tags(ResourceArns=batch).get("TagDescriptions", []):
            tags[description["ResourceArn"]] = description.get("Tags", [])
    return tags


def owned_arns(elbv2: Any, arns: list[str], load_balancer_id: str) -> set[str]:
    """The ARNs among ``arns`` that carry this load balancer's owner tags (batched DescribeTags)."""
    return {arn for arn, tags in tags_by_arn(elbv2, arns).items() if has_owner_tags(tags, load_balancer_id)}


# --- reads -------------------------------------------------------------------------


def find_nlb(elbv2: Any, load_balancer_id: str) -> Nlb | None:
    try:
        found = elbv2.describe_load_balancers(Names=[nlb_name(load_balancer_id)]).get("LoadBalancers", [])
    except ClientError as exc:
        if _error_code(exc) == "LoadBalancerNotFound":
            return None
        raise
    return _nlb(found[0]) if found else None


def find_target_groups(elbv2: Any, load_balancer_id: str, ports: Iterable[int]) -> dict[int, TargetGroup]:
    """This load balancer's target groups for ``ports`` that exist, by port (one call per 20 names).

    DescribeTargetGroups fails as a whole when one named group is missing, so a
    batch that fails is retried name by name.
    """
    names = [target_group_name(load_balancer_id, port) for port in sorted(set(ports))]
    found: dict[int, TargetGroup] = {}
    for batch in _batches(names):
        try:
            groups = elbv2.describe_target_groups(Names=batch).get("TargetGroups", [])
        except ClientError as exc:
            if _error_code(exc) != "TargetGroupNotFound":
                raise
            groups = []
            for name in batch:
                try:
                    groups.extend(elbv2.describe_target_groups(Names=[name]).get("TargetGroups", []))
                except ClientError as inner:
                    if _error_code(inner) != "TargetGroupNotFound":
                        raise
        for group in groups:
            port = target_group_port(load_balancer_id, group["TargetGroupName"])
            if port is not None:
                found[port] = _target_group(group, port)
    return found


def target_groups_of_nlb(elbv2: Any, load_balancer_id: str, nlb: Nlb) -> dict[int, TargetGroup]:
    found: dict[int, TargetGroup] = {}
    try:
        for page in elbv2.get_paginator("describe_target_groups").paginate(LoadBalancerArn=nlb.arn):
            for group in page.get("TargetGroups", []):
                port = target_group_port(load_balancer_id, group["TargetGroupName"])
                if port is not None:
                    found[port] = _target_group(group, port)
    except ClientError as exc:
        # moto (not AWS) answers an NLB without target groups with this error.
        if _error_code(exc) != "TargetGroupNotFound":
            raise
    return found


def all_target_groups(elbv2: Any, load_balancer_id: str, spec: LoadBalancerSpec | None) -> dict[int, TargetGroup]:
    """Every target group of this load balancer we can find: behind its NLB, or named for a spec port."""
    found: dict[int, TargetGroup] = {}
    nlb = find_nlb(elbv2, load_balancer_id)
    if nlb is not None:
        found.update(target_groups_of_nlb(elbv2, load_balancer_id, nlb))
    if spec is not None:
        missing = [listener.port for listener in spec.listeners if listener.port not in found]
        found.update(find_target_groups(elbv2, load_balancer_id, missing))
    return found


def list_product_nlbs(elbv2: Any) -> list[Nlb]:
    """Every NLB named like ours (one paginated listing; owner tags checked by the caller)."""
    found: list[Nlb] = []
    for page in elbv2.get_paginator("describe_load_balancers").paginate(PaginationConfig={"PageSize": PAGE_SIZE}):
        for raw in page.get("LoadBalancers", []):
            if raw["LoadBalancerName"].startswith("lbcp-") and raw.get("Type") == "network":
                found.append(_nlb(raw))
    return found


def list_product_target_groups(elbv2: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in elbv2.get_paginator("describe_target_groups").paginate(PaginationConfig={"PageSize": PAGE_SIZE}):
        found.extend(group for group in page.get("TargetGroups", []) if group["TargetGroupName"].startswith("lbcp-"))
    return found


def registered_instances(elbv2: Any, target_group: TargetGroup) -> frozenset[str]:
    health = elbv2.describe_target_health(TargetGroupArn=target_group.arn).get("TargetHealthDescriptions", [])
    return frozenset(
        description["Target"]["Id"]
        for description in health
        if description.get("TargetHealth", {}).get("State") not in NOT_REGISTERED_STATES
    )


# --- writes ------------------------------------------------------------------------


def _ensure_nlb(elbv2: Any, spec: LoadBalancerSpec, load_balancer_id: str) -> Nlb:
    nlb = find_nlb(elbv2, load_balancer_id)
    if nlb is None:
        created = elbv2.create_load_balancer(
            Name=nlb_name(load_balancer_id),
            Subnets=list(spec.subnet_ids),
            Scheme=spec.entry.scheme,
            Type="network",
            IpAddressType="ipv4",
            Tags=[*owner_tags(load_balancer_id), {"Key": "Name", "Value": f"lbcp-{spec.name}"}],
        )
        return _nlb(created["LoadBalancers"][0])
    if nlb.subnet_ids and nlb.subnet_ids != frozenset(spec.subnet_ids):
        # NLBs accept new subnets in place (the scheme, though, is fixed at creation).
        elbv2.set_subnets(LoadBalancerArn=nlb.arn, Subnets=list(spec.subnet_ids))
    return nlb


def _target_group_attributes(spec: LoadBalancerSpec) -> list[dict[str, str]]:
    return [
        # The drain state machine waits for the LBVM's own connection count; the
        # NLB keeps existing flows to a deregistered target for as long as that.
        {"Key": "deregistration_delay.timeout_seconds", "Value": str(min(3600, spec.drain.timeout_seconds))},
        # After that the LBVM is terminated anyway: close the flows cleanly.
        {"Key": "deregistration_delay.connection_termination.enabled", "Value": "true"},
    ]


def _ensure_target_group(elbv2: Any, spec: LoadBalancerSpec, load_balancer_id: str, port: int) -> TargetGroup:
    found = find_target_groups(elbv2, load_balancer_id, [port]).get(port)
    if found is None:
        created = elbv2.create_target_group(
            Name=target_group_name(load_balancer_id, port),
            Protocol="TCP",
            Port=port,
            VpcId=spec.vpc_id,
            TargetType="instance",
            HealthCheckProtocol="TCP",
            HealthCheckPort="traffic-port",
            HealthCheckEnabled=True,
            **TARGET_HEALTH_CHECK,
            Tags=owner_tags(load_balancer_id),
        )
        found = _target_group(created["TargetGroups"][0], port)
    elif found.health_check != TARGET_HEALTH_CHECK:
        # A group made by an earlier version (or changed by hand) gets today's health check.
        elbv2.modify_target_group(TargetGroupArn=found.arn, **TARGET_HEALTH_CHECK)
    elbv2.modify_target_group_attributes(TargetGroupArn=found.arn, Attributes=_target_group_attributes(spec))
    return found


def ensure_pool(elbv2: Any, spec: LoadBalancerSpec, load_balancer_id: str) -> tuple[Nlb, dict[int, TargetGroup]]:
    """The NLB, a target group and a listener per listener port; stale listeners and groups go."""
    nlb = _ensure_nlb(elbv2, spec, load_balancer_id)
    wanted_ports = sorted({listener.port for listener in spec.listeners})
    groups = {port: _ensure_target_group(elbv2, spec, load_balancer_id, port) for port in wanted_ports}
    listeners = elbv2.describe_listeners(LoadBalancerArn=nlb.arn).get("Listeners", [])
    by_port = {listener["Port"]: listener for listener in listeners}
    for port in wanted_ports:
        listener = by_port.get(port)
        forward = [{"Type": "forward", "TargetGroupArn": groups[port].arn}]
        if listener is None:
            elbv2.create_listener(
                LoadBalancerArn=nlb.arn,
                Protocol="TCP",
                Port=port,
                DefaultActions=forward,
                Tags=owner_tags(load_balancer_id),
            )
        elif [action.get("TargetGroupArn") for action in listener.get("DefaultActions", [])] != [groups[port].arn]:
            elbv2.modify_listener(ListenerArn=listener["ListenerArn"], Protocol="TCP", DefaultActions=forward)
    for port, listener in by_port.items():
        if port not in groups:
            elbv2.delete_listener(ListenerArn=listener["ListenerArn"])
    for port, stale in target_groups_of_nlb(elbv2, load_balancer_id, nlb).items():
        if port not in groups:
            delete_target_group(elbv2, stale)
    return nlb, groups


def register(elbv2: Any, groups: Iterable[TargetGroup], instance_id: str) -> int:
    count = 0
    for group in groups:
        elbv2.register_targets(TargetGroupArn=group.arn, Targets=[{"Id": instance_id, "Port": group.port}])
        count += 1
    return count


def deregister(elbv2: Any, groups: Iterable[TargetGroup], instance_id: str) -> int:
    count = 0
    for group in groups:
        try:
            elbv2.deregister_targets(TargetGroupArn=group.arn, Targets=[{"Id": instance_id}])
        except ClientError as exc:
            # A terminated instance, or a group deleted meanwhile: nothing left to take out.
            if _error_code(exc) not in ("InvalidTarget", "TargetGroupNotFound"):
                raise
        count += 1
    return count


def delete_target_group(elbv2: Any, group: TargetGroup) -> bool:
    try:
        elbv2.delete_target_group(TargetGroupArn=group.arn)
    except ClientError as exc:
        if _error_code(exc) == "ResourceInUse":
            return False
        if _error_code(exc) != "TargetGroupNotFound":
            raise
    return True


def delete_nlb(elbv2: Any, load_balancer_id: str, nlb: Nlb) -> bool | None:
    """Delete the NLB and its listeners if it carries our owner tags: True gone, False deleting, None not ours."""
    if not owned_arns(elbv2, [nlb.arn], load_balancer_id):
        return None
    for listener in elbv2.describe_listeners(LoadBalancerArn=nlb.arn).get("Listeners", []):
        elbv2.delete_listener(ListenerArn=listener["ListenerArn"])
    elbv2.delete_load_balancer(LoadBalancerArn=nlb.arn)
    # Deletion is asynchronous; the groups can go once nothing references them.
    return find_nlb(elbv2, load_balancer_id) is None


def healthy_instances(elbv2: Any, target_group: TargetGroup) -> frozenset[str]:
    """The targets the NLB's own health checks pass (what it would route to now)."""
    health = elbv2.describe_target_health(TargetGroupArn=target_group.arn).get("TargetHealthDescriptions", [])
    return frozenset(d["Target"]["Id"] for d in health if d.get("TargetHealth", {}).get("State") == "healthy")


def teardown_pool(elbv2: Any, load_balancer_id: str, spec: LoadBalancerSpec | None) -> list[str]:
    """Delete listeners, the NLB and the target groups we own; returns what is left."""
    left: list[str] = []
    groups = all_target_groups(elbv2, load_balancer_id, spec)
    nlb = find_nlb(elbv2, load_balancer_id)
    if nlb is not None:
        gone = delete_nlb(elbv2, load_balancer_id, nlb)
        if gone is None:
            left.append(f"NLB {nlb.name} (not ours: no owner tags)")
        elif not gone:
            left.append(f"NLB {nlb.name} (deleting)")
    owned = owned_arns(elbv2, [group.arn for group in groups.values()], load_balancer_id)
    for group in groups.values():
        if group.arn not in owned:
            left.append(f"target group {group.name} (not ours: no owner tags)")
        elif not delete_target_group(elbv2, group):
            left.append(f"target group {group.name} (in use)")
    return left
