"""A load balancer that keeps failing is isolated, backed off and dead-lettered; the others never wait for it.

Against emulated AWS (moto, in-process): the real reconciler, planner,
executor, repositories and entry adapter. Load balancers start in steady
state (entry built, two Routable LBVMs registered) with their first status
still to write. A *poison* load balancer is made by a fault at the AWS call
level (a botocore ``before-call`` hook answers its status transaction with a
ValidationException, as DynamoDB does for an item grown too big): its act raises outside
the executor's per-job handling, the failure this isolates. Time is injected
(``clock``), nothing sleeps.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from handlers import reconciler as handler
from lbcp.dal.lbvms import LbvmRepository
from lbcp.dal.repository import LoadBalancerRepository
from lbcp.entry.adapter import EntryAdapter
from lbcp.models.events import Event
from lbcp.models.lbvm import Lbvm
from lbcp.models.resource import LoadBalancerRecord
from lbcp.reconcile.run import Reconciler, TickReport
from lbcp.reconcile.wiring import build_reconciler
from lbcp.service import initial_status
from lbcp.settings import Settings
from lbcp.validation import parse_spec
from lbcp_local.seed import example_spec
from tests.conftest import REGION, Cloud

ACCOUNT_ID = "123456789012"
TICK = timedelta(minutes=1)


@dataclass
class Faults:
    """Load balancers whose record's transactions DynamoDB refuses (as it refuses an item grown past 400 KB)."""

    poisoned: set[str] = field(default_factory=set)
    # Every call the reconciler's clients made: (service, operation, request parameters).
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def record(self, params: dict[str, Any], model: Any, **kwargs: Any) -> None:
        self.calls.append((model.service_model.service_name, model.name, dict(params)))

    # DynamoDB operations throttled outright, every call (as once botocore's retries are spent).
    throttled: set[str] = field(default_factory=set)

    def hook(self, **kwargs: Any) -> tuple[Any, dict[str, Any]] | None:
        if kwargs["model"].name in self.throttled:
            error = {"Code": "ProvisionedThroughputExceededException", "Message": "throttled (test)"}
            return SimpleNamespace(status_code=400, headers={}), {"Error": error, "ResponseMetadata": {}}
        if kwargs["model"].name != "TransactWriteItems":
            return None
        # ``params`` is the serialized request: DynamoDB's JSON body.
        request = json.loads(kwargs["params"]["body"])
        keys = {
            (key.get("pk", {}).get("S"), key.get("sk", {}).get("S"))
            for item in request.get("TransactItems", [])
            for part in item.values()
            for key in [part.get("Key", part.get("Item", {}))]
        }
        if not {(f"LB#{lb_id}", "LB") for lb_id in self.poisoned} & keys:
            return None
        # Not retried by botocore (a 500 would be, with real sleeps): refused outright, every time.
        error = {"Code": "ValidationException", "Message": "Item size has exceeded the maximum allowed size"}
        return SimpleNamespace(status_code=400, headers={}), {"Error": error, "ResponseMetadata": {}}


@dataclass
class World:
    cloud: Cloud
    reconciler: Reconciler
    load_balancers: LoadBalancerRepository
    entry: EntryAdapter
    faults: Faults
    clock: list[datetime]
    lbvms: LbvmRepository

    def heartbeat(self) -> None:
        """The agents' heartbeats (they come every few seconds): no LBVM looks lost."""
        for lbvm in self.lbvms.list_all():
            self.lbvms.update(lbvm, last_heartbeat_at=self.clock[0])

    def tick(self, only: set[str] | None = None, urgent: set[str] | frozenset[str] = frozenset()) -> TickReport:
        """One reconciler invocation, after the agents' heartbeats."""
        self.heartbeat()
        return self.reconciler.tick(only, urgent=urgent)

    def advance(self, delta: timedelta = TICK) -> None:
        self.clock[0] += delta

    def record(self, lb_id: str) -> LoadBalancerRecord:
        record = self.load_balancers.get(lb_id)
        assert record is not None
        return record

    def events(self, lb_id: str, reason: str | None = None) -> list[Event]:
        found = self.load_balancers.list_events(lb_id, 500, None).items
        return [e for e in found if reason is None or e.reason == reason]


