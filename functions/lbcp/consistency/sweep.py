"""Garbage collection of orphans: which findings may go (pure), and the adapter that removes them.

Orphans are swept, and stuck executions stopped: drift is repaired by the
reconciler (the spec is the truth), leaks are reported for a person to look at.
Every deletion is decided again at the moment of the call, from the live
resource and strongly consistent reads of its owner records, never from the
report alone (it may be 15 minutes old):

- the resource must still exist and carry our product tag and a
  load-balancer id (``Tagged.ours``); DNS records, which cannot carry tags,
  must still be one of the shapes we make;
- a load-balancer-level resource (Elastic IP, security group, NLB, target
  group, alias record) goes only when its load balancer has no record;
- an instance or interface goes when its load balancer has no record, or when
  no live LBVM record of it claims it and it is older than the in-flight
  grace;
- an execution is stopped only while it still runs, is one of our two state
  machines', and its LBVM has no record or has been Terminated for longer
  than ``stuck_after``;
- every outcome (deleted, refused, already gone) is written to the audit log.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from botocore.exceptions import ClientError
from pydantic import Field

from lbcp.consistency.check import CheckSettings
from lbcp.consistency.findings import ConsistencyReport, Finding
from lbcp.consistency.gc_policy import QUARANTINABLE, QUARANTINE_TAG, quarantine_time
from lbcp.consistency.inventory import ResourceType, Tagged
from lbcp.consistency.store import AuditAction, AuditEntry, ConsistencyStore
from lbcp.dal.lbvms import LbvmRepository
from lbcp.dal.repository import LoadBalancerRepository
from lbcp.entry import dns
from lbcp.models.status import StatusModel
from lbcp.models.times import utc_iso
from lbcp.reconcile.compute import tags_of

# The order of a sweep: instances first (their interfaces are freed when they go), NLBs before
# their target groups (a group in use cannot go), security groups after the interfaces using them.
# A stuck execution is stopped first: left running, it could act on what the sweep removes.
# The tagged resources go in the order the automatic GC quarantines and deletes them, too.
SWEEP_ORDER: Final[tuple[ResourceType, ...]] = ("execution", *QUARANTINABLE, "dns-record")
Action = Literal["terminate", "delete", "release", "stop"]
ACTIONS: Final[dict[str, Action]] = {
    "execution": "stop",
    "instance": "terminate",
    "elastic-ip": "release",
}
DONE: Final[dict[Action, str]] = {
    "terminate": "terminated",
    "delete": "deleted",
    "release": "released",
    "stop": "stopped",
}

Outcome = Literal["deleted", "refused", "gone"]
ELBV2_TYPES: Final[tuple[ResourceType, ...]] = ("nlb", "target-group")


class Candidate(StatusModel):
    """What a sweep would do to one orphan, and why it is one."""

    resource_type: ResourceType
    resource_id: str
    load_balancer_id: str | None = None
    action: Action
    reason: str

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class SweepResult(StatusModel):
    """What a sweep did to one resource (``deleted``), or why not (``refused``, ``gone``)."""

    resource_type: ResourceType
    resource_id: str
    load_balancer_id: str | None = None
    outcome: Outcome
    reason: str

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class SweepPlan(StatusModel):
    """A dry run: the fresh report, and the orphans a sweep would remove, in order."""

    report: ConsistencyReport
    candidates: list[Candidate]


class SweepRequest(StatusModel):
    apply: bool = Field(default=False, description="false: only say what would go; true: remove resourceId.")
    resource_type: ResourceType | None = Field(default=None, description="With apply: the finding's resourceType.")
    resource_id: str | None = Field(default=None, max_length=2048, description="With apply: its resourceId.")


def _sweepable(finding: Finding) -> bool:
    if finding.resource_type == "execution":
        return finding.kind == "stuck"
    return finding.kind == "orphan" and finding.resource_type in SWEEP_ORDER


def candidates(findings: Sequence[Finding]) -> list[Candidate]:
    """The orphans a sweep would remove and the stuck executions it would stop, in its order (pure)."""
    order = {resource_type: index for index, resource_type in enumerate(SWEEP_ORDER)}
    chosen = [f for f in findings if _sweepable(f)]
    chosen.sort(key=lambda f: (order[f.resource_type], f.resource_id))
    return [
        Candidate(
            resource_type=f.resource_type,
            resource_id=f.resource_id,
            load_balancer_id=f.load_balancer_id,
            action=ACTIONS.get(f.resource_type, "delete"),
            reason=f.message,
        )
        for f in chosen
    ]


class Refused(Exception):
    """The live re-check does not allow the deletion; the message says why."""

    def __init__(self, message: str, load_balancer_id: str | None = None) -> None:
        super().__init__(message)
        self.load_balancer_id = load_balancer_id


class Gone(Exception):
    """The resource no longer exists."""


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _first(response: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The first item of a describe call's list, or None when it lists nothing."""
    found = response.get(key, [])
    return dict(found[0]) if found else None


