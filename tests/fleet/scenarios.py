"""Scenarios for the reconciler's property tests, how to run them in a ``World``, and the checks of each property.

A scenario draws a spec (timeouts small multiples of the one-minute tick), how
the machinery behaves, an initial world (empty, partially built, with orphans)
and a sequence of faults injected between ticks. ``Run`` steps the world tick
by tick: faults happen, time advances, EC2, agents and lifecycle executions
move on, and the real reconciler runs one invocation over the world's ports.
The bounds say within how many ticks a property must hold, derived from the
spec's timeouts and the planner's margins.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from hypothesis import currently_in_test_context, note
from hypothesis import strategies as st

from lbcp.models.rollout import RolloutControl
from lbcp.reconcile.jobs import Launch, RequestDrain
from lbcp.reconcile.launch import launch_template
from lbcp.reconcile.plan import PlannerSettings, ReconcilePlan
from lbcp.reconcile.plan.rollout import canary_count
from tests.fleet.world import (
    INSTANCE_TYPES,
    TICK,
    AddForeignInstance,
    AddSubnet,
    Behaviour,
    BreakNextBoot,
    ChangeInstanceType,
    DamageEntry,
    DropRegistration,
    FailCall,
    FailNextLaunch,
    Fault,
    FleetShape,
    ForeignKind,
    KillInstance,
    KillReconciler,
    RemoveSubnet,
    RequestDeletion,
    RivalReconciler,
    Seed,
    SeedLbvm,
    SeedOrphan,
    SetCapacity,
    SetDesired,
    SilenceAgent,
    StickExecution,
    World,
    describe_job,
    is_ours,
    ticks,
)
from tests.fleet.world_ports import LEASE_DURATION, OPERATIONS

# The planner as deployed: these margins are what the bounds below are made of.
PLANNER = PlannerSettings()
# A temporary agent silence lasts at most this many ticks (a longer one is "for good").
MAX_SILENCE_TICKS = 4
# Faults happen during the first ticks of a run only.
MAX_FAULT_TICK = 10


# --- strategies --------------------------------------------------------------------------------------


@st.composite
def shapes(draw: st.DrawFn) -> FleetShape:
    low = draw(st.integers(1, 3))
    surge = draw(st.integers(0, 2))
    return FleetShape(
        subnets=tuple(range(draw(st.integers(1, 3)))),
        min=low,
        max=draw(st.integers(low, low + 3)),
        lb_type=draw(st.sampled_from(["application", "classic"])),
        max_surge=surge,
        # maxSurge and maxUnavailable cannot both be 0 (spec_rules).
        max_unavailable=draw(st.integers(0 if surge else 1, 1)),
        entry_mode=draw(st.sampled_from(["pool", "dns"])),
        scheme=draw(st.sampled_from(["internal", "internet-facing"])),
        pending_ticks=draw(st.integers(2, 5)),
        unhealthy_ticks=draw(st.integers(1, 3)),
        recovery_ticks=draw(st.integers(0, 3)),
        drain_ticks=draw(st.integers(0, 3)),
        connection_threshold=draw(st.integers(0, 3)),
        canary=draw(st.integers(0, 2)),
        bake_ticks=draw(st.integers(0, 2)),
        max_failed_launches=draw(st.integers(1, 3)),
    )


@st.composite
def behaviours(draw: st.DrawFn, shape: FleetShape) -> Behaviour:
    return Behaviour(
        # A healthy agent is ready before the pending timeout; one that never is, is a fault.
        boot_ticks=draw(st.integers(1, shape.pending_ticks - 1)),
        busy_connections=draw(st.integers(0, 4)),
        drain_linger_ticks=draw(st.integers(0, 2)),
        verify_every=draw(st.integers(1, 3)),
        listing_lag=draw(st.booleans()),
    )


seed_lbvms = st.builds(
    SeedLbvm,
    state=st.sampled_from(["Launching", "Pending", "Routable", "Routable", "Unroutable", "Draining", "Terminated"]),
    subnet=st.integers(0, 3),
    age_ticks=st.integers(0, 12),
    instance_alive=st.booleans() | st.just(True),
    registered=st.booleans() | st.just(True),
    execution=st.booleans() | st.just(True),
    agent_ready=st.booleans() | st.just(True),
    outdated=st.booleans() | st.just(False),
)
seed_orphans = st.builds(
    SeedOrphan,
    kind=st.sampled_from(["instance", "interface", "registration", "dns-record"]),
    owner=st.sampled_from(["expired", "terminated", "none"]),
    age_ticks=st.integers(0, 60),
)
seeds = st.one_of(
    st.just(Seed()),  # a load balancer just created
    st.builds(Seed, lbvms=st.lists(seed_lbvms, max_size=6).map(tuple), entry_built=st.booleans()),
    st.builds(
        Seed,
        lbvms=st.lists(seed_lbvms, max_size=5).map(tuple),
        orphans=st.lists(seed_orphans, min_size=1, max_size=3).map(tuple),
        entry_built=st.booleans(),
    ),
)


@st.composite
def capacities(draw: st.DrawFn) -> SetCapacity:
    low = draw(st.integers(1, 4))
    return SetCapacity(min=low, max=draw(st.integers(low, low + 3)))


FOREIGN_KINDS: tuple[ForeignKind, ...] = ("untagged", "other-product", "other-load-balancer")
picks = st.integers(0, 7)
# An acting tick makes about 10 to 25 calls (reads, lease, each job's steps, the status write).
reconciler_calls = st.integers(0, 24)
fault_kinds: st.SearchStrategy[Fault] = st.one_of(
    st.builds(KillInstance, picks),
    st.builds(SilenceAgent, picks, st.none() | st.integers(1, MAX_SILENCE_TICKS)),
    st.just(FailNextLaunch()),
    st.just(BreakNextBoot()),
    st.builds(StickExecution, picks),
    st.builds(AddForeignInstance, st.sampled_from(FOREIGN_KINDS), st.integers(0, 3)),
    st.builds(SetDesired, st.integers(0, 8)),
    capacities(),
    st.builds(RemoveSubnet, picks),
    st.builds(AddSubnet, st.integers(0, 3)),
    st.builds(ChangeInstanceType, picks),
    st.just(DamageEntry()),
    st.builds(DropRegistration, picks),
    # What happens to the reconciler itself in the next tick.
    st.builds(FailCall, st.sampled_from(OPERATIONS), st.sampled_from(["throttle", "server-error"])),
    st.builds(KillReconciler, reconciler_calls),
    st.builds(RivalReconciler, reconciler_calls),
)


def schedule_of(kinds: st.SearchStrategy[Fault]) -> st.SearchStrategy[list[tuple[int, Fault]]]:
    """Up to 8 faults at ticks 0 .. MAX_FAULT_TICK - 1, in time order."""
    return st.lists(st.tuples(st.integers(0, MAX_FAULT_TICK - 1), kinds), max_size=8).map(
        lambda items: sorted(items, key=lambda item: item[0])
    )


schedules = schedule_of(fault_kinds)


@dataclass(frozen=True)
class Scenario:
    shape: FleetShape
    behaviour: Behaviour
    desired: int
    seed: Seed
    schedule: list[tuple[int, Fault]]
    rng_seed: int

    def world(self) -> World:
        return World(self.shape, self.desired, self.behaviour, self.seed)

    @property
    def fault_ticks(self) -> int:
        """Ticks 0 .. fault_ticks - 1 may carry faults; from fault_ticks on there are none."""
        return 1 + max((tick for tick, _ in self.schedule), default=-1)


@st.composite
def scenarios(
    draw: st.DrawFn,
    initial: st.SearchStrategy[Seed] = seeds,
    faults: st.SearchStrategy[list[tuple[int, Fault]]] = schedules,
) -> Scenario:
    shape = draw(shapes())
    return Scenario(
        shape=shape,
        behaviour=draw(behaviours(shape)),
        desired=draw(st.integers(0, shape.max + 2)),
        seed=draw(initial),
        schedule=draw(faults),
        rng_seed=draw(st.integers(0, 2**32 - 1)),
    )


# --- running a world ----------------------------------------------------------------------------------------


@dataclass
class Run:
    """A world, the planner's rng, and a trace of every tick for the report of a failing example."""

    world: World
    rng: random.Random
    trace: list[str] = field(default_factory=list)
    started: bool = False

    def step(self, faults: Sequence[Fault] = ()) -> Tick:
        """One tick: faults happen (between the last tick and this one), time passes, the reconciler runs.

        Time does not pass before the first tick: the reconciler sees the initial world as it is.
        """
        world = self.world
        for fault in faults:
            world.inject(fault)
        if self.started:
            world.advance()
        self.started = True
        before = world.footprint()
        record = world.record()
        assert record is not None
        seen = world.describe()
        invocation = world.reconcile(self.rng, PLANNER)
        decided = invocation.plan
        jobs = decided.jobs if decided is not None else ()
        self.trace.append(
            seen
            + (f" | faults: {', '.join(map(repr, faults))}" if faults else "")
            + (f" | jobs: {', '.join(describe_job(job) for job in jobs)}" if jobs else "")
            + (f" | {invocation.failed}" if invocation.failed else "")
            + (" | lease held" if invocation.locked else "")
            + (f" | {'; '.join(world.call_faults.fired)}" if world.call_faults.fired else "")
        )
        world.call_faults.fired.clear()
        lost = {
            job.lbvm_id
            for job in jobs
            if isinstance(job, RequestDrain) and job.instance_lost and job.drain_reason == "replace"
        }
        # Nothing the reconciler does terminates a lost LBVM's instance in the same tick: what is alive
        # now was alive when it planned.
        falsely_lost = [lbvm_id for lbvm_id in sorted(lost) if world.instance_alive(lbvm_id)]
        noop = (
            decided is not None
            and invocation.failed is None
            and not invocation.locked
            and decided.is_noop(record.status)
        )
        left = (world.left_at_removal or []) if world.removed else []
        return Tick(decided, noop, before, world.footprint(), falsely_lost, left)

    def show(self) -> None:
        """The trace, with the report of a failing example (a plain print outside hypothesis: pytest shows it)."""
        text = "\n".join(self.trace)
        if currently_in_test_context():
            note(text)
        else:
            print(text)


