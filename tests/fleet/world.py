"""A small, deterministic simulated world for property tests of the reconciler's planner.

No AWS, no threads, no clock: time moves only when ``advance`` is called, by
one reconciler tick. The world holds what AWS and the table would hold for
one load balancer:

- the load balancer record (spec, generation, the scaler's desired capacity,
  the deletion request, the status the reconciler last wrote);
- the LBVM records;
- EC2 instances and network interfaces, with tags, states and subnets (and a
  few that are not ours: untagged, another product's, another load balancer's);
- the entry: whether it is built, its security group, the pool's registered
  instance ids (pool mode) and the per-LBVM A records (every mode looks for
  them, as the adapter does);
- one lifecycle execution per LBVM, modelled on ``statemachines/`` (launch,
  first heartbeat within the pending timeout, heartbeat watch, recovery,
  drain with its dual threshold), and one agent per instance.

``reconcile`` runs one invocation of the real reconciler (``Reconciler`` and
``Executor`` from ``lbcp.reconcile``) over the world's implementations of its
ports (``world_ports.py``): it observes the world as the adapters do (only
resources carrying the lbcp product tag; registrations only on verified
ticks), plans with the real planner and acts through the ports. Every action
anyone takes (reconciler, lifecycle, faults) is recorded in ``actions``;
anything that breaks a rule the world can judge by itself (touching a resource
that is not ours, a second instance for one LBVM) is recorded in
``violations``.

Faults (``inject``) are what happens between ticks behind the control
plane's back: instances killed, agents silenced, launches that fail, boots
that never become healthy, executions that stop progressing, foreign
instances, scaler and spec changes, a damaged entry, a deletion request; and
what happens to the reconciler itself in the next tick: an AWS call that
fails (throttled, a 5xx), the process dying between two calls, a second
reconciler ticking at the same time.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from lbcp import LB_ID_TAG_KEY, LBVM_ID_TAG_KEY, PRODUCT_TAG_KEY, PRODUCT_TAG_VALUE
from lbcp.lifecycle.tasks import NO_WAIT_REASONS
from lbcp.logic.capacity import effective_desired_capacity
from lbcp.logic.rollout_bounds import surge_count, unavailable_count
from lbcp.models.events import Event
from lbcp.models.lbvm import DrainReason, Lbvm
from lbcp.models.resource import LoadBalancerRecord
from lbcp.models.rollout import RolloutControl, RolloutRecord
from lbcp.models.spec import LoadBalancerSpec
from lbcp.models.status import LbvmState, LoadBalancerStatus
from lbcp.reconcile.executor import Executor, ExecutorSettings
from lbcp.reconcile.jobs import (
    DeleteNetworkInterface,
    ForceTerminate,
    Job,
    RegisterTarget,
    RequestDrain,
    StartLifecycle,
    TerminateInstance,
)
from lbcp.reconcile.launch import launch_template
from lbcp.reconcile.observed import INSTANCE_ALIVE_STATES, EntryView
from lbcp.reconcile.plan import PlannerSettings, ReconcilePlan
from lbcp.reconcile.run import Reconciler, TickReport
from lbcp.service import initial_status
from lbcp.validation import parse_spec
from tests.fleet.world_ports import (
    OPERATIONS,
    AwsError,
    AwsErrorKind,
    CallFaults,
    LeaseTable,
    ReconcilerDied,
    RecordBeingDeleted,
    RecordGone,
    WorldCompute,
    WorldEntry,
    WorldLaunchSettings,
    WorldLbvms,
    WorldLeases,
    WorldLifecycle,
    WorldLoadBalancers,
)

# The reconciler's schedule (``Reconciler``'s default ``tick_period``): one tick of the world.
TICK: Final = timedelta(minutes=1)
BASE_TIME: Final = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

LB_ID: Final = "lb-0123456789abcdef0"
OTHER_LB_ID: Final = "lb-0fedcba9876543210"
# The subnets a spec may list (one per Availability Zone); faults may add the others.
SUBNET_IDS: Final = (
    "subnet-0aaaaaaaaaaaaaaa1",
    "subnet-0aaaaaaaaaaaaaaa2",
    "subnet-0aaaaaaaaaaaaaaa3",
    "subnet-0aaaaaaaaaaaaaaa4",
)
ZONES: Final = {subnet: f"us-east-1{'abcd'[i]}" for i, subnet in enumerate(SUBNET_IDS)}
DNS_NAME: Final = "web.lbcp.test"
EXECUTION_ARN_PREFIX: Final = "arn:aws:states:us-east-1:123456789012:execution:lbcp-lbvm-lifecycle:"
# EC2 keeps listing a terminated instance for about an hour.
TERMINATED_LISTED_FOR: Final = timedelta(hours=1)
# An LBVM record's id once its record has expired (TTL, 7 days after Terminated).
EXPIRED_LBVM_ID: Final = "lbvm-0000000dead01"
# An LBVM of another load balancer (its instance is not ours).
OTHER_LBVM_ID: Final = "lbvm-0000000beef01"

EXECUTOR_SETTINGS: Final = ExecutorSettings(
    table_name="lbcp",
    tasks_function_arn="arn:aws:lambda:us-east-1:123456789012:function:lbcp-lifecycle-tasks",
    drain_state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:lbcp-lbvm-drain",
    instance_profile_arn=None,
)

OUR_TAGS: Final = {PRODUCT_TAG_KEY: PRODUCT_TAG_VALUE, LB_ID_TAG_KEY: LB_ID}
# What a PATCH of instance.type may choose (the shapes' specs use the default, c6i.large).
INSTANCE_TYPES: Final = ("c6i.large", "c6i.xlarge", "m6i.large")
# A seeded LBVM launched before a change the spec has since had.
OUTDATED_TEMPLATE: Final = "c5.large from the latest Amazon Linux 2023 running haproxy"


def ticks(count: int) -> timedelta:
    return TICK * count


def is_ours(tags: dict[str, str]) -> bool:
    """What ``Ec2Compute._require_ours`` accepts: our product tag and this load balancer's id."""
    return tags.get(PRODUCT_TAG_KEY) == PRODUCT_TAG_VALUE and tags.get(LB_ID_TAG_KEY) == LB_ID


# --- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FleetShape:
    """The parts of a spec the planner reads, drawn by the tests; timeouts in ticks."""

    subnets: tuple[int, ...]  # indexes into SUBNET_IDS, in spec order
    min: int
    max: int
    # application needs two subnets (spec_rules), so with one it is classic; a classic
    # load balancer over two subnets may drop one.
    lb_type: Literal["application", "classic"] = "application"
    max_surge: int = 1
    max_unavailable: int = 0
    entry_mode: Literal["pool", "dns"] = "pool"
    scheme: Literal["internet-facing", "internal"] = "internal"
    pending_ticks: int = 3
    unhealthy_ticks: int = 1
    recovery_ticks: int = 2
    drain_ticks: int = 2
    connection_threshold: int = 1
    canary: int = 1
    bake_ticks: int = 1
    max_failed_launches: int = 2

    def spec(self) -> LoadBalancerSpec:
        """A valid spec (``parse_spec`` applies the API's cross-field rules too)."""
        document: dict[str, Any] = {
            "name": "web",
            "type": self.lb_type if len(self.subnets) >= 2 else "classic",
            "vpcId": "vpc-0123456789abcdef0",
            "subnetIds": [SUBNET_IDS[i] for i in self.subnets],
            "listeners": [{"protocol": "HTTP", "port": 80, "defaultBackend": "app"}],
            "backends": [{"name": "app", "targets": [{"host": "10.0.1.10", "port": 8080}]}],
            "capacity": {"min": self.min, "max": self.max},
            "entry": {"mode": self.entry_mode, "scheme": self.scheme},
            "lifecycle": {
                "pendingTimeoutSeconds": int(ticks(self.pending_ticks).total_seconds()),
                "unhealthyTimeoutSeconds": int(ticks(self.unhealthy_ticks).total_seconds()),
                "recoveryTimeoutSeconds": int(ticks(self.recovery_ticks).total_seconds()),
            },
            "drain": {
                "connectionThreshold": self.connection_threshold,
                "timeoutSeconds": int(ticks(self.drain_ticks).total_seconds()),
            },
            "rollout": {
                "maxSurge": self.max_surge,
                "maxUnavailable": self.max_unavailable,
                "canary": self.canary,
                "bakeSeconds": int(ticks(self.bake_ticks).total_seconds()),
                "maxFailedLaunches": self.max_failed_launches,
            },
        }
        return parse_spec(document)