def steady_load_balancer(cloud: Cloud, entry: EntryAdapter, name: str, now: datetime) -> str:
    """A load balancer whose fleet is in place (entry, two Routable LBVMs registered); its status is the initial one."""
    ami = str(cloud.ec2.register_image(Name=f"{name}-{uuid.uuid4().hex[:6]}", RootDeviceName="/dev/xvda")["ImageId"])
    document = {**example_spec(cloud.account, name=name), "capacity": {"min": 2, "max": 4}}
    document["instance"] = {"type": "c6i.large", "imageId": ami}
    spec = parse_spec(document)
    lb_id = f"lb-{uuid.uuid4().hex[:17]}"
    record = LoadBalancerRecord(
        id=lb_id,
        generation=1,
        spec=spec,
        status=initial_status(spec),
        created_at=now,
        updated_at=now,
        desired_capacity=2,
    )
    load_balancers = LoadBalancerRepository(cloud.dynamodb, cloud.table)
    load_balancers.create(record, Event(time=now, type="Normal", reason="Created", message="test"))
    view = entry.ensure_entry(spec, lb_id)
    lbvms = LbvmRepository(cloud.dynamodb, cloud.table)
    for slot in range(2):
        lbvm_id = f"lbvm-{uuid.uuid4().hex[:12]}"
        tags = [
            {"Key": "lbcp:product", "Value": "lbcp"},
            {"Key": "lbcp:load-balancer-id", "Value": lb_id},
            {"Key": "lbcp:lbvm-id", "Value": lbvm_id},
        ]
        subnet = cloud.account.subnet_ids[slot]
        instance = cloud.ec2.run_instances(
            ImageId=ami,
            InstanceType="c6i.large",
            MinCount=1,
            MaxCount=1,
            SubnetId=subnet,
            SecurityGroupIds=[view.security_group_id or ""],
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )["Instances"][0]
        lbvms.create(
            Lbvm(
                lbvm_id=lbvm_id,
                load_balancer_id=lb_id,
                subnet_id=subnet,
                availability_zone=cloud.account.availability_zones[slot],
                state="Routable",
                state_since=now - timedelta(minutes=10),
                version=1,
                launched_generation=1,
                launch_template=f"c6i.large from {ami} running haproxy",
                launch_reason="test",
                created_at=now - timedelta(minutes=11),
                instance_id=instance["InstanceId"],
                private_ip=instance["PrivateIpAddress"],
                last_heartbeat_at=now,
                applied_config_version=1,
                agent_state="ready",
            )
        )
        entry.register_lbvm(
            spec, lb_id, lbvm_id=lbvm_id, instance_id=instance["InstanceId"], private_ip=instance["PrivateIpAddress"]
        )
    return lb_id


Build = Callable[..., tuple[World, list[str]]]


@pytest.fixture
def world(cloud: Cloud) -> Iterator[Build]:
    session = boto3.session.Session(region_name=REGION)
    domain = f"{uuid.uuid4().hex[:8]}.lbcp.test"
    zone_id = session.client("route53").create_hosted_zone(Name=domain, CallerReference=domain)["HostedZone"]["Id"]
    zone_id = zone_id.split("/")[-1]
    entry = EntryAdapter(
        ec2=cloud.ec2,
        elbv2=session.client("elbv2"),
        route53=session.client("route53"),
        hosted_zone_id=zone_id,
        dns_domain=domain,
    )
    clock = [datetime(2026, 12, 7, 12, 0, 30, tzinfo=UTC)]

    def build(names: list[str], **settings_changes: Any) -> tuple[World, list[str]]:
        ids = [steady_load_balancer(cloud, entry, name, clock[0]) for name in names]
        faults = Faults()

        def client(service: str) -> Any:
            made = session.client(service)
            made.meta.events.register("before-parameter-build.*.*", faults.record)
            if service == "dynamodb":
                made.meta.events.register("before-call.dynamodb.*", faults.hook)
            return made

        settings = Settings(
            table_name=cloud.table,
            event_retention_days=30,
            idempotency_ttl_seconds=86400,
            lifecycle_state_machine_arn=f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:lifecycle",
            drain_state_machine_arn=f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:drain",
            tasks_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:tasks",
            hosted_zone_id=zone_id,
            dns_domain=domain,
            agent_endpoint="https://agent.example",
            **settings_changes,
        )
        reconciler = build_reconciler(settings, client, clock=lambda: clock[0], rng=random.Random(7))
        repository = LoadBalancerRepository(cloud.dynamodb, cloud.table)
        lbvms = LbvmRepository(cloud.dynamodb, cloud.table)
        return World(cloud, reconciler, repository, entry, faults, clock, lbvms), ids

    yield build


# --- isolation --------------------------------------------------------------------------------------------------