@dataclass(frozen=True)
class Tick:
    plan: ReconcilePlan | None  # None: the invocation failed before it planned
    noop: bool  # planned no jobs and the status as stored: the reconciler wrote nothing
    footprint_before: int  # after faults, before the plan was carried out
    footprint_after: int
    falsely_lost: list[str]  # LBVMs replaced as lost whose instance was in fact running
    left_at_removal: list[str]  # what was left when the record was removed

    @property
    def launches(self) -> int:
        return sum(1 for job in self.plan.jobs if isinstance(job, Launch)) if self.plan is not None else 0


def faults_at(scenario: Scenario, tick: int) -> list[Fault]:
    return [fault for at, fault in scenario.schedule if at == tick]


def run_faults(scenario: Scenario, run: Run) -> list[Tick]:
    """The ticks that may carry faults; afterwards faults stop (one-shot faults still armed are dropped)."""
    steps = [run.step(faults_at(scenario, tick)) for tick in range(scenario.fault_ticks)]
    run.world.disarm()
    return steps


# --- bounds ------------------------------------------------------------------------------------------------------


def convergence_bound(world: World) -> int:
    """Ticks after the faults stop within which the fleet must have converged.

    Stages, each of which may have to wait for the one before:

    1. settle: every LBVM that exists when faults stop ends Routable and healthy, or Terminated:
       - a temporarily silenced agent is back within MAX_SILENCE_TICKS; otherwise its LBVM
         goes Unroutable after the unhealthy timeout and is drained after the recovery timeout;
       - a Pending LBVM whose agent never gets ready is drained at its pending timeout;
       - a marker whose execution never started gets it after launch_grace, then lives as a new LBVM;
       - a stuck execution gets the planner's backstop: its state's own timeout + stuck_margin
         (drain requested), then drain timeout + 2 stuck_margin (ForceTerminate). This holds
         for every state a lifecycle can stop in; a state without a backstop (Launching,
         Routable: see the findings) never converges, whatever the bound;
       - a drain waits at most the drain timeout; the instance then terminates (1 tick) and
         the interface goes (1 tick);
       worst: launch_grace + max(pending, unhealthy + silence + recovery) + 3 stuck_margin + drain + 4 ticks;
    2. replace: a replacement launches once there is room (at the latest when what it replaces
       is Terminated): 1 tick to decide, 1 to get an instance, boot ticks, 1 to register;
    3. trim: a surplus (an LBVM that recovered after its replacement launched) drains: drain + 3 ticks;
    4. verify: drift is repaired at the next verified tick past the registration grace;
    5. roll: an LBVM the spec no longer describes (a dropped subnet, another instance type)
       leaves only once a replacement is routable, so at worst one at a time: replace + trim
       for each of them.

    Orphans exist from the start and go orphan_grace after their launch (+2 ticks); 2 ticks of
    slack cover the tick whose only change is the status write. A reconciler that died leaves
    its lease held until it expires: the ticks until then may not act (``dead_lease_wait``).
    """
    lifecycle, drain = world.spec.lifecycle, world.spec.drain
    pending = timedelta(seconds=lifecycle.pending_timeout_seconds)
    sick = timedelta(seconds=lifecycle.unhealthy_timeout_seconds + lifecycle.recovery_timeout_seconds)
    drain_timeout = timedelta(seconds=drain.timeout_seconds)
    settle = (
        PLANNER.launch_grace
        + max(pending, sick + ticks(MAX_SILENCE_TICKS))
        + 3 * PLANNER.stuck_margin
        + drain_timeout
        + ticks(4)
    )
    replace = ticks(3 + world.behaviour.boot_ticks)
    trim = drain_timeout + ticks(3)
    verify = ticks(world.behaviour.verify_every) + PLANNER.registration_grace
    roll = world.to_roll() * (replace + trim)
    # A rollout's canary goes first and bakes; a rollout that fails (faults can make its canary fail)
    # waits at most its progress deadline, then rolls back as it rolled: each step once more.
    rollout = world.spec.rollout
    canary = replace + timedelta(seconds=rollout.bake_seconds) + ticks(2)
    deadline = timedelta(seconds=rollout.progress_deadline_seconds)
    if world.to_roll():
        roll += canary + deadline + roll
    total = max(settle + replace + trim + verify + roll, PLANNER.orphan_grace + ticks(2)) + ticks(2)
    return math.ceil(total / TICK) + dead_lease_wait(world)