@dataclass(frozen=True)
class Behaviour:
    """How the simulated machinery behaves when nothing goes wrong."""

    boot_ticks: int = 1  # a healthy agent reports ready this many ticks after its instance launched
    busy_connections: int = 2  # what a serving agent reports
    drain_linger_ticks: int = 1  # a draining agent's connections reach 0 after this long
    verify_every: int = 1  # registrations are verified on every n-th tick (run.verification_batch)
    listing_lag: bool = False  # a launched instance is missing from the listing in the tick it was launched
    # AWS gives no public address to an instance launched on an existing interface
    # (the lifecycle creates the interface first), so the default is False.
    public_ips: bool = False


# --- the initial state ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedLbvm:
    """An LBVM that exists before the first tick, with a consistent execution, instance and agent."""

    state: LbvmState
    subnet: int  # index into SUBNET_IDS: one the spec does not list makes it misplaced
    age_ticks: int = 10  # how long it has been in its state
    instance_alive: bool = True  # False: its instance was terminated behind our back
    registered: bool = True  # Routable only: whether the entry has it
    execution: bool = True  # Launching only: whether its lifecycle execution was started
    agent_ready: bool = True  # Pending only: False is a broken boot
    outdated: bool = False  # launched from a template the spec no longer asks for (rolled)


@dataclass(frozen=True)
class SeedOrphan:
    """Something of ours that no live LBVM accounts for."""

    kind: Literal["instance", "interface", "registration", "dns-record"]
    # whose lbvm id it carries: an id whose record expired, a Terminated seed's, or none at all
    owner: Literal["expired", "terminated", "none"] = "expired"
    age_ticks: int = 60


@dataclass(frozen=True)
class Seed:
    lbvms: tuple[SeedLbvm, ...] = ()
    orphans: tuple[SeedOrphan, ...] = ()
    entry_built: bool = False


# --- faults ------------------------------------------------------------------------------------------
# ``pick`` selects among the candidates at the moment of injection (modulo their number),
# so a fault sequence stays meaningful whatever the world looks like by then.


@dataclass(frozen=True)
class KillInstance:
    """One of our running instances is terminated behind our back."""

    pick: int


@dataclass(frozen=True)
class SilenceAgent:
    """An agent stops heartbeating, for ``for_ticks`` ticks or (None) for good."""

    pick: int
    for_ticks: int | None


@dataclass(frozen=True)
class FailNextLaunch:
    """The next RunInstances fails on every attempt: the lifecycle records the failure and drains."""


@dataclass(frozen=True)
class BreakNextBoot:
    """The next instance launched boots an agent that never reports ready."""


@dataclass(frozen=True)
class StickExecution:
    """A lifecycle execution stops progressing (aborted, or a task that never returns)."""

    pick: int


ForeignKind = Literal["untagged", "other-product", "other-load-balancer"]


@dataclass(frozen=True)
class AddForeignInstance:
    """An instance (with its interface) in one of our subnets that is not ours."""

    kind: ForeignKind
    subnet: int


@dataclass(frozen=True)
class SetDesired:
    """The scaler writes a new desired capacity (the reconciler holds it inside the bounds)."""

    desired: int


@dataclass(frozen=True)
class SetCapacity:
    """A PATCH of capacity.min and capacity.max."""

    min: int
    max: int


@dataclass(frozen=True)
class RemoveSubnet:
    pick: int


@dataclass(frozen=True)
class AddSubnet:
    subnet: int


@dataclass(frozen=True)
class ChangeInstanceType:
    """A PATCH of instance.type: every LBVM launched before it is rolled."""

    pick: int


@dataclass(frozen=True)
class DamageEntry:
    """Part of the entry is deleted behind our back (pool: the NLB and target groups; dns: the records)."""


@dataclass(frozen=True)
class DropRegistration:
    """An operator deregisters one LBVM from the entry by hand."""

    pick: int


@dataclass(frozen=True)
class RequestDeletion:
    """DELETE /load-balancers/{id}."""


@dataclass(frozen=True)
class FailCall:
    """The reconciler's next call of ``operation`` fails once botocore's own retries are spent."""

    operation: str  # one of world_ports.OPERATIONS
    kind: AwsErrorKind


@dataclass(frozen=True)
class KillReconciler:
    """The reconciler's process dies at its ``at_call``-th call of the next tick (its lease is left held)."""

    at_call: int


@dataclass(frozen=True)
class RivalReconciler:
    """A second reconciler ticks the same load balancer right before the ``at_call``-th call of the next tick."""

    at_call: int


Fault = (
    KillInstance
    | SilenceAgent
    | FailNextLaunch
    | BreakNextBoot
    | StickExecution
    | AddForeignInstance
    | SetDesired
    | SetCapacity
    | RemoveSubnet
    | AddSubnet
    | ChangeInstanceType
    | DamageEntry
    | DropRegistration
    | RequestDeletion
    | FailCall
    | KillReconciler
    | RivalReconciler
)


# --- the world's resources ---------------------------------------------------------------------------


@dataclass
class Instance:
    instance_id: str
    tags: dict[str, str]
    subnet_id: str
    private_ip: str
    public_ip: str | None
    launched_at: datetime
    listed_from: datetime  # EC2 lists it from then on (``listing_lag``)
    state: str = "pending"
    terminated_at: datetime | None = None

    @property
    def alive(self) -> bool:
        return self.state in INSTANCE_ALIVE_STATES


@dataclass
class Interface:
    interface_id: str
    tags: dict[str, str]
    subnet_id: str
    private_ip: str
    attached_to: str | None = None

    @property
    def status(self) -> str:
        return "in-use" if self.attached_to else "available"


@dataclass
class Agent:
    lbvm_id: str
    instance_id: str
    ready_at: datetime | None  # None: a broken boot, never ready
    silent_until: datetime | None = None
    silent_forever: bool = False
    last_beat: datetime | None = None
    sequence: int = 0

    def silent(self, now: datetime) -> bool:
        return self.silent_forever or (self.silent_until is not None and now < self.silent_until)


@dataclass
class Execution:
    """An LBVM's lifecycle execution (and the drain execution it runs)."""

    lbvm_id: str
    started_at: datetime
    fail_launch: bool = False
    broken_boot: bool = False
    stuck: bool = False
    finished: bool = False
    watch_since: datetime | None = None  # Routable: when the heartbeat watch began
    drain_wait: bool = False  # whether the drain waits for connections
    drain_clock: datetime | None = None
    terminating: bool = False