class GcOutcome(StatusModel):
    """What the automatic GC's quarantine or release did to one resource (as audited)."""

    action: AuditAction
    reason: str
    load_balancer_id: str | None = None


@dataclass(frozen=True)
class _Spec:
    """How to describe, read the tags of, and remove one resource type (``Sweeper._guarded``)."""

    describe: Callable[[], dict[str, Any] | None]
    not_found: tuple[str, ...]
    gone: str
    what: Callable[[dict[str, Any]], str]
    tags: Callable[[dict[str, Any]], dict[str, str]]
    claims: Literal["record", "lbvm"]
    resource_id: str
    resource_type: ResourceType
    remove: Callable[[dict[str, Any], str, str], None]


class Sweeper:
    """Deletes one orphan at a time, after re-checking it live, and audits the outcome."""

    def __init__(
        self,
        *,
        client: Callable[[str], Any],
        load_balancers: LoadBalancerRepository,
        lbvms: LbvmRepository,
        store: ConsistencyStore,
        clock: Callable[[], datetime],
        hosted_zone_id: str | None = None,
        dns_domain: str | None = None,
        settings: CheckSettings | None = None,
        state_machine_arns: Sequence[str] = (),
    ) -> None:
        self._client = client
        self._state_machines = tuple(arn for arn in state_machine_arns if arn)
        self._load_balancers = load_balancers
        self._lbvms = lbvms
        self._store = store
        self._clock = clock
        self._zone = hosted_zone_id
        self._domain = dns_domain
        self._grace: timedelta = (settings or CheckSettings()).in_flight_grace
        self._stuck_after: timedelta = (settings or CheckSettings()).stuck_after

    def sweep(
        self, resource_type: ResourceType, resource_id: str, *, actor: str, quarantined: bool = False
    ) -> SweepResult:
        """Delete one orphan after the live re-check; ``quarantined``: only if it still carries the quarantine tag."""
        outcome: Outcome = "deleted"
        lb_id: str | None = None
        try:
            lb_id = self._remove(resource_type, resource_id, quarantined=quarantined)
            reason = f"{DONE[ACTIONS.get(resource_type, 'delete')]}: nothing claims it"
        except Refused as refused:
            outcome, reason, lb_id = "refused", str(refused), refused.load_balancer_id
        except Gone as gone:
            outcome, reason = "gone", str(gone)
        result = SweepResult(
            resource_type=resource_type,
            resource_id=resource_id,
            load_balancer_id=lb_id,
            outcome=outcome,
            reason=reason,
        )
        self._audit(result.outcome, resource_type, resource_id=resource_id, lb_id=lb_id, actor=actor, reason=reason)
        return result

    def quarantine(self, resource_type: ResourceType, resource_id: str, *, actor: str, reason: str) -> GcOutcome:
        """Tag ``lbcp:quarantined-at`` (and stop an instance) after the same live re-check as a deletion."""
        spec = self._spec(resource_type, resource_id)
        at = self._clock()

        def act(found: dict[str, Any], _: str, __: str) -> None:
            self._tag(resource_type, resource_id, {QUARANTINE_TAG: utc_iso(at)})
            if resource_type == "instance" and found["State"]["Name"] not in ("stopping", "stopped"):
                self._client("ec2").stop_instances(InstanceIds=[resource_id])

        return self._audited("quarantined", spec, act, actor, reason)

    def release(self, resource_type: ResourceType, resource_id: str, *, actor: str, reason: str) -> GcOutcome:
        """Forget a quarantine: remove the tag if it is still there (a stopped instance stays stopped)."""
        spec = self._spec(resource_type, resource_id)
        try:
            tags = spec.tags(self._describe(spec))
            if QUARANTINE_TAG in tags and Tagged(tags).ours:  # never touch what is not ours
                self._untag(resource_type, resource_id, QUARANTINE_TAG)
            lb_id = Tagged(tags).load_balancer_id
            outcome: GcOutcome = GcOutcome(action="released", reason=reason, load_balancer_id=lb_id)
        except Gone as gone:
            outcome = GcOutcome(action="gone", reason=str(gone))
        self._audit(
            outcome.action, resource_type, resource_id=resource_id, lb_id=outcome.load_balancer_id,
            actor=actor, reason=outcome.reason,
        )  # fmt: skip
        return outcome

    def quarantine_tag(self, resource_type: ResourceType, resource_id: str) -> tuple[bool, datetime | None]:
        """Whether the resource still exists, and the time on its quarantine tag (None: no tag)."""
        spec = self._spec(resource_type, resource_id)
        try:
            found = self._describe(spec)
        except Gone:
            return False, None
        return True, quarantine_time(spec.tags(found).get(QUARANTINE_TAG), self._clock())

    def _audited(
        self,
        action: AuditAction,
        spec: _Spec,
        act: Callable[[dict[str, Any], str, str], None],
        actor: str,
        reason: str,
    ) -> GcOutcome:
        resource_type = spec.resource_type
        try:
            lb_id = self._guarded(spec, act)
            outcome = GcOutcome(action=action, reason=reason, load_balancer_id=lb_id)
        except Refused as refused:
            outcome = GcOutcome(action="refused", reason=str(refused), load_balancer_id=refused.load_balancer_id)
        except Gone as gone:
            outcome = GcOutcome(action="gone", reason=str(gone))
        self._audit(
            outcome.action, resource_type, resource_id=spec.resource_id, lb_id=outcome.load_balancer_id,
            actor=actor, reason=outcome.reason,
        )  # fmt: skip
        return outcome

    def _audit(
        self,
        action: AuditAction,
        resource_type: ResourceType,
        *,
        resource_id: str,
        lb_id: str | None,
        actor: str,
        reason: str,
    ) -> None:
        self._store.audit(
            AuditEntry(
                time=self._clock(),
                action=action,
                resource_type=resource_type,
                resource_id=resource_id,
                load_balancer_id=lb_id,
                actor=actor,
                reason=reason,
            )
        )

    def _tag(self, resource_type: ResourceType, resource_id: str, tags: dict[str, str]) -> None:
        pairs = [{"Key": key, "Value": value} for key, value in tags.items()]
        if resource_type in ELBV2_TYPES:
            self._client("elbv2").add_tags(ResourceArns=[resource_id], Tags=pairs)
        else:
            self._client("ec2").create_tags(Resources=[resource_id], Tags=pairs)

    def _untag(self, resource_type: ResourceType, resource_id: str, key: str) -> None:
        if resource_type in ELBV2_TYPES:
            self._client("elbv2").remove_tags(ResourceArns=[resource_id], TagKeys=[key])
        else:
            self._client("ec2").delete_tags(Resources=[resource_id], Tags=[{"Key": key}])

    # --- the re-check ----------------------------------------------------------------------

    def _owner_of(self, what: str, tags: dict[str, str]) -> str:
        tagged = Tagged(tags)
        if not tagged.ours:
            raise Refused(f"{what} does not carry our owner tags")
        assert tagged.load_balancer_id is not None
        return tagged.load_balancer_id

    def _require_unclaimed(self, what: str, lb_id: str) -> None:
        if self._load_balancers.get(lb_id) is not None:
            raise Refused(f"the record of load balancer {lb_id} exists and claims {what}", lb_id)

    def _require_no_live_lbvm(self, what: str, lb_id: str, tags: dict[str, str], resource_id: str) -> None:
        if self._load_balancers.get(lb_id) is None:
            return
        lbvm_id = Tagged(tags).lbvm_id
        lbvm = self._lbvms.get(lb_id, lbvm_id) if lbvm_id else None
        if lbvm is not None and lbvm.state != "Terminated":
            recorded = lbvm.instance_id if what.startswith("instance") else lbvm.network_interface_id
            if recorded in (None, resource_id):
                raise Refused(f"LBVM {lbvm_id} of load balancer {lb_id} is {lbvm.state} and claims {what}", lb_id)

    # --- the removals ----------------------------------------------------------------------

    def _remove(self, resource_type: ResourceType, resource_id: str, *, quarantined: bool = False) -> str | None:
        if resource_type in ("dns-record", "execution") and quarantined:
            raise Refused(f"{resource_type}s carry no tags: they are never quarantined")
        if resource_type == "dns-record":
            return self._dns_record(resource_id)
        if resource_type == "execution":
            return self._stop_execution(resource_id)
        spec = self._spec(resource_type, resource_id)
        if not quarantined:
            return self._guarded(spec, spec.remove)

        def remove_if_still_quarantined(found: dict[str, Any], what: str, lb_id: str) -> None:
            if QUARANTINE_TAG not in spec.tags(found):
                raise Refused(f"{what} no longer carries {QUARANTINE_TAG}: it was released", lb_id)
            spec.remove(found, what, lb_id)

        return self._guarded(spec, remove_if_still_quarantined)

    def _spec(self, resource_type: ResourceType, resource_id: str) -> _Spec:
        match resource_type:
            case "instance":
                return self._instance(resource_id)
            case "network-interface":
                return self._interface(resource_id)
            case "elastic-ip":
                return self._address(resource_id)
            case "security-group":
                return self._security_group(resource_id)
            case "nlb":
                return self._nlb(resource_id)
            case "target-group":
                return self._target_group(resource_id)
        raise Refused(f"{resource_type} findings are not swept (only orphans of instances, interfaces, Elastic IPs, "
                      "security groups, NLBs, target groups and DNS records, and stuck executions)")  # fmt: skip

    def _guarded(self, spec: _Spec, act: Callable[[dict[str, Any], str, str], None]) -> str:
        """The one pattern of every tagged removal (and quarantine).

        Describe the resource (absent or ``not_found``: ``Gone(gone)``), require our owner tag,
        require that nothing claims it (``record``: its load balancer has no record; ``lbvm``: no
        live LBVM record claims it either), then ``act`` on it (which may refuse for its own reasons).
        """
        found = self._describe(spec)
        name = spec.what(found)
        resource_tags = spec.tags(found)
        lb_id = self._owner_of(name, resource_tags)
        if spec.claims == "record":
            self._require_unclaimed(name, lb_id)
        else:
            self._require_no_live_lbvm(name, lb_id, resource_tags, spec.resource_id)
        act(found, name, lb_id)
        return lb_id

    @staticmethod
    def _describe(spec: _Spec) -> dict[str, Any]:
        try:
            found = spec.describe()
        except ClientError as exc:
            if _code(exc) in spec.not_found:
                raise Gone(spec.gone) from None
            raise
        if found is None:
            raise Gone(spec.gone)
        return found

    def _instance(self, instance_id: str) -> _Spec:
        ec2 = self._client("ec2")

        def describe() -> dict[str, Any] | None:
            try:
                reservations = ec2.describe_instances(InstanceIds=[instance_id]).get("Reservations", [])
            except ClientError as exc:
                if _code(exc) == "InvalidInstanceID.NotFound":
                    raise Gone(f"instance {instance_id} no longer exists") from None
                raise
            found = [i for r in reservations for i in r.get("Instances", [])]
            if not found or found[0]["State"]["Name"] in ("shutting-down", "terminated"):
                return None
            return dict(found[0])

        def remove(instance: dict[str, Any], what: str, lb_id: str) -> None:
            launched = instance.get("LaunchTime")
            if self._load_balancers.get(lb_id) is not None and launched and self._clock() - launched < self._grace:
                raise Refused(f"{what} was launched {launched:%H:%M:%SZ}: it may be a launch in flight")
            ec2.terminate_instances(InstanceIds=[instance_id])

        return _Spec(
            describe=describe,
            not_found=(),
            gone=f"instance {instance_id} is already terminated",
            what=lambda _: f"instance {instance_id}",
            tags=tags_of,
            claims="lbvm",
            resource_id=instance_id,
            resource_type="instance",
            remove=remove,
        )

    def _interface(self, interface_id: str) -> _Spec:
        ec2 = self._client("ec2")

        def remove(interface: dict[str, Any], what: str, _: str) -> None:
            attached = (interface.get("Attachment") or {}).get("InstanceId")
            if interface.get("Status") == "in-use" and attached:
                raise Refused(f"{what} is attached to {attached}: it goes with that instance (sweep again after)")
            ec2.delete_network_interface(NetworkInterfaceId=interface_id)

        return _Spec(
            describe=lambda: _first(
                ec2.describe_network_interfaces(NetworkInterfaceIds=[interface_id]), "NetworkInterfaces"
            ),
            not_found=("InvalidNetworkInterfaceID.NotFound",),
            gone=f"network interface {interface_id} no longer exists",
            what=lambda _: f"network interface {interface_id}",
            tags=lambda found: tags_of(found, "TagSet"),
            claims="lbvm",
            resource_id=interface_id,
            resource_type="network-interface",
            remove=remove,
        )

    def _address(self, allocation_id: str) -> _Spec:
        ec2 = self._client("ec2")

        def remove(address: dict[str, Any], what: str, _: str) -> None:
            if address.get("AssociationId"):
                raise Refused(f"{what} is associated ({address['AssociationId']}): disassociate it first")
            ec2.release_address(AllocationId=allocation_id)

        return _Spec(
            describe=lambda: _first(ec2.describe_addresses(AllocationIds=[allocation_id]), "Addresses"),
            not_found=("InvalidAllocationID.NotFound", "InvalidAddress.NotFound"),
            gone=f"Elastic IP {allocation_id} is already released",
            what=lambda _: f"Elastic IP {allocation_id}",
            tags=tags_of,
            claims="record",
            resource_id=allocation_id,
            resource_type="elastic-ip",
            remove=remove,
        )

    def _security_group(self, group_id: str) -> _Spec:
        ec2 = self._client("ec2")

        def remove(_: dict[str, Any], what: str, __: str) -> None:
            try:
                ec2.delete_security_group(GroupId=group_id)
            except ClientError as exc:
                if _code(exc) == "DependencyViolation":
                    in_use = f"{what} is still in use (an interface uses it): sweep again once it is gone"
                    raise Refused(in_use) from None
                raise

        return _Spec(
            describe=lambda: _first(ec2.describe_security_groups(GroupIds=[group_id]), "SecurityGroups"),
            not_found=("InvalidGroup.NotFound",),
            gone=f"security group {group_id} no longer exists",
            what=lambda _: f"security group {group_id}",
            tags=tags_of,
            claims="record",
            resource_id=group_id,
            resource_type="security-group",
            remove=remove,
        )

    def _elbv2_tags(self, arn: str) -> dict[str, str]:
        from lbcp.entry.pool import tags_by_arn

        listed = tags_by_arn(self._client("elbv2"), [arn]).get(arn, [])
        return {tag["Key"]: tag["Value"] for tag in listed}

    def _nlb(self, arn: str) -> _Spec:
        elbv2 = self._client("elbv2")

        def remove(_: dict[str, Any], __: str, ___: str) -> None:
            for listener in elbv2.describe_listeners(LoadBalancerArn=arn).get("Listeners", []):
                elbv2.delete_listener(ListenerArn=listener["ListenerArn"])
            elbv2.delete_load_balancer(LoadBalancerArn=arn)

        return _Spec(
            describe=lambda: _first(elbv2.describe_load_balancers(LoadBalancerArns=[arn]), "LoadBalancers"),
            not_found=("LoadBalancerNotFound",),
            gone=f"NLB {arn} no longer exists",
            what=lambda found: f"NLB {found['LoadBalancerName']}",
            tags=lambda _: self._elbv2_tags(arn),
            claims="record",
            resource_id=arn,
            resource_type="nlb",
            remove=remove,
        )

    def _target_group(self, arn: str) -> _Spec:
        elbv2 = self._client("elbv2")

        def remove(_: dict[str, Any], what: str, __: str) -> None:
            try:
                elbv2.delete_target_group(TargetGroupArn=arn)
            except ClientError as exc:
                if _code(exc) == "ResourceInUse":
                    raise Refused(f"{what} is in use by a listener: sweep its NLB first") from None
                raise

        return _Spec(
            describe=lambda: _first(elbv2.describe_target_groups(TargetGroupArns=[arn]), "TargetGroups"),
            not_found=("TargetGroupNotFound",),
            gone=f"target group {arn} no longer exists",
            what=lambda found: f"target group {found['TargetGroupName']}",
            tags=lambda _: self._elbv2_tags(arn),
            claims="record",
            resource_id=arn,
            resource_type="target-group",
            remove=remove,
        )

    def _dns_record(self, resource_id: str) -> str | None:
        """``<name>/A/<set identifier or alias>``: ours by shape, unclaimed by name and LBVM."""
        if not self._zone or not self._domain:
            raise Refused("this deployment has no hosted zone")
        name, record_type, which = resource_id.rsplit("/", 2)
        domain = self._domain.strip(".").lower()
        if record_type != "A" or not name.endswith("." + domain):
            raise Refused(f"DNS record {resource_id} is not one we make")
        route53 = self._client("route53")
        records = [r for r in dns.records_named(route53, self._zone, name) if (r.set_identifier or "alias") == which]
        if not records:
            raise Gone(f"DNS record {resource_id} no longer exists")
        record = records[0]
        ours = (record.set_identifier or "").startswith("lbvm-") or (record.alias_target or "").startswith("lbcp-")
        if not ours:
            raise Refused(f"DNS record {resource_id} is not one we make")
        lb_id = self._load_balancers.resolve_name(name.removesuffix("." + domain))
        if lb_id is not None:
            lbvm = self._lbvms.get(lb_id, which) if which.startswith("lbvm-") else None
            if which == "alias" or (lbvm is not None and lbvm.state != "Terminated"):
                raise Refused(f"load balancer {lb_id} exists and claims DNS record {resource_id}")
        route53.change_resource_record_sets(
            HostedZoneId=self._zone,
            ChangeBatch={
                "Comment": "lbcp gc: orphaned record",
                "Changes": [{"Action": "DELETE", "ResourceRecordSet": record.raw}],
            },
        )
        return lb_id

    def _stop_execution(self, execution_arn: str) -> str | None:
        """Stop a stuck lifecycle or drain execution, after the same test the checker made, read live."""
        machine = execution_arn.replace(":execution:", ":stateMachine:", 1).rsplit(":", 1)[0]
        if machine not in self._state_machines:
            raise Refused(f"execution {execution_arn} is not one of our state machines'")
        sfn = self._client("stepfunctions")
        try:
            execution = sfn.describe_execution(executionArn=execution_arn)
        except ClientError as exc:
            if _code(exc) == "ExecutionDoesNotExist":
                raise Gone(f"execution {execution_arn} no longer exists") from None
            raise
        if execution.get("status") != "RUNNING":
            raise Gone(f"execution {execution_arn} is no longer running ({execution.get('status')})")
        try:
            lb_id = str(json.loads(execution.get("input") or "{}")["loadBalancerId"])
        except (ValueError, KeyError, TypeError):
            raise Refused(f"execution {execution_arn} names no load balancer in its input") from None
        lbvm_id = str(execution["name"]).removeprefix("drain-")
        lbvm = self._lbvms.get(lb_id, lbvm_id)
        since: datetime = execution["startDate"]
        if lbvm is not None:
            if lbvm.state != "Terminated":
                raise Refused(
                    f"LBVM {lbvm_id} of load balancer {lb_id} is {lbvm.state}: its execution is not stuck", lb_id
                )
            since = lbvm.terminated_at or since
        if self._clock() - since <= self._stuck_after:
            raise Refused(f"execution {execution['name']} is not stuck yet (since {utc_iso(since)})", lb_id)
        why = "has no record" if lbvm is None else f"is Terminated since {utc_iso(since)}"
        sfn.stop_execution(
            executionArn=execution_arn, error="lbcp.Stuck", cause=f"lbcp gc: LBVM {lbvm_id} {why}"[:32768]
        )
        return lb_id