def dead_lease_wait(world: World) -> int:
    """Ticks a lease left by a reconciler that died may still block the others: until it expires."""
    return math.ceil(LEASE_DURATION / TICK) if world.leases.dead else 0


def deletion_bound(world: World) -> int:
    """Ticks after the deletion request within which the load balancer must be gone.

    Every LBVM is asked to drain at once. A launch in flight first gets its instance (1 tick);
    a drain waits at most the drain timeout, and a stuck one gets ForceTerminate drain timeout
    + 2 stuck_margin after the request (+1 tick, the planner acts on ticks); the instance then
    terminates (1 tick) and its interface goes (1 tick). Orphans go orphan_grace after their
    launch (they exist from the start). Then two TeardownEntry (the NLB goes asynchronously)
    and RemoveLoadBalancer: 3 ticks; 2 ticks of slack; and the wait for a dead reconciler's lease.
    """
    drain_timeout = timedelta(seconds=world.spec.drain.timeout_seconds)
    lbvms = ticks(1) + drain_timeout + 2 * PLANNER.stuck_margin + ticks(1) + ticks(2)
    orphans = PLANNER.orphan_grace + ticks(2) - ticks(world.tick)
    return math.ceil((max(lbvms, orphans) + ticks(5)) / TICK) + dead_lease_wait(world)


