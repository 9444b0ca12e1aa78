"""Image drift and rollout alarms as the reconciler observes them, against emulated AWS (moto).

The public Amazon Linux 2023 parameter is AWS's: put_parameter refuses names
under /aws/ (moto too), so ``publish`` plays AWS and writes moto's parameter
store, then checks through the API that the new value is what SSM answers (it
fails loudly if moto's store moves).
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from lbcp.dal.lbvms import LbvmRepository
from lbcp.dal.repository import LoadBalancerRepository
from lbcp.entry.adapter import EntryAdapter
from lbcp.models.events import Event
from lbcp.models.lbvm import Lbvm
from lbcp.models.resource import LoadBalancerRecord
from lbcp.reconcile.alarms import CloudWatchAlarms
from lbcp.reconcile.launch import AL2023_PARAMETER, LatestImages
from lbcp.reconcile.run import Reconciler
from lbcp.reconcile.wiring import build_reconciler
from lbcp.service import initial_status
from lbcp.settings import Settings
from lbcp.validation import parse_spec
from lbcp_local.seed import example_spec
from tests.conftest import REGION, Cloud

ACCOUNT_ID = "123456789012"
X86 = AL2023_PARAMETER.format(arch="x86_64")
LATEST = "c6i.large from the latest Amazon Linux 2023 running haproxy"
TICK_PERIOD = timedelta(seconds=5)
BREACH = "Threshold Crossed: 1 datapoint [42.0] was greater than the threshold (5.0)."


def publish(image_id: str, parameter: str = X86) -> None:
    """AWS publishes a newer image behind its public parameter."""
    from moto.ssm.models import Parameter, ssm_backends

    versions = ssm_backends[ACCOUNT_ID][REGION]._parameters[parameter]  # moto loads its defaults first
    versions.append(
        Parameter(  # type: ignore[abstract]  # moto builds its own this way
            account_id=ACCOUNT_ID,
            name=parameter,
            value=image_id,
            parameter_type="String",
            description=None,
            allowed_pattern=None,
            keyid=None,
            last_modified_date=datetime.now(UTC),
            version=len(versions) + 1,
            data_type="aws:ec2:image",
        )
    )
    answered = boto3.client("ssm", region_name=REGION).get_parameter(Name=parameter)["Parameter"]["Value"]
    assert answered == image_id, "moto's parameter store moved: publish() no longer publishes"


def counting(factory: Callable[[str], Any], counts: Counter[tuple[str, str]]) -> Callable[[str], Any]:
    def make(service: str) -> Any:
        client = factory(service)
        client.meta.events.register(
            "before-call.*.*", lambda **kwargs: counts.update([(service, kwargs["model"].name)])
        )
        return client

    return make


def image(cloud: Cloud, name: str) -> str:
    return str(cloud.ec2.register_image(Name=f"{name}-{uuid.uuid4().hex[:6]}", RootDeviceName="/dev/xvda")["ImageId"])


# --- the adapters -------------------------------------------------------------------------------------------


def test_the_public_parameter_is_read_once_per_architecture_per_tick(cloud: Cloud) -> None:
    counts: Counter[tuple[str, str]] = Counter()
    images = LatestImages(counting(lambda service: boto3.client(service, region_name=REGION), counts)("ssm"))
    old, new = image(cloud, "al2023-old"), image(cloud, "al2023-new")
    publish(old)
    assert [images.latest("x86_64") for _ in range(3)] == [old, old, old]
    publish(new)
    assert images.latest("x86_64") == old  # the tick's reading stands: launches in it agree with the drift check
    images.new_tick()
    assert images.latest("x86_64") == new
    assert images.latest("arm64").startswith("ami-")  # the other architecture: its own parameter
    assert counts == {("ssm", "GetParameter"): 3}


def test_a_template_that_follows_the_latest_image_launches_its_own_ami_without_asking_ssm(cloud: Cloud) -> None:
    from lbcp.models.rollout import LaunchTemplate, spec_on
    from lbcp.reconcile.launch import DefaultLaunchSettings

    counts: Counter[tuple[str, str]] = Counter()
    ssm = counting(lambda service: boto3.client(service, region_name=REGION), counts)("ssm")
    settings = DefaultLaunchSettings(
        LatestImages(ssm), agent_endpoint="https://agent.example", agent_artifact_url="", region=REGION
    )
    pinned_ami, latest_now = image(cloud, "al2023-pinned"), image(cloud, "al2023-now")
    publish(latest_now)
    spec = parse_spec(example_spec(cloud.account))
    now = datetime.now(UTC)
    record = LoadBalancerRecord(
        id="lb-0123456789abcdef0",
        generation=1,
        spec=spec,
        status=initial_status(spec),
        created_at=now,
        updated_at=now,
        desired_capacity=2,
    )
    followed = LaunchTemplate(instance_type="c6i.large", proxy="haproxy", latest_image=pinned_ami)
    on_pin = record.model_copy(update={"spec": spec_on(spec, followed)})
    assert settings.image_id(on_pin) == pinned_ami and not counts  # a rollback returns to this AMI, whatever is new
    assert settings.image_id(record) == latest_now and counts == {("ssm", "GetParameter"): 1}


def test_rollout_alarms_are_read_in_one_call_per_hundred_names(cloud: Cloud) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    names = [f"lbcp-test-{n:03d}" for n in range(101)]
    for name in names:
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            Namespace="App",
            MetricName="5xx",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=5.0,
            ComparisonOperator="GreaterThanThreshold",
        )
    cloudwatch.set_alarm_state(AlarmName=names[7], StateValue="ALARM", StateReason=BREACH)
    counts: Counter[tuple[str, str]] = Counter()
    alarms = CloudWatchAlarms(counting(lambda service: boto3.client(service, region_name=REGION), counts)("cloudwatch"))
    found = alarms.read([*names, "no-such-alarm"])
    assert set(found) == set(names)  # a name that does not exist is absent, not an error
    assert (found[names[7]].state, found[names[7]].reason) == ("ALARM", BREACH)
    assert {found[name].state for name in names if name != names[7]} <= {"OK", "INSUFFICIENT_DATA"}
    assert counts == {("cloudwatch", "DescribeAlarms"): 2}
    cloudwatch.delete_alarms(AlarmNames=names)


# --- the reconciler -----------------------------------------------------------------------------------------


@dataclass
class Tick:
    reconciler: Reconciler
    counts: Counter[tuple[str, str]]
    load_balancers: LoadBalancerRepository
    clock: list[datetime]

    def run(self) -> Counter[tuple[str, str]]:
        self.counts.clear()
        self.reconciler.tick()
        self.clock[0] += TICK_PERIOD
        return Counter(self.counts)

    def events(self, lb_id: str, reason: str) -> list[Event]:
        return [e for e in self.load_balancers.list_events(lb_id, 100, None).items if e.reason == reason]

    def record(self, lb_id: str) -> LoadBalancerRecord:
        record = self.load_balancers.get(lb_id)
        assert record is not None
        return record


@pytest.fixture
def world(cloud: Cloud) -> Iterator[Callable[..., tuple[Tick, list[str]]]]:
    """Load balancers of two Routable LBVMs each, on the latest image as it was (``running``), and a reconciler."""
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
    clock = [datetime.now(UTC)]
    load_balancers = LoadBalancerRepository(cloud.dynamodb, cloud.table)
    lbvms = LbvmRepository(cloud.dynamodb, cloud.table)

    def build(running: str, specs: list[dict[str, Any]]) -> tuple[Tick, list[str]]:
        ids = []
        now = clock[0]
        for index, changes in enumerate(specs):
            name = f"drift-{uuid.uuid4().hex[:6]}"
            spec = parse_spec({**example_spec(cloud.account, name=name), "capacity": {"min": 2, "max": 4}, **changes})
            lb_id = f"lb-{uuid.uuid4().hex[:17]}"
            ids.append(lb_id)
            record = LoadBalancerRecord(
                id=lb_id,
                generation=1,
                spec=spec,
                status=initial_status(spec),
                created_at=now,
                updated_at=now,
                desired_capacity=2,
            )
            load_balancers.create(record, Event(time=now, type="Normal", reason="Created", message="test"))
            view = entry.ensure_entry(spec, lb_id)
            for slot in range(2):
                lbvm_id = f"lbvm-{index:06x}{slot:06x}"
                tags = [
                    {"Key": "lbcp:product", "Value": "lbcp"},
                    {"Key": "lbcp:load-balancer-id", "Value": lb_id},
                    {"Key": "lbcp:lbvm-id", "Value": lbvm_id},
                ]
                subnet = cloud.account.subnet_ids[slot]
                instance = cloud.ec2.run_instances(
                    ImageId=running,
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
                        launch_template=LATEST,
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
                    spec,
                    lb_id,
                    lbvm_id=lbvm_id,
                    instance_id=instance["InstanceId"],
                    private_ip=instance["PrivateIpAddress"],
                )
        counts: Counter[tuple[str, str]] = Counter()
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
        )
        # Ticks 5 s apart (Tick.run): the backoff of a failing launch (no lifecycle runs here) starts at one tick.
        reconciler = build_reconciler(
            settings,
            counting(session.client, counts),
            clock=lambda: clock[0],
            rng=random.Random(1),
            tick_period=TICK_PERIOD,
        )
        return Tick(reconciler, counts, load_balancers, clock), ids

    yield build


def test_a_newer_image_is_noticed_with_one_ssm_read_per_tick_and_said_once(
    cloud: Cloud, world: Callable[..., tuple[Tick, list[str]]]
) -> None:
    old, new = image(cloud, "al2023-old"), image(cloud, "al2023-new")
    publish(old)
    tick, (first, second) = world(old, [{}, {}])
    settled = tick.run()
    assert settled[("ssm", "GetParameter")] == 1  # two load balancers, one architecture: one read
    assert tick.record(first).status.newer_image is None

    publish(new)
    noticed = tick.run()
    assert noticed[("ssm", "GetParameter")] == 1
    for lb_id in (first, second):
        drift = tick.record(lb_id).status.newer_image
        assert drift is not None and (drift.image_id, drift.running_image_ids, drift.outdated) == (new, [old], 2)
        assert drift.message == (
            f"a newer image is available: {new} (running {old} on 2 of 2 LBVMs); "
            "set rollout.followLatestImage to roll onto it"
        )
        [event] = tick.events(lb_id, "NewerImageAvailable")
        assert event.message == drift.message and event.actor == "reconciler"
    # Later ticks read the parameter again, and say nothing new: no event, no write.
    later = tick.run()
    assert later[("ssm", "GetParameter")] == 1
    reads = ("Query", "Get", "BatchGet", "Scan")
    assert not [call for call in later if call[0] == "dynamodb" and not call[1].startswith(reads)]
    assert len(tick.events(first, "NewerImageAvailable")) == 1
    # Nothing was replaced: following is opt-in.
    assert tick.record(first).status.rollout is None


def test_an_alarm_in_alarm_fails_an_active_rollout_and_is_read_only_while_one_is(
    cloud: Cloud, world: Callable[..., tuple[Tick, list[str]]]
) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    names = [f"app-5xx-{uuid.uuid4().hex[:6]}", f"p99-{uuid.uuid4().hex[:6]}"]
    for name in names:
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            Namespace="App",
            MetricName=name,
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=5.0,
            ComparisonOperator="GreaterThanThreshold",
        )
    old, new = image(cloud, "al2023-old"), image(cloud, "al2023-new")
    publish(old)
    tick, [lb_id] = world(old, [{"rollout": {"followLatestImage": True, "alarmNames": names}}])
    quiet = tick.run()
    assert quiet[("cloudwatch", "DescribeAlarms")] == 0  # no rollout: no alarm reads

    publish(new)
    started = tick.run()
    rollout = tick.record(lb_id).status.rollout
    assert rollout is not None and rollout.active and rollout.to_template.latest_image == new
    assert started[("cloudwatch", "DescribeAlarms")] == 0  # it started in this tick: judged from the next one
    [launched] = [
        vm
        for vm in LbvmRepository(cloud.dynamodb, cloud.table).list_for(lb_id)
        if vm.created_at > rollout.started_at - timedelta(seconds=1)
    ]
    assert launched.launch_template == f"c6i.large from the latest Amazon Linux 2023 ({new}) running haproxy"

    going = tick.run()
    assert going[("cloudwatch", "DescribeAlarms")] == 1
    canary = tick.record(lb_id).status.rollout
    assert canary is not None and (canary.state, canary.step) == ("Progressing", "Canary")
    assert not tick.events(lb_id, "RolloutFailed")

    cloudwatch.set_alarm_state(AlarmName=names[0], StateValue="ALARM", StateReason=BREACH)
    failed = tick.run()
    assert failed[("cloudwatch", "DescribeAlarms")] == 1
    after = tick.record(lb_id).status.rollout
    # The canary's marker is still there (no lifecycle runs in this test): the way back is under way.
    assert after is not None and after.rejected and (after.state, after.step) == ("Progressing", "Rollback")
    [event] = tick.events(lb_id, "RolloutFailed")
    assert event.type == "Warning" and f"alarm {names[0]} is in ALARM ({BREACH})" in event.message
    # On the way back the alarms are not read: they cannot fail a rollback.
    assert tick.run()[("cloudwatch", "DescribeAlarms")] == 0
    cloudwatch.delete_alarms(AlarmNames=names)