def test_a_load_balancer_whose_act_raises_does_not_stop_the_others(world: Build) -> None:
    # Listed by name: the poison one comes first, so before the fix the healthy one was never reached.
    w, (poison, healthy) = world(["a-poison", "b-healthy"])
    w.faults.poisoned.add(poison)
    report = w.tick()
    assert set(report.failures) == {poison}
    assert "(ValidationException)" in report.failures[poison]
    assert w.record(healthy).status.phase == "Active"
    assert w.record(healthy).status.observed_generation == 1
    assert w.record(poison).status.observed_generation != 1  # its status was never written
    # The healthy one has converged: the next tick has nothing to do for it.
    w.advance()
    again = w.tick()
    assert again.plans[healthy].is_noop(w.record(healthy).status)
    assert healthy not in again.acted


# --- backoff and dead letters -----------------------------------------------------------------------------------


def dead_letter_queue() -> tuple[Any, str]:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName=f"lbcp-reconcile-dead-letters-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    return sqs, str(url)


def dead_letters(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message in the queue, left in it (a zero visibility timeout: a later read sees them again)."""
    found: dict[str, dict[str, Any]] = {}
    for _ in range(3):
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
            "Messages", []
        ):
            found[message["MessageId"]] = json.loads(message["Body"])
    return list(found.values())


def registered(w: World, lb_id: str) -> frozenset[str]:
    view = w.entry.observe([w.record(lb_id)], [lb_id])[lb_id]
    assert view.registered_instance_ids is not None
    return view.registered_instance_ids


def test_a_failing_load_balancer_is_retried_ever_later_and_dead_lettered_once_while_the_healthy_one_never_waits(
    world: Build,
) -> None:
    sqs, url = dead_letter_queue()
    w, (poison, healthy) = world(["a-poison", "b-healthy"], reconcile_dead_letter_queue_url=url)
    w.faults.poisoned.add(poison)
    started = w.clock[0]
    attempts: list[datetime] = []
    letters_at: dict[int, int] = {}  # attempts made -> dead letters in the queue then
    instances = sorted(lbvm.instance_id or "" for lbvm in w.lbvms.list_for(healthy))
    repaired_at_once = 0
    for minute in range(75):
        if minute % 10 == 5:
            # Behind our back: one of the healthy fleet's LBVMs leaves its pool. The same tick puts it back.
            w.entry.deregister(w.record(healthy), lbvm_id=None, instance_id=instances[0])
            assert instances[0] not in registered(w, healthy)
        report = w.tick()
        assert healthy not in report.backed_off and healthy not in report.failures
        if minute % 10 == 5:
            assert instances[0] in registered(w, healthy)
            repaired_at_once += 1
        if poison in report.failures:
            attempts.append(w.clock[0])
            letters_at[len(attempts)] = len(dead_letters(sqs, url))
            streak = report.streaks[poison]
            assert streak.failures == len(attempts), (attempts, report.streaks, report.failures)
            assert streak.first_failed_at == started
        else:
            assert poison in report.backed_off
        w.advance()
    assert repaired_at_once == 7

    # Each wait is the nominal delay min(60 s * 2^(n-1), 1000 s), jittered into [nominal / 2, nominal], rounded
    # up to the next one-minute tick.
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(attempts)]
    assert len(attempts) >= 9, attempts
    for failures, gap in enumerate(gaps, start=1):
        nominal = min(60 * 2 ** (failures - 1), 1000)
        assert nominal / 2 <= gap < nominal + 60, (failures, gap)
    assert sum(gaps[4:8]) > 4 * sum(gaps[:2])  # the delays grew

    # One dead letter, sent at the 8th consecutive failure, not before and not again.
    assert [letters_at[n] for n in sorted(letters_at)] == [0] * 7 + [1] * (len(attempts) - 7)
    [letter] = dead_letters(sqs, url)
    assert letter["loadBalancerId"] == poison and letter["failures"] == 8 and letter["generation"] == 1
    assert letter["firstFailedAt"] == "2026-12-07T12:00:30Z"
    assert "(ValidationException)" in letter["lastError"]

    # The streak's events: at the first failure, each doubling, and the dead letter; not one per attempt.
    said = [e for e in w.events(poison) if e.reason in ("ReconcileFailing", "ReconcileDeadLettered")]
    assert [e.reason for e in reversed(said)] == ["ReconcileFailing"] * 3 + ["ReconcileDeadLettered"]
    third = said[1]  # newest first: the dead letter, then the 4th failure
    assert third.type == "Warning" and third.generation == 1
    assert third.message.startswith("reconcile failed 4 times in a row since 2026-12-07T12:00:30Z (ClientError: ")
    told = re.search(r"; next attempt at (\S+) \(backoff (\d+) min (\d+) s\)$", third.message)
    assert told is not None, third.message
    next_at, backoff = datetime.fromisoformat(told[1]), timedelta(minutes=int(told[2]), seconds=int(told[3]))
    assert third.time == attempts[3] and abs(attempts[3] + backoff - next_at) <= timedelta(seconds=1)
    assert timedelta(minutes=4) <= backoff <= timedelta(minutes=8)  # nominal 8 min after 4 failures
    assert attempts[4] - TICK < next_at <= attempts[4]  # the 5th attempt was the first tick after it
    assert said[0].message.endswith("sent to the dead-letter queue after 8 failures")


def fail_until_backing_off(w: World, poison: str, failures: int) -> None:
    """Tick minute by minute until the poison load balancer has failed ``failures`` times in a row."""
    for _ in range(60):
        report = w.tick()
        if poison in report.failures and report.streaks[poison].failures == failures:
            return
        w.advance()
    raise AssertionError(f"{poison} did not fail {failures} times in an hour")


def stored_streak(w: World, lb_id: str) -> dict[str, Any] | None:
    items = [i for i in w.cloud.table_items() if i["pk"]["S"] == f"LB#{lb_id}" and i["sk"]["S"] == "RETRY"]
    return items[0] if items else None


def test_a_spec_change_bypasses_the_backoff_and_starts_a_new_streak(world: Build) -> None:
    w, [poison] = world(["a-poison"])
    w.faults.poisoned.add(poison)
    fail_until_backing_off(w, poison, 4)
    w.advance()
    assert w.tick().backed_off == [poison]  # 4 to 8 minutes to wait
    # A status write of its own reaches the stream too: not urgent, still backing off.
    assert w.tick(only={poison}).backed_off == [poison]
    # A user changes the spec: the stream's tick names it as urgent, and it is tried at once.
    record = w.record(poison)
    spec = record.spec.model_copy(update={"tags": {"team": "edge"}})
    event = Event(time=w.clock[0], type="Normal", reason="SpecUpdated", message="test")
    w.load_balancers.update_spec(poison, record.generation, spec, w.clock[0], event)
    urgent = w.tick(only={poison}, urgent={poison})
    assert poison in urgent.failures and not urgent.backed_off
    # A new spec is a new question: its streak starts again at 1, with the first short delay.
    fresh = urgent.streaks[poison]
    assert (fresh.generation, fresh.failures, fresh.first_failed_at) == (2, 1, w.clock[0])
    assert fresh.not_before - w.clock[0] <= timedelta(seconds=60)


def test_a_new_generation_is_tried_at_the_next_scheduled_tick_even_if_its_stream_record_was_lost(world: Build) -> None:
    w, [poison] = world(["a-poison"])
    w.faults.poisoned.add(poison)
    fail_until_backing_off(w, poison, 4)
    w.advance()
    assert w.tick().backed_off == [poison]
    record = w.record(poison)
    spec = record.spec.model_copy(update={"tags": {"team": "edge"}})
    event = Event(time=w.clock[0], type="Normal", reason="SpecUpdated", message="test")
    w.load_balancers.update_spec(poison, record.generation, spec, w.clock[0], event)
    w.advance()
    scheduled = w.tick()  # no urgent trigger: the generation differs from the streak's
    assert poison in scheduled.failures and scheduled.streaks[poison].failures == 1


def test_an_instance_state_change_bypasses_the_backoff(world: Build) -> None:
    w, [poison] = world(["a-poison"])
    w.faults.poisoned.add(poison)
    fail_until_backing_off(w, poison, 4)
    w.advance()
    assert w.tick().backed_off == [poison]
    attempted = w.tick(only={poison}, urgent={poison})  # what the handler passes for an EC2 state change
    assert poison in attempted.failures and attempted.streaks[poison].failures == 5


def test_an_attempt_without_failure_ends_the_streak(world: Build) -> None:
    w, (poison, healthy) = world(["a-poison", "b-healthy"])
    w.faults.poisoned.add(poison)
    fail_until_backing_off(w, poison, 3)
    assert stored_streak(w, poison) is not None
    assert stored_streak(w, healthy) is None  # a healthy load balancer has no streak item at all
    w.faults.poisoned.clear()  # the cause goes away
    for _ in range(8):  # the 3rd failure waits 2 to 4 minutes
        w.advance()
        report = w.tick()
        if poison not in report.backed_off:
            break
    assert poison not in report.failures and poison in report.acted
    assert w.record(poison).status.phase == "Active"
    assert stored_streak(w, poison) is None
    # The next failure is the first of a new streak: retried at the next tick.
    w.faults.poisoned.add(poison)
    record = w.record(poison)
    w.load_balancers.update_spec(
        poison,
        record.generation,
        record.spec.model_copy(update={"tags": {"team": "edge"}}),
        w.clock[0],
        Event(time=w.clock[0], type="Normal", reason="SpecUpdated", message="test"),
    )
    w.advance()
    again = w.tick()
    assert again.streaks[poison].failures == 1 and again.streaks[poison].generation == 2


def test_job_failures_count_as_a_failed_attempt(world: Build) -> None:
    """A failed job (not a raise) also extends the streak, with the job's failure reason as its error."""
    w, [lb_id] = world(["a-fleet"])
    w.tick()
    # The scaler asks for one LBVM more; launching it fails (this test wires no agent artifact: user data refuses).
    record = w.record(lb_id)
    w.load_balancers.set_desired_capacity(lb_id, record.scaling_version, 3, record.scaling, None)
    w.advance()
    report = w.tick()
    assert report.failed >= 1 and lb_id not in report.failures
    streak = report.streaks[lb_id]
    assert streak.failures == 1 and streak.last_error.startswith("LaunchFailed: ValueError: agent_artifact_url")
    [said] = w.events(lb_id, "ReconcileFailing")
    assert said.message.startswith("reconcile failed once since ")


def test_the_streak_goes_with_the_record(world: Build) -> None:
    w, [poison] = world(["a-poison"])
    w.faults.poisoned.add(poison)
    fail_until_backing_off(w, poison, 2)
    assert stored_streak(w, poison) is not None
    w.faults.poisoned.clear()
    now = w.clock[0]
    w.load_balancers.request_deletion(poison, None, now, Event(time=now, type="Normal", reason="Deleted", message="t"))
    w.load_balancers.remove(poison, Event(time=now, type="Normal", reason="Deleted", message="removed"))
    assert w.load_balancers.get(poison) is None and stored_streak(w, poison) is None


class LambdaContext:
    function_name = "lbcp-reconciler"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:lbcp-reconciler"
    aws_request_id = "00000000-0000-0000-0000-000000000000"


def record_item(w: World, lb_id: str) -> dict[str, Any]:
    item = w.cloud.dynamodb.get_item(TableName=w.cloud.table, Key={"pk": {"S": f"LB#{lb_id}"}, "sk": {"S": "LB"}})
    return dict(item["Item"])


def stream_event(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """What the table's stream delivers for a change of a load balancer record (NEW_AND_OLD_IMAGES)."""
    keys = {"pk": new["pk"], "sk": new["sk"]}
    change = {"Keys": keys, "OldImage": old, "NewImage": new, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    return {"Records": [{"eventName": "MODIFY", "eventSource": "aws:dynamodb", "dynamodb": change}]}


def test_the_stream_tries_a_backing_off_load_balancer_at_once_only_for_a_change_a_user_made(
    world: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    w, [poison] = world(["a-poison"])
    w.faults.poisoned.add(poison)
    fail_until_backing_off(w, poison, 3)
    monkeypatch.setattr(handler, "reconciler", lambda: w.reconciler)
    # A write of the reconciler's own (its status and events) reaches the stream: the handler ticks the
    # load balancer, which stays in its backoff (a failing fleet does not re-trigger itself).
    before = record_item(w, poison)
    w.heartbeat()
    handler.lambda_handler(stream_event(before, {**before, "phase": {"S": "Degraded"}}), LambdaContext())
    streak = stored_streak(w, poison)
    assert streak is not None and streak["failures"] == {"N": "3"}
    # A user's new spec: tried at once, and its failure is the first of the new generation's streak.
    record = w.record(poison)
    spec = record.spec.model_copy(update={"tags": {"team": "edge"}})
    event = Event(time=w.clock[0], type="Normal", reason="SpecUpdated", message="test")
    w.load_balancers.update_spec(poison, record.generation, spec, w.clock[0], event)
    answer = handler.lambda_handler(stream_event(before, record_item(w, poison)), LambdaContext())
    assert answer["loadBalancers"] == 1
    streak = stored_streak(w, poison)
    assert streak is not None and (streak["generation"], streak["failures"]) == ({"N": "2"}, {"N": "1"})