def steady_ticks(world: World) -> int:
    """How long a converged fleet is watched: two full verification rounds and then some."""
    return 2 * world.behaviour.verify_every + 2


# --- the properties, as checks of one scenario -----------------------------------------------------------------


def check_converges(scenario: Scenario) -> None:
    """Once faults stop, the fleet converges within the bound, and then the plan stays a no-op."""
    run = Run(scenario.world(), random.Random(scenario.rng_seed))
    world = run.world
    try:
        run_faults(scenario, run)
        bound = convergence_bound(world)
        converged = False
        for _ in range(bound + 1):
            tick = run.step()
            if tick.noop and not world.convergence_gaps():
                converged = True
                break
        assert converged, f"not converged {bound} ticks after the faults stopped: {world.convergence_gaps()}"
        assert not world.unrecorded(), f"created and not recorded: {world.unrecorded()}"
        # The desired capacity is respected within the bounds (convergence_gaps checked == desired).
        routable = sum(1 for lbvm in world.lbvms.values() if lbvm.state == "Routable")
        assert world.spec.capacity.min <= routable <= world.spec.capacity.max
        for _ in range(steady_ticks(world)):
            tick = run.step()
            assert tick.noop, f"a converged fleet got jobs or a status write: {tick.plan and tick.plan.jobs}"
            assert not world.convergence_gaps(), world.convergence_gaps()
    finally:
        run.show()