@dataclass
class EntryState:
    built: bool = False  # everything ensure_entry creates (pool: SG, NLB, target groups, listener, alias)
    security_group_id: str | None = None
    nlb_deleting: bool = False  # teardown started; the NLB goes asynchronously
    pool: set[str] = field(default_factory=set)  # registered instance ids (pool mode)
    records: dict[str, str] = field(default_factory=dict)  # lbvm id -> address (per-LBVM A records)


@dataclass(frozen=True)
class Action:
    at: datetime
    actor: str  # "reconciler", "lifecycle", "agent", "fault"
    verb: str
    target: str
    detail: str = ""


class JobFailed(Exception):
    """An AWS call that fails for a reason of the world (an entry not built, an interface still attached)."""


@dataclass(frozen=True)
class Invocation:
    """What one reconciler invocation did: its report, or why it failed as a whole."""

    report: TickReport | None
    failed: str | None = None

    @property
    def plan(self) -> ReconcilePlan | None:
        return self.report.plans.get(LB_ID) if self.report is not None else None

    @property
    def locked(self) -> bool:
        return self.report is not None and LB_ID in self.report.locked


# --- the world -----------------------------------------------------------------------------------------


class World:
    lb_id: Final = LB_ID

    def __init__(self, shape: FleetShape, desired: int, behaviour: Behaviour | None = None, seed: Seed | None = None):
        self.behaviour = behaviour or Behaviour()
        self.now = BASE_TIME
        self.tick = 0
        self.spec = shape.spec()
        self.generation = 1
        self.desired = desired  # the scaler's decision, as stored
        self.deletion_requested_at: datetime | None = None
        self.removed = False
        self.stored_status: LoadBalancerStatus = initial_status(self.spec)
        self.rollout_control: RolloutControl | None = None  # an operator's pause, resume or abort
        self.rollout_history: dict[str, RolloutRecord] = {}  # every rollout record written, by id
        self.broken_templates: set[str] = set()  # instances launched from these boot agents that never get ready
        self.lbvms: dict[str, Lbvm] = {}
        self.instances: dict[str, Instance] = {}
        self.interfaces: dict[str, Interface] = {}
        self.agents: dict[str, Agent] = {}  # by lbvm id
        self.executions: dict[str, Execution] = {}  # by lbvm id (the execution's name)
        self.entry = EntryState()
        self.launch_failures_armed = 0
        self.broken_boots_armed = 0
        self.actions: list[Action] = []
        self.violations: list[str] = []
        self.events: list[Event] = []  # what the reconciler wrote with its status writes
        self.left_at_removal: list[str] | None = None  # what was left when the record was removed
        self.lbvm_ids_ever: set[str] = set()  # every LBVM id this load balancer has had
        # Launches decided on a read that missed another reconciler's marker (what the lease prevents).
        self.stale_launches: list[str] = []
        self.call_faults = CallFaults()
        self.leases = LeaseTable()
        self.invocations = 0
        self.instances_per_lbvm: Counter[str] = Counter()
        self.markers_created: Counter[str] = Counter()
        self.executions_started: Counter[str] = Counter()
        # The ceiling (capacity.max + rollout.maxSurge) went down at some point: the
        # fleet may then legitimately be above it until the excess has drained.
        self.ceiling_lowered = False
        self._serial = 0
        self._build(seed or Seed())

    # --- ids -------------------------------------------------------------------------------------------

    def _next(self) -> int:
        self._serial += 1
        return self._serial

    def _new_lbvm_id(self) -> str:
        return f"lbvm-{0x100000 + self._next():012x}"

    # --- the records as the reconciler reads them ---------------------------------------------------------

    def record(self) -> LoadBalancerRecord | None:
        if self.removed:
            return None
        # The repository computes status.desiredCapacity on read: the scaler's decision inside the bounds.
        status = self.stored_status.model_copy(
            update={"desired_capacity": effective_desired_capacity(self.spec.capacity, self.desired)}
        )
        return LoadBalancerRecord(
            id=LB_ID,
            generation=self.generation,
            spec=self.spec,
            status=status,
            created_at=BASE_TIME - timedelta(days=1),
            updated_at=BASE_TIME - timedelta(days=1),
            deletion_requested_at=self.deletion_requested_at,
            desired_capacity=self.desired,
            rollout_control=self.rollout_control,
        )

    def records(self) -> list[Lbvm]:
        return [self.lbvms[key] for key in sorted(self.lbvms)]

    @property
    def effective_desired(self) -> int:
        return effective_desired_capacity(self.spec.capacity, self.desired)

    @property
    def ceiling(self) -> int:
        return self.spec.capacity.max + self.surge

    @property
    def surge(self) -> int:
        return surge_count(self.spec.rollout, self.effective_desired)

    @property
    def floor(self) -> int:
        """Desired - maxUnavailable: the fewest LBVMs a rollout may leave serving."""
        return self.effective_desired - unavailable_count(self.spec.rollout, self.effective_desired)

    def verified(self) -> bool:
        return self.tick % self.behaviour.verify_every == 0

    # --- the entry as the adapter observes it ---------------------------------------------------------------

    def entry_view(self, verified: bool) -> EntryView:
        entry = self.entry
        pool_mode = self.spec.entry.mode == "pool"
        ready = entry.built if pool_mode else entry.security_group_id is not None
        if pool_mode:
            left = (1 if entry.security_group_id else 0) + (3 if entry.built else 0) + (1 if entry.nlb_deleting else 0)
        else:
            left = 1 if entry.security_group_id else 0
        left += len(entry.records)
        records: dict[str, str] | None = None
        if verified and (not pool_mode or entry.records):
            records = dict(entry.records)
        return EntryView(
            ready=ready,
            dns_name=DNS_NAME,
            security_group_id=entry.security_group_id,
            registered_instance_ids=frozenset(entry.pool) if pool_mode and verified and entry.built else None,
            dns_record_ips=records,
            resources_left=left,
        )

    # --- one reconciler invocation (the real ``Reconciler`` and ``Executor`` over the world's ports) ---------------

    def reconciler(self, rng: random.Random, settings: PlannerSettings | None, owner: str) -> Reconciler:
        """A reconciler process: the real one, built on the world's ports (as ``build_reconciler`` does on AWS's)."""
        load_balancers, lbvms = WorldLoadBalancers(self), WorldLbvms(self, owner)
        compute, entry = WorldCompute(self), WorldEntry(self)
        clock = lambda: self.now  # noqa: E731
        executor = Executor(
            load_balancers=load_balancers,
            lbvms=lbvms,
            compute=compute,
            entry=entry,
            lifecycle=WorldLifecycle(self),
            launch_settings=WorldLaunchSettings(self),
            settings=EXECUTOR_SETTINGS,
            clock=clock,
            lbvm_ids=self._new_lbvm_id,
        )
        return Reconciler(
            load_balancers=load_balancers,
            lbvms=lbvms,
            compute=compute,
            entry=entry,
            executor=executor,
            leases=WorldLeases(self, owner),
            clock=clock,
            rng=rng,
            planner_settings=settings,
            tick_period=TICK,
        )

    def reconcile(self, rng: random.Random, settings: PlannerSettings | None = None) -> Invocation:
        """One scheduled invocation of the reconciler, as a new process (a Lambda invocation).

        It may fail as a whole (a throttled or failing read, a failed status
        write: the invocation errors and the next tick retries) or die in the
        middle (its lease is left to expire); either is recorded, not raised.
        """
        self.invocations += 1
        self.call_faults.new_tick()
        self.call_faults.rival = lambda: self._rival_tick(rng, settings)
        reconciler = self.reconciler(rng, settings, owner=f"reconciler-{self.invocations}")
        try:
            report = reconciler.tick()
        except (AwsError, ReconcilerDied, RecordGone, RecordBeingDeleted) as failure:
            self.act("reconciler", "invocation-failed", LB_ID, f"{type(failure).__name__}: {failure}")
            return Invocation(None, failed=f"{type(failure).__name__}: {failure}")
        finally:
            self.call_faults.rival = None
        self._check_plans(report)
        return Invocation(report)

    def _rival_tick(self, rng: random.Random, settings: PlannerSettings | None) -> None:
        """A second reconciler (the schedule and a spec change overlapping) ticks the same load balancer."""
        rival = self.reconciler(random.Random(rng.random()), settings, owner=f"rival-{self.invocations}")
        report = rival.tick()
        self.act("rival", "tick", LB_ID, f"acted {report.acted}, locked {report.locked}")
        self._check_plans(report)

    def _check_plans(self, report: TickReport) -> None:
        """Whether a plan aimed at anything that is not ours (the ports check what is carried out)."""
        for decided in report.plans.values():
            for job in decided.jobs:
                if isinstance(job, TerminateInstance):
                    instance = self.instances.get(job.instance_id)
                    if instance is not None and not is_ours(instance.tags):
                        self.violations.append(f"planned TerminateInstance of {job.instance_id}, tags {instance.tags}")
                elif isinstance(job, DeleteNetworkInterface):
                    interface = self.interfaces.get(job.network_interface_id)
                    if interface is not None and not is_ours(interface.tags):
                        self.violations.append(
                            f"planned DeleteNetworkInterface of {job.network_interface_id}, tags {interface.tags}"
                        )
                elif (
                    isinstance(job, (RequestDrain, ForceTerminate, RegisterTarget, StartLifecycle))
                    and job.lbvm_id not in self.lbvm_ids_ever
                ):
                    self.violations.append(f"planned {type(job).__name__} of {job.lbvm_id}, not an LBVM of {LB_ID}")

    def start_execution(self, lbvm_id: str) -> str:
        """``StartExecution`` named after the LBVM: a second start finds it (ExecutionAlreadyExists)."""
        arn = EXECUTION_ARN_PREFIX + lbvm_id
        if lbvm_id in self.executions:
            self.act("reconciler", "start-execution (exists)", lbvm_id)
            return arn
        execution = Execution(lbvm_id, started_at=self.now)
        if self.launch_failures_armed:
            self.launch_failures_armed -= 1
            execution.fail_launch = True
        if self.broken_boots_armed:
            self.broken_boots_armed -= 1
            execution.broken_boot = True
        self.executions[lbvm_id] = execution
        self.executions_started[lbvm_id] += 1
        self.act("reconciler", "start-execution", lbvm_id)
        return arn

    # --- EC2 ----------------------------------------------------------------------------------------------

    def terminate(self, actor: str, instance_id: str) -> None:
        """Whoever terminates something that is not ours breaks the rule (the ports refuse before calling)."""
        instance = self.instances.get(instance_id)
        if instance is None:
            return  # describe finds nothing: nothing to do
        if not is_ours(instance.tags):
            self.violations.append(f"{actor} terminated {instance_id}, tags {instance.tags}")
        if instance.state not in ("shutting-down", "terminated"):
            instance.state = "shutting-down"
            self.act(actor, "terminate", instance_id)

    def delete_interface(self, actor: str, interface_id: str) -> None:
        interface = self.interfaces.get(interface_id)
        if interface is None:
            return
        if not is_ours(interface.tags):
            self.violations.append(f"{actor} deleted {interface_id}, tags {interface.tags}")
        if interface.attached_to is not None:
            raise JobFailed(f"InvalidNetworkInterface.InUse: {interface_id}")
        del self.interfaces[interface_id]
        self.act(actor, "delete-interface", interface_id)

    def _create_interface(self, subnet_id: str, tags: dict[str, str]) -> Interface:
        serial = self._next()
        interface = Interface(
            interface_id=f"eni-{serial:017x}",
            tags=dict(tags),
            subnet_id=subnet_id,
            private_ip=f"10.0.{SUBNET_IDS.index(subnet_id) if subnet_id in SUBNET_IDS else 9}.{serial % 250 + 4}",
        )
        self.interfaces[interface.interface_id] = interface
        return interface

    def _create_instance(
        self, interface: Interface, tags: dict[str, str], launched_at: datetime, *, lag: bool = False
    ) -> Instance:
        serial = self._next()
        instance = Instance(
            instance_id=f"i-{serial:017x}",
            tags=dict(tags),
            subnet_id=interface.subnet_id,
            private_ip=interface.private_ip,
            public_ip=f"198.51.100.{serial % 250 + 1}" if self.behaviour.public_ips else None,
            launched_at=launched_at,
            listed_from=launched_at + (TICK if lag else timedelta(0)),
        )
        interface.attached_to = instance.instance_id
        self.instances[instance.instance_id] = instance
        return instance

    def _count_instance(self, lbvm_id: str, instance_id: str) -> None:
        self.instances_per_lbvm[lbvm_id] += 1
        if self.instances_per_lbvm[lbvm_id] > 1:
            self.violations.append(f"a second instance for {lbvm_id}: {instance_id}")

    def _ec2_progress(self) -> None:
        for instance in self.instances.values():
            if instance.state == "pending":
                instance.state = "running"
            elif instance.state == "shutting-down":
                instance.state = "terminated"
                instance.terminated_at = self.now
                for interface in self.interfaces.values():
                    if interface.attached_to == instance.instance_id:
                        interface.attached_to = None  # created separately: not deleted on termination
        for instance_id in [
            i.instance_id
            for i in self.instances.values()
            if i.terminated_at is not None and self.now - i.terminated_at > TERMINATED_LISTED_FOR
        ]:
            del self.instances[instance_id]

    # --- the entry (``EntryAdapter``) ----------------------------------------------------------------------

    def ensure_entry(self) -> None:
        if self.entry.security_group_id is None:
            self.entry.security_group_id = f"sg-{self._next():017x}"
        self.entry.built = True
        self.entry.nlb_deleting = False
        self.act("reconciler", "ensure-entry", LB_ID)

    def teardown_entry(self) -> None:
        entry = self.entry
        entry.records.clear()
        if entry.built:
            entry.built = False
            entry.pool.clear()
            entry.nlb_deleting = self.spec.entry.mode == "pool"  # the NLB is deleted asynchronously
        else:
            entry.nlb_deleting = False
        # The security group stays while an interface of ours still uses it.
        if not any(is_ours(n.tags) for n in self.interfaces.values()):
            entry.security_group_id = None
        self.act("reconciler", "teardown-entry", LB_ID)

    def _address(self, lbvm: Lbvm) -> str:
        """``EntryAdapter._address``: internet-facing dns entries publish the public address if there is one."""
        instance = self.instances.get(lbvm.instance_id or "")
        if self.spec.entry.scheme == "internet-facing" and instance is not None and instance.public_ip:
            return instance.public_ip
        if lbvm.private_ip is None:
            raise JobFailed(f"EntryNotReady: {lbvm.instance_id} has no address yet")
        return lbvm.private_ip

    def register(self, actor: str, lbvm: Lbvm) -> None:
        if lbvm.instance_id is None:
            raise JobFailed(f"EntryNotReady: {lbvm.lbvm_id} has no instance yet")
        if self.spec.entry.mode == "dns":
            self.entry.records[lbvm.lbvm_id] = self._address(lbvm)
        else:
            if not self.entry.built:
                raise JobFailed(f"EntryNotReady: no target groups for {LB_ID}")
            instance = self.instances.get(lbvm.instance_id)
            if instance is None or instance.state != "running":
                raise JobFailed(f"InvalidTarget: {lbvm.instance_id} is not running")
            self.entry.pool.add(lbvm.instance_id)
        self.act(actor, "register", lbvm.lbvm_id)

    def deregister(self, actor: str, *, lbvm_id: str | None, instance_id: str | None) -> None:
        if lbvm_id is not None and lbvm_id in self.entry.records:
            del self.entry.records[lbvm_id]
            self.act(actor, "deregister", lbvm_id, "dns record")
        if instance_id is not None and self.spec.entry.mode == "pool" and instance_id in self.entry.pool:
            self.entry.pool.discard(instance_id)
            self.act(actor, "deregister", instance_id, "pool")

    # --- time ---------------------------------------------------------------------------------------------

    def advance(self) -> None:
        """One tick passes: EC2 moves on, agents heartbeat, lifecycle executions take their next step."""
        self.now += TICK
        self.tick += 1
        self._ec2_progress()
        for agent in list(self.agents.values()):
            self._heartbeat(agent)
        for lbvm_id in sorted(self.executions):
            self._step(self.executions[lbvm_id])

    def _heartbeat(self, agent: Agent) -> None:
        record = self.lbvms.get(agent.lbvm_id)
        instance = self.instances.get(agent.instance_id)
        if record is None or instance is None or instance.state != "running":
            return
        if agent.ready_at is None or self.now < agent.ready_at or agent.silent(self.now):
            return
        agent.last_beat = self.now
        agent.sequence += 1
        draining = record.drain_requested_at is not None or record.state == "Draining"
        if draining:
            told = record.drain_requested_at or record.state_since
            linger = ticks(self.behaviour.drain_linger_ticks)
            connections = self.behaviour.busy_connections if self.now < told + linger else 0
        else:
            connections = self.behaviour.busy_connections if record.state == "Routable" else 0
        self._update(
            agent.lbvm_id,
            last_heartbeat_at=self.now,
            agent_state="ready",
            applied_config_version=self.generation,
            active_connections=connections,
            boot_id=f"boot-{agent.instance_id}",
            heartbeat_sequence=agent.sequence,
        )

    # --- the lifecycle (``statemachines/lbvm-lifecycle.asl.json`` and ``lbvm-drain.asl.json``) ---------------

    def _step(self, execution: Execution) -> None:
        # Transitions that wait for nothing (a drain request seen at a callback, a drain that
        # does not wait for connections) run within one step, as the state machine runs them.
        for _ in range(8):
            if not self._progress(execution):
                return

    def _progress(self, execution: Execution) -> bool:
        lbvm = self.lbvms.get(execution.lbvm_id)
        if execution.finished or execution.stuck:
            return False
        if lbvm is None or lbvm.state == "Terminated":
            execution.finished = True  # "Not launchable", or "Already terminated?" in the drain
            return False
        spec = self.spec
        match lbvm.state:
            case "Launching":
                return self._lifecycle_launch(execution, lbvm)
            case "Pending":
                if lbvm.drain_requested_at is not None:
                    return self._begin_drain(execution, lbvm, lbvm.drain_reason or "replace")
                if lbvm.agent_state == "ready" and lbvm.last_heartbeat_at is not None:
                    return self._become_routable(execution, lbvm)
                if self.now - lbvm.state_since >= timedelta(seconds=spec.lifecycle.pending_timeout_seconds):
                    return self._begin_drain(execution, lbvm, "pending-timeout")
                return False
            case "Routable":
                if lbvm.drain_requested_at is not None:
                    return self._begin_drain(execution, lbvm, lbvm.drain_reason or "replace")
                agent = self.agents.get(lbvm.lbvm_id)
                last = execution.watch_since or lbvm.state_since
                if agent is not None and agent.last_beat is not None:
                    last = max(last, agent.last_beat)
                if self.now - last >= timedelta(seconds=spec.lifecycle.unhealthy_timeout_seconds):
                    self.deregister("lifecycle", lbvm_id=lbvm.lbvm_id, instance_id=lbvm.instance_id)
                    self._set_state(lbvm.lbvm_id, "Unroutable")
                    return True
                return False
            case "Unroutable":
                if lbvm.drain_requested_at is not None:
                    return self._begin_drain(execution, lbvm, lbvm.drain_reason or "replace")
                beat = lbvm.last_heartbeat_at
                if lbvm.agent_state == "ready" and beat is not None and beat > lbvm.state_since:
                    return self._become_routable(execution, lbvm)
                if self.now - lbvm.state_since >= timedelta(seconds=spec.lifecycle.recovery_timeout_seconds):
                    return self._begin_drain(execution, lbvm, "unhealthy")
                return False
            case "Draining":
                return self._drain_step(execution, lbvm)
        return False

    def _lifecycle_launch(self, execution: Execution, lbvm: Lbvm) -> bool:
        if lbvm.execution_arn is None:
            self._update(lbvm.lbvm_id, execution_arn=EXECUTION_ARN_PREFIX + lbvm.lbvm_id)
        tags = {**OUR_TAGS, LBVM_ID_TAG_KEY: lbvm.lbvm_id}
        interface = next(
            (n for n in self.interfaces.values() if n.tags.get(LBVM_ID_TAG_KEY) == lbvm.lbvm_id), None
        ) or self._create_interface(lbvm.subnet_id, tags)
        self._update(lbvm.lbvm_id, network_interface_id=interface.interface_id, private_ip=interface.private_ip)
        if execution.fail_launch:
            # Five RunInstances attempts fail: "Record failure" -> "Replace after failure" -> Drain.
            self.act("lifecycle", "launch-failed", lbvm.lbvm_id)
            current = self.lbvms[lbvm.lbvm_id]
            return self._begin_drain(execution, current, "replace")
        # Only a launch can be missing from the listing: its record already names it (in flight).
        instance = self._create_instance(interface, tags, launched_at=self.now, lag=self.behaviour.listing_lag)
        self._count_instance(lbvm.lbvm_id, instance.instance_id)
        broken = execution.broken_boot or lbvm.launch_template in self.broken_templates
        boot = None if broken else self.now + ticks(self.behaviour.boot_ticks)
        self.agents[lbvm.lbvm_id] = Agent(lbvm.lbvm_id, instance.instance_id, ready_at=boot)
        self._update(lbvm.lbvm_id, instance_id=instance.instance_id, state="Pending", state_since=self.now)
        self.act("lifecycle", "run-instance", instance.instance_id, lbvm.lbvm_id)
        return True

    def _become_routable(self, execution: Execution, lbvm: Lbvm) -> bool:
        try:
            self.register("lifecycle", lbvm)
        except JobFailed as failure:
            # "Register with entry" failed: "Record failure" -> "Replace after failure" -> Drain.
            self.act("lifecycle", "register-failed", lbvm.lbvm_id, str(failure))
            return self._begin_drain(execution, lbvm, "replace")
        self._set_state(lbvm.lbvm_id, "Routable")
        execution.watch_since = self.now
        return False

    def _begin_drain(self, execution: Execution, lbvm: Lbvm, reason: DrainReason) -> bool:
        """``begin_drain`` (the first request's reason wins), then deregister from the entry."""
        effective: DrainReason = lbvm.drain_reason or reason
        self._update(
            lbvm.lbvm_id,
            state="Draining",
            state_since=self.now,
            drain_requested_at=lbvm.drain_requested_at or self.now,
            drain_reason=effective,
            drain_deadline=lbvm.drain_deadline or self.now + timedelta(seconds=self.spec.drain.timeout_seconds),
            callback_kind=None,
            callback_token=None,
        )
        execution.drain_wait = effective not in NO_WAIT_REASONS
        execution.drain_clock = self.now
        self.act("lifecycle", "begin-drain", lbvm.lbvm_id, effective)
        self.deregister("lifecycle", lbvm_id=lbvm.lbvm_id, instance_id=lbvm.instance_id)
        return True

    def _drain_step(self, execution: Execution, lbvm: Lbvm) -> bool:
        if not execution.terminating:
            if execution.drain_clock is None:
                execution.drain_clock = self.now
            if execution.drain_wait:
                connections = lbvm.active_connections
                threshold = self.spec.drain.connection_threshold
                timed_out = self.now - execution.drain_clock >= timedelta(seconds=self.spec.drain.timeout_seconds)
                if connections is not None and connections >= threshold and not timed_out:
                    return False
            execution.terminating = True
        # "Find instances": everything carrying the LBVM's tag that is not terminated yet.
        left = [
            i
            for i in self.instances.values()
            if i.tags.get(LBVM_ID_TAG_KEY) == lbvm.lbvm_id and i.state != "terminated"
        ]
        if left:
            for instance in left:
                self.terminate("lifecycle", instance.instance_id)
            return False  # "Wait for termination"
        for interface in [n for n in self.interfaces.values() if n.tags.get(LBVM_ID_TAG_KEY) == lbvm.lbvm_id]:
            self.delete_interface("lifecycle", interface.interface_id)
        self._update(
            lbvm.lbvm_id,
            state="Terminated",
            state_since=self.now,
            terminated_at=self.now,
            end_reason=f"{lbvm.drain_reason}: drained",
            callback_kind=None,
            callback_token=None,
        )
        self.act("lifecycle", "terminated", lbvm.lbvm_id)
        execution.finished = True
        return False

    # --- records ---------------------------------------------------------------------------------------------

    def _update(self, lbvm_id: str, **changes: Any) -> None:
        current = self.lbvms[lbvm_id]
        self.lbvms[lbvm_id] = current.model_copy(update={**changes, "version": current.version + 1})

    def _set_state(self, lbvm_id: str, state: LbvmState) -> None:
        self._update(lbvm_id, state=state, state_since=self.now)
        self.act("lifecycle", state.lower(), lbvm_id)

    def act(self, actor: str, verb: str, target: str, detail: str = "") -> None:
        self.actions.append(Action(self.now, actor, verb, target, detail))

    # --- faults -------------------------------------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        match fault:
            case KillInstance(pick=pick):
                alive = sorted(i.instance_id for i in self.instances.values() if is_ours(i.tags) and i.alive)
                if alive:
                    victim = alive[pick % len(alive)]
                    self.instances[victim].state = "shutting-down"
                    self.act("fault", "kill-instance", victim)
            case SilenceAgent(pick=pick, for_ticks=for_ticks):
                agents = sorted(self.agents)
                if agents:
                    agent = self.agents[agents[pick % len(agents)]]
                    if for_ticks is None:
                        agent.silent_forever = True
                    else:
                        agent.silent_until = self.now + ticks(for_ticks)
                    self.act("fault", "silence-agent", agent.lbvm_id, f"for {for_ticks} tick(s)")
            case FailNextLaunch():
                self.launch_failures_armed += 1
            case BreakNextBoot():
                self.broken_boots_armed += 1
            case StickExecution(pick=pick):
                running = sorted(key for key, e in self.executions.items() if not e.finished and not e.stuck)
                if running:
                    victim = running[pick % len(running)]
                    self.executions[victim].stuck = True
                    self.act("fault", "stick-execution", victim, self.lbvms[victim].state)
            case AddForeignInstance(kind=kind, subnet=subnet):
                self._add_foreign(kind, SUBNET_IDS[subnet % len(SUBNET_IDS)])
            case DamageEntry():
                if self.spec.entry.mode == "pool" and self.entry.built:
                    self.entry.built = False
                    self.entry.pool.clear()
                else:
                    self.entry.records.clear()
                self.act("fault", "damage-entry", LB_ID)
            case DropRegistration(pick=pick):
                if self.spec.entry.mode == "pool" and self.entry.pool:
                    victim = sorted(self.entry.pool)[pick % len(self.entry.pool)]
                    self.entry.pool.discard(victim)
                    self.act("fault", "drop-registration", victim)
                elif self.entry.records:
                    victim = sorted(self.entry.records)[pick % len(self.entry.records)]
                    del self.entry.records[victim]
                    self.act("fault", "drop-registration", victim)
            case _:
                self._change(fault)

    def _change(self, fault: Fault) -> None:
        """The faults that are decisions of others: the scaler's, a user's PATCH or DELETE."""
        match fault:
            case SetDesired(desired=desired):
                if self.deletion_requested_at is None:  # the scaler's write is conditional on that
                    self.desired = desired
                    self.act("fault", "set-desired", str(desired))
            case SetCapacity(min=low, max=high):
                self._patch({"capacity": {"min": low, "max": high}})
            case RemoveSubnet(pick=pick):
                subnets = list(self.spec.subnet_ids)
                if len(subnets) > 1:
                    del subnets[pick % len(subnets)]
                    self._patch({"subnetIds": subnets})
            case ChangeInstanceType(pick=pick):
                choice = INSTANCE_TYPES[pick % len(INSTANCE_TYPES)]
                if choice != self.spec.instance.type:
                    self._patch({"instance": {**self.spec.instance.model_dump(by_alias=True), "type": choice}})
            case AddSubnet(subnet=subnet):
                candidate = SUBNET_IDS[subnet % len(SUBNET_IDS)]
                if candidate not in self.spec.subnet_ids:
                    self._patch({"subnetIds": [*self.spec.subnet_ids, candidate]})
            case RequestDeletion():
                if self.deletion_requested_at is None:
                    self.deletion_requested_at = self.now
                    self.act("fault", "request-deletion", LB_ID)
            case FailCall(operation=operation, kind=kind):
                assert operation in OPERATIONS, operation
                self.call_faults.failing[operation] = kind
            case KillReconciler(at_call=at_call):
                self.call_faults.die_at = at_call
            case RivalReconciler(at_call=at_call):
                self.call_faults.rival_at = at_call

    def disarm(self) -> None:
        """Faults stop: one-shot faults armed for the next launch or the next tick are dropped."""
        self.launch_failures_armed = 0
        self.broken_boots_armed = 0
        self.call_faults.disarm()

    def _patch(self, changes: dict[str, Any]) -> None:
        """A PATCH through the API: refused while deleting and when the result is invalid."""
        if self.deletion_requested_at is not None:
            return
        document = {**self.spec.model_dump(mode="json", by_alias=True), **changes}
        try:
            spec = parse_spec(document)
        except Exception:  # SpecRejected: the API answers 400 and nothing changes
            return
        desired = effective_desired_capacity(spec.capacity, self.desired)
        if spec.capacity.max + surge_count(spec.rollout, desired) < self.ceiling:
            self.ceiling_lowered = True
        self.spec = spec
        self.generation += 1
        self.act("fault", "patch", LB_ID, str(changes))

    def _add_foreign(self, kind: ForeignKind, subnet_id: str) -> None:
        tags: dict[str, str]
        if kind == "untagged":
            tags = {"Name": "someone-elses"}
        elif kind == "other-product":
            tags = {PRODUCT_TAG_KEY: "other-product", LB_ID_TAG_KEY: LB_ID, "Name": "web/other"}
        else:
            tags = {PRODUCT_TAG_KEY: PRODUCT_TAG_VALUE, LB_ID_TAG_KEY: OTHER_LB_ID, LBVM_ID_TAG_KEY: OTHER_LBVM_ID}
        interface = self._create_interface(subnet_id, tags)
        instance = self._create_instance(interface, tags, launched_at=self.now - timedelta(days=1))
        instance.state = "running"
        self.act("fault", "foreign-instance", instance.instance_id, kind)

    # --- the initial state -------------------------------------------------------------------------------------

    def _build(self, seed: Seed) -> None:
        if seed.entry_built:
            self.ensure_entry()
        for index, seed_lbvm in enumerate(seed.lbvms):
            self._seed_lbvm(index, seed_lbvm)
        for orphan in seed.orphans:
            self._seed_orphan(orphan)
        self.actions.clear()

    def _seed_lbvm(self, index: int, seed: SeedLbvm) -> None:
        lbvm_id = f"lbvm-{index + 1:012x}"
        subnet_id = SUBNET_IDS[seed.subnet % len(SUBNET_IDS)]
        since = self.now - ticks(seed.age_ticks)
        boot = ticks(self.behaviour.boot_ticks)
        self.lbvm_ids_ever.add(lbvm_id)
        self.lbvms[lbvm_id] = Lbvm(
            lbvm_id=lbvm_id,
            load_balancer_id=LB_ID,
            subnet_id=subnet_id,
            availability_zone=ZONES[subnet_id],
            state=seed.state,
            state_since=since,
            version=1,
            launched_generation=1,
            launch_template=OUTDATED_TEMPLATE if seed.outdated else launch_template(self.spec),
            launch_reason="seeded",
            created_at=since - boot - TICK,
        )
        self.markers_created[lbvm_id] += 1
        if seed.state == "Launching":
            if seed.execution:
                self.executions[lbvm_id] = Execution(lbvm_id, started_at=self.now)
                self.executions_started[lbvm_id] += 1
            return
        execution = Execution(lbvm_id, started_at=since - boot - TICK)
        self.executions[lbvm_id] = execution
        self.executions_started[lbvm_id] += 1
        self._update(lbvm_id, execution_arn=EXECUTION_ARN_PREFIX + lbvm_id)
        if seed.state == "Terminated":
            execution.finished = True
            self._update(lbvm_id, terminated_at=since, end_reason="seeded")
            return
        tags = {**OUR_TAGS, LBVM_ID_TAG_KEY: lbvm_id}
        interface = self._create_interface(subnet_id, tags)
        launched = since if seed.state == "Pending" else since - boot
        instance = self._create_instance(interface, tags, launched_at=launched)
        self._count_instance(lbvm_id, instance.instance_id)
        instance.state = "running"
        ready = launched + boot if seed.state != "Pending" or seed.agent_ready else None
        agent = Agent(lbvm_id, instance.instance_id, ready_at=ready)
        self.agents[lbvm_id] = agent
        self._update(
            lbvm_id,
            instance_id=instance.instance_id,
            network_interface_id=interface.interface_id,
            private_ip=interface.private_ip,
        )
        if ready is not None and ready <= self.now and seed.state != "Unroutable":
            agent.last_beat = self.now - TICK
            self._update(
                lbvm_id,
                last_heartbeat_at=agent.last_beat,
                agent_state="ready",
                applied_config_version=1,
                active_connections=self.behaviour.busy_connections if seed.state != "Pending" else 0,
            )
        if seed.state == "Routable":
            execution.watch_since = since
            if seed.registered and seed.instance_alive and (self.entry.built or self.spec.entry.mode == "dns"):
                self.register("seed", self.lbvms[lbvm_id])
        elif seed.state == "Unroutable":
            agent.silent_until = self.now + ticks(max(1, seed.age_ticks % 4))  # it may come back
        elif seed.state == "Draining":
            self._update(lbvm_id, drain_requested_at=since, drain_reason="scale-in")
            execution.drain_wait = True
            execution.drain_clock = since
        if not seed.instance_alive:
            instance.state = "terminated"
            instance.terminated_at = self.now - TICK
            interface.attached_to = None

    def _seed_orphan(self, orphan: SeedOrphan) -> None:
        terminated = [lbvm.lbvm_id for lbvm in self.lbvms.values() if lbvm.state == "Terminated"]
        tags = dict(OUR_TAGS)
        owner: str | None = None
        if orphan.owner == "terminated" and terminated:
            owner = terminated[0]
        elif orphan.owner != "none":
            owner = EXPIRED_LBVM_ID
        if owner is not None:
            tags[LBVM_ID_TAG_KEY] = owner
        subnet_id = self.spec.subnet_ids[0]
        if orphan.kind in ("instance", "interface"):
            interface = self._create_interface(subnet_id, tags)
            if orphan.kind == "instance":
                instance = self._create_instance(interface, tags, launched_at=self.now - ticks(orphan.age_ticks))
                instance.state = "running"
        elif orphan.kind == "registration":
            if self.spec.entry.mode == "pool" and self.entry.built:  # (registrations live in target groups)
                self.entry.pool.add(f"i-{0xDEAD0000 + self._next():017x}")
        elif owner is not None and self.spec.entry.mode == "dns":
            # (In pool mode the entry has no per-LBVM records to go stray.)
            self.entry.records[owner] = "10.0.9.9"

    # --- what the properties look at ----------------------------------------------------------------------------

    def our_instances(self) -> list[Instance]:
        return [i for i in self.instances.values() if is_ours(i.tags)]

    def instance_alive(self, lbvm_id: str) -> bool:
        """Whether the LBVM's instance is, in truth, in an alive state."""
        lbvm = self.lbvms.get(lbvm_id)
        instance = self.instances.get(lbvm.instance_id or "") if lbvm is not None else None
        return instance is not None and instance.alive

    def footprint(self) -> int:
        """Instances of this load balancer that exist (alive states) plus markers still waiting for one."""
        alive = sum(1 for i in self.our_instances() if i.alive)
        markers = sum(1 for lbvm in self.lbvms.values() if lbvm.state == "Launching" and lbvm.instance_id is None)
        return alive + markers

    def healthy(self, lbvm: Lbvm) -> bool:
        agent = self.agents.get(lbvm.lbvm_id)
        instance = self.instances.get(lbvm.instance_id or "")
        return (
            agent is not None
            and instance is not None
            and instance.state == "running"
            and agent.ready_at is not None
            and agent.ready_at <= self.now
            and not agent.silent(self.now)
        )

    def expected_template(self) -> str:
        """The spec's template, unless a rollout rejected it: then the one the fleet returned to."""
        rollout = self.stored_status.rollout
        template = launch_template(self.spec)
        if (
            rollout is not None
            and rollout.rejected
            and not rollout.active
            and rollout.to_template.description == template
        ):
            return rollout.from_template.description
        return template

    def to_roll(self) -> int:
        """Live LBVMs the spec no longer describes: each is replaced before it leaves."""
        template = launch_template(self.spec)
        return sum(
            1
            for lbvm in self.records()
            if lbvm.state != "Terminated"
            and (lbvm.subnet_id not in self.spec.subnet_ids or lbvm.launch_template != template)
        )

    def convergence_gaps(self) -> list[str]:
        """Why the world is not (yet) what the spec asks for; empty when it is."""
        gaps: list[str] = []
        desired = self.effective_desired
        live = [lbvm for lbvm in self.records() if lbvm.state != "Terminated"]
        routable = [lbvm for lbvm in live if lbvm.state == "Routable" and lbvm.drain_requested_at is None]
        others = [f"{lbvm.lbvm_id}={lbvm.state}" for lbvm in live if lbvm not in routable]
        if others:
            gaps.append(f"LBVMs not settled: {', '.join(others)}")
        if len(routable) != desired:
            gaps.append(f"{len(routable)} routable LBVMs for a desired capacity of {desired}")
        per_subnet = Counter({subnet: 0 for subnet in self.spec.subnet_ids})
        for lbvm in routable:
            if lbvm.subnet_id not in per_subnet:
                gaps.append(f"{lbvm.lbvm_id} is in {lbvm.subnet_id}, which the spec does not list")
            else:
                per_subnet[lbvm.subnet_id] += 1
        if max(per_subnet.values()) - min(per_subnet.values()) > 1:
            gaps.append(f"unbalanced over the subnets: {dict(per_subnet)}")
        template = self.expected_template()
        for lbvm in routable:
            if lbvm.launch_template != template:
                gaps.append(f"{lbvm.lbvm_id} runs {lbvm.launch_template}, the spec asks for {template}")
        for lbvm in routable:
            if not self.healthy(lbvm):
                gaps.append(f"{lbvm.lbvm_id} is Routable but not serving (instance or agent down)")
        wanted_instances = {lbvm.instance_id for lbvm in routable}
        if self.spec.entry.mode == "pool":
            if self.entry.pool != wanted_instances:
                gaps.append(
                    f"pool registrations {sorted(self.entry.pool)} != {sorted(i or '' for i in wanted_instances)}"
                )
            if self.entry.records:
                gaps.append(f"stray DNS records {sorted(self.entry.records)}")
        else:
            wanted_records = {lbvm.lbvm_id: self._address(lbvm) for lbvm in routable}
            if self.entry.records != wanted_records:
                gaps.append(f"DNS records {self.entry.records} != {wanted_records}")
        alive = {i.instance_id for i in self.our_instances() if i.alive}
        if alive != wanted_instances:
            gaps.append(f"instances {sorted(alive)} != routable LBVMs' {sorted(i or '' for i in wanted_instances)}")
        interfaces = {n.interface_id for n in self.interfaces.values() if is_ours(n.tags)}
        wanted_interfaces = {lbvm.network_interface_id for lbvm in routable}
        if interfaces != wanted_interfaces:
            gaps.append(
                f"interfaces {sorted(interfaces)} != routable LBVMs' {sorted(i or '' for i in wanted_interfaces)}"
            )
        if not self.entry_view(verified=False).ready:
            gaps.append("the entry is not ready")
        rollout = self.stored_status.rollout
        if rollout is not None and rollout.active:
            gaps.append(f"rollout {rollout.id} is {rollout.state} at step {rollout.step}: {rollout.waiting_for}")
        return gaps

    def unrecorded(self) -> list[str]:
        """What we created that no LBVM record (not Terminated) accounts for: instances, interfaces, registrations."""
        live = {lbvm.lbvm_id: lbvm for lbvm in self.lbvms.values() if lbvm.state != "Terminated"}
        live_instances = {lbvm.instance_id for lbvm in live.values() if lbvm.instance_id}
        found = [
            f"instance {i.instance_id}"
            for i in self.our_instances()
            if i.alive and (i.tags.get(LBVM_ID_TAG_KEY) not in live or i.instance_id not in live_instances)
        ]
        found += [
            f"interface {n.interface_id}"
            for n in self.interfaces.values()
            if is_ours(n.tags) and n.tags.get(LBVM_ID_TAG_KEY) not in live
        ]
        found += [f"registration {instance_id}" for instance_id in sorted(self.entry.pool - live_instances)]
        found += [f"DNS record of {lbvm_id}" for lbvm_id in sorted(set(self.entry.records) - set(live))]
        return found

    def leftovers(self) -> list[str]:
        """What is left of the load balancer after a deletion; empty when nothing is."""
        left: list[str] = []
        alive = sorted(i.instance_id for i in self.our_instances() if i.alive or i.state == "shutting-down")
        if alive:
            left.append(f"instances {alive}")
        interfaces = sorted(n.interface_id for n in self.interfaces.values() if is_ours(n.tags))
        if interfaces:
            left.append(f"interfaces {interfaces}")
        if self.entry.pool:
            left.append(f"registrations {sorted(self.entry.pool)}")
        if self.entry.records:
            left.append(f"DNS records {sorted(self.entry.records)}")
        if self.entry.built or self.entry.nlb_deleting or self.entry.security_group_id:
            left.append("entry resources")
        return left

    def describe(self) -> str:
        """One line: the time and every LBVM with its state, instance and registration."""
        parts = []
        for lbvm in self.records():
            instance = self.instances.get(lbvm.instance_id or "")
            registered = (lbvm.instance_id in self.entry.pool) or (lbvm.lbvm_id in self.entry.records)
            flags = "".join(
                (
                    "R" if registered else "",
                    "d" if lbvm.drain_requested_at else "",
                    "s" if self.executions.get(lbvm.lbvm_id, Execution("", self.now)).stuck else "",
                    "h" if self.healthy(lbvm) else "",
                )
            )
            where = SUBNET_IDS.index(lbvm.subnet_id) if lbvm.subnet_id in SUBNET_IDS else "?"
            machine = instance.state if instance else "-"
            parts.append(f"{lbvm.lbvm_id[-3:]}@{where}:{lbvm.state}/{machine}{'/' + flags if flags else ''}")
        others = sorted(
            i.instance_id[-3:]
            for i in self.our_instances()
            if i.alive and i.tags.get(LBVM_ID_TAG_KEY) not in {lbvm.lbvm_id for lbvm in self.lbvms.values()}
        )
        if others:
            parts.append(f"orphans:{','.join(others)}")
        return f"t={self.tick} " + " ".join(parts)


def describe_job(job: Job) -> str:
    """A short form of a job for traces: its type and its target."""
    target = (
        getattr(job, "lbvm_id", None)
        or getattr(job, "instance_id", None)
        or getattr(job, "network_interface_id", None)
        or getattr(job, "subnet_id", None)
        or ""
    )
    if isinstance(job, RequestDrain):
        target = f"{target}:{job.drain_reason}{':lost' if job.instance_lost else ''}"
    return f"{type(job).__name__}({target})" if target else type(job).__name__