def check_within_max_plus_surge(scenario: Scenario) -> None:
    """Instances (plus launches in flight) never exceed capacity.max + rollout.maxSurge.

    Counted: instances of this load balancer in an alive state (pending, running,
    stopping, stopped: ``INSTANCE_ALIVE_STATES``, what the planner counts) plus markers
    still waiting for their instance, which is about to exist.

    Not counted: shutting-down instances. Counting them ("not terminated", read
    literally) fails only in a transient that is intended behaviour: an instance killed
    behind our back is still shutting down when the planner launches into its capacity.
    Replacing an instance must not wait for EC2 to finish terminating the old one.
    """
    run = Run(scenario.world(), random.Random(scenario.rng_seed))
    world = run.world
    # Above the ceiling is allowed only where the world put the fleet: an initial fleet
    # already too big, or a PATCH that lowered capacity.max. The planner must then not
    # add to it, and must never launch unless the result fits under the ceiling.
    allowance = world.footprint()
    try:
        for index in range(scenario.fault_ticks + 20):
            ceiling_before = world.ceiling
            tick = run.step(faults_at(scenario, index))
            if world.ceiling < ceiling_before:
                allowance = max(allowance, tick.footprint_before)
            limit = max(world.ceiling, allowance)
            assert tick.footprint_before <= limit, f"{tick.footprint_before} instances > {limit}"
            assert tick.footprint_after <= limit, f"{tick.footprint_after} instances > {limit}"
            if tick.launches:
                assert tick.footprint_after <= world.ceiling, (
                    f"launched {tick.launches}, making {tick.footprint_after} > max + surge = {world.ceiling}"
                )
            if tick.footprint_after <= world.ceiling:
                allowance = 0  # back under the ceiling: it must stay there
    finally:
        run.show()


def check_one_launch_per_slot(scenario: Scenario, rivals: Sequence[int] = ()) -> None:
    """Every LBVM id is launched once, has at most one execution and one instance, ever.

    ``rivals``: in every tick a second reconciler also ticks, right before the
    primary's ``rivals[tick % len(rivals)]``-th call (the schedule and a spec
    change overlapping, a retried invocation): only the lease keeps them apart.
    """
    run = Run(scenario.world(), random.Random(scenario.rng_seed))
    world = run.world
    try:
        for index in range(scenario.fault_ticks + 20):
            rival: list[Fault] = [RivalReconciler(rivals[index % len(rivals)])] if rivals else []
            tick = run.step([*faults_at(scenario, index), *rival])
            # Replacing an LBVM as "lost" while its instance runs puts a second LBVM in its slot.
            assert not tick.falsely_lost, f"replaced as lost while running: {tick.falsely_lost}"
        assert all(count == 1 for count in world.markers_created.values()), world.markers_created
        # Two reconcilers at once: a launch decided without seeing the other's marker fills a slot twice.
        assert not world.stale_launches, world.stale_launches
        assert all(count <= 1 for count in world.executions_started.values()), world.executions_started
        assert all(count <= 1 for count in world.instances_per_lbvm.values()), world.instances_per_lbvm
    finally:
        run.show()


def check_touches_only_ours(scenario: Scenario, foreign: Sequence[ForeignKind]) -> None:
    """No job and no action targets an instance or interface without our product tag and this LB's id."""
    run = Run(scenario.world(), random.Random(scenario.rng_seed))
    world = run.world
    # Foreign instances share our subnets from the start (faults may add more); the load
    # balancer is deleted at the end so that its teardown runs too.
    for index, kind in enumerate(foreign):
        world.inject(AddForeignInstance(kind, index))
    try:
        for index in range(scenario.fault_ticks + 15):
            run.step(faults_at(scenario, index))
        run.step([RequestDeletion()])
        for _ in range(deletion_bound(world)):
            if world.removed:
                break
            run.step()
        # The world records every attempt (planned, or carried out by the reconciler or by a
        # lifecycle) to terminate or delete an instance or interface without our owner tags.
        assert not world.violations, world.violations
        foreign_instances = [i for i in world.instances.values() if not is_ours(i.tags)]
        assert all(i.state == "running" for i in foreign_instances), foreign_instances
        foreign_interfaces = [n for n in world.interfaces.values() if not is_ours(n.tags)]
        assert len(foreign_interfaces) == len(foreign_instances), foreign_interfaces
    finally:
        run.show()


def check_deletion_completes(scenario: Scenario) -> None:
    """After a deletion request the load balancer goes within the bound, and only once nothing is left."""
    run = Run(scenario.world(), random.Random(scenario.rng_seed))
    world = run.world
    try:
        run_faults(scenario, run)
        tick = run.step([RequestDeletion()])
        bound = deletion_bound(world)
        for _ in range(bound):
            # The last finalizer runs only when nothing of the load balancer is left.
            assert not tick.left_at_removal, f"removed with {tick.left_at_removal} left"
            if world.removed:
                break
            tick = run.step()
        assert world.removed, f"not removed {bound} ticks after the deletion request: {world.leftovers()}"
        assert not world.leftovers(), world.leftovers()
        assert not world.lbvms, sorted(world.lbvms)
    finally:
        run.show()


def serving(world: World) -> int:
    """LBVMs clients reach: Routable, not asked to drain, healthy, and in the entry."""
    count = 0
    for lbvm in world.lbvms.values():
        if lbvm.state != "Routable" or lbvm.drain_requested_at is not None or not world.healthy(lbvm):
            continue
        if world.spec.entry.mode == "pool":
            count += lbvm.instance_id in world.entry.pool
        else:
            count += lbvm.lbvm_id in world.entry.records
    return count


def check_rollout_keeps_serving(scenario: Scenario) -> None:
    """A converged fleet is rolled (instance type, subnets) without faults: clients always reach
    at least desired - maxUnavailable LBVMs, and the fleet converges on the new spec."""
    run = Run(scenario.world(), random.Random(scenario.rng_seed))
    world = run.world
    try:
        for _ in range(convergence_bound(world) + 1):
            if run.step().noop and not world.convergence_gaps():
                break
        assert not world.convergence_gaps(), f"never converged before the rollout: {world.convergence_gaps()}"
        floor = world.floor
        changes = [fault for _, fault in scenario.schedule]
        tick = run.step(changes)
        bound = convergence_bound(world)
        # The PATCH may lower the floor (a subnet fewer changes nothing; maxUnavailable is not patched).
        floor = min(floor, world.floor)
        # maxSurge counts from the desired capacity (a Deployment's): no more instances than that exist.
        ceiling = max(world.effective_desired + world.surge, tick.footprint_before)
        for _ in range(bound + 1):
            assert serving(world) >= floor, f"{serving(world)} LBVMs serving during the rollout, floor {floor}"
            assert tick.footprint_after <= ceiling, f"{tick.footprint_after} instances > desired + maxSurge {ceiling}"
            if tick.noop and not world.convergence_gaps():
                break
            tick = run.step()
        assert not world.convergence_gaps(), (
            f"rollout not done {bound} ticks after it began: {world.convergence_gaps()}"
        )
    finally:
        run.show()


# --- rollouts onto a template that never gets healthy; an operator's pause, resume and abort ------------------


def converge(run: Run) -> None:
    world = run.world
    for _ in range(convergence_bound(world) + 1):
        if run.step().noop and not world.convergence_gaps():
            return
    raise AssertionError(f"never converged before the rollout: {world.convergence_gaps()}")


def launches_on(world: World, template: str) -> list[str]:
    return sorted(lbvm_id for lbvm_id, lbvm in world.lbvms.items() if lbvm.launch_template == template)


def rollout_bound(world: World) -> int:
    """Ticks within which a rollout that fails its canary has rolled back: its deadline, then a roll back."""
    rollout = world.spec.rollout
    deadline = timedelta(seconds=rollout.progress_deadline_seconds)
    return convergence_bound(world) + math.ceil(deadline / TICK)


def check_broken_rollout_rolls_back(scenario: Scenario) -> None:
    """A PATCH onto a template whose agents never get healthy: the rollout ends RolledBack, the fleet back
    on the old template, the new one launched at most canary + maxFailedLaunches - 1 times, never more than
    desired + maxSurge instances, never fewer than desired - maxUnavailable serving; and it is not retried."""
    run = Run(scenario.world(), random.Random(scenario.rng_seed))
    world = run.world
    try:
        converge(run)
        old = launch_template(world.spec)
        floor, desired = world.floor, world.effective_desired
        [(_, change)] = scenario.schedule
        assert isinstance(change, ChangeInstanceType)
        new = f"{INSTANCE_TYPES[change.pick % len(INSTANCE_TYPES)]} from the latest Amazon Linux 2023 running haproxy"
        world.broken_templates.add(new)
        tick = run.step([change])
        # The first wave: the canary, or without one the first replacements (maxSurge + maxUnavailable);
        # a failed launch is replaced until maxFailedLaunches of them failed.
        canary = canary_count(world.spec, desired)
        wave = canary or world.surge + world.effective_desired - world.floor
        launch_bound = wave + world.spec.rollout.max_failed_launches - 1
        ceiling = max(desired + world.surge, tick.footprint_before)
        for _ in range(rollout_bound(world)):
            assert serving(world) >= floor, f"{serving(world)} serving during the rollout, floor {floor}"
            assert tick.footprint_after <= ceiling, f"{tick.footprint_after} instances > {ceiling}"
            assert len(launches_on(world, new)) <= launch_bound, (
                f"{len(launches_on(world, new))} launches of the broken template > {launch_bound}"
            )
            if tick.noop and not world.convergence_gaps():
                break
            tick = run.step()
        rollout = world.stored_status.rollout
        assert rollout is not None and rollout.state == "RolledBack" and rollout.rejected, rollout
        assert rollout.from_template.description == old and rollout.to_template.description == new
        assert not world.convergence_gaps(), world.convergence_gaps()  # on the old template: expected_template
        assert all(lbvm.launch_template == old for lbvm in world.lbvms.values() if lbvm.state == "Routable")
        assert launch_template(world.spec) == new  # the spec is never rewritten
        launched = len(launches_on(world, new))
        for _ in range(
            steady_ticks(world) + math.ceil(timedelta(seconds=world.spec.rollout.progress_deadline_seconds) / TICK)
        ):
            tick = run.step()
            assert tick.noop, f"a rolled-back fleet got jobs or a status write: {tick.plan and tick.plan.jobs}"
        assert len(launches_on(world, new)) == launched, "the rejected template was launched again"
    finally:
        run.show()


def check_pause_holds_then_resume_finishes(scenario: Scenario, pause_after: int, paused_for: int) -> None:
    """Paused, a rollout launches nothing onto the new template and keeps the old LBVMs that no new one has
    replaced (a replacement already launched still takes its predecessor's place); the fleet keeps serving.
    Resumed, it succeeds."""
    run = Run(scenario.world(), random.Random(scenario.rng_seed))
    world = run.world
    try:
        converge(run)
        floor = world.floor
        [(_, change)] = scenario.schedule
        run.step([change])
        new = launch_template(world.spec)
        for _ in range(pause_after):
            run.step()
        rollout = world.stored_status.rollout
        if rollout is None or not rollout.active:
            return  # over before the pause (a small fleet): nothing to hold
        world.rollout_control = RolloutControl(rollout_id=rollout.id, action="pause", requested_at=world.now)
        run.step()
        assert world.stored_status.rollout is not None and world.stored_status.rollout.state == "Paused"
        on_new = {lbvm_id for lbvm_id in launches_on(world, new) if world.lbvms[lbvm_id].live}
        old_at_pause = sum(1 for lbvm in world.lbvms.values() if lbvm.live and lbvm.launch_template != new)
        for _ in range(paused_for):
            tick = run.step()
            assert tick.plan is not None
            assert not [
                job
                for job in tick.plan.jobs
                if isinstance(job, Launch) and job.template is not None and job.template.description == new
            ], "launched onto the new template while paused"
            old_left = sum(1 for lbvm in world.lbvms.values() if lbvm.live and lbvm.launch_template != new)
            # An old LBVM leaves only for a new one that was already there when the pause began.
            assert old_left >= min(old_at_pause, world.effective_desired - len(on_new)), (
                f"{old_left} old LBVMs left while paused ({old_at_pause} at the pause)"
            )
            assert serving(world) >= floor
        assert {lbvm_id for lbvm_id in launches_on(world, new) if world.lbvms[lbvm_id].live} <= on_new
        world.rollout_control = RolloutControl(rollout_id=rollout.id, action="resume", requested_at=world.now)
        for _ in range(convergence_bound(world) + 1):
            tick = run.step()
            assert serving(world) >= floor
            if tick.noop and not world.convergence_gaps():
                break
        final = world.stored_status.rollout
        assert final is not None and final.state == "Succeeded", final
        assert not world.convergence_gaps(), world.convergence_gaps()
    finally:
        run.show()


def check_abort_rolls_back(scenario: Scenario, abort_after: int) -> None:
    """An abort at any point of a rollout returns the fleet to the old template and rejects the new one."""
    run = Run(scenario.world(), random.Random(scenario.rng_seed))
    world = run.world
    try:
        converge(run)
        old, floor = launch_template(world.spec), world.floor
        [(_, change)] = scenario.schedule
        run.step([change])
        for _ in range(abort_after):
            run.step()
        rollout = world.stored_status.rollout
        if rollout is None or not rollout.active:
            return
        world.rollout_control = RolloutControl(
            rollout_id=rollout.id, action="abort", requested_at=world.now, requested_by="ops"
        )
        for _ in range(convergence_bound(world) + 1):
            tick = run.step()
            assert serving(world) >= floor
            if tick.noop and not world.convergence_gaps():
                break
        final = world.stored_status.rollout
        assert final is not None and final.state == "RolledBack" and final.rejected, final
        assert not world.convergence_gaps(), world.convergence_gaps()
        assert all(lbvm.launch_template == old for lbvm in world.lbvms.values() if lbvm.state == "Routable")
    finally:
        run.show()
