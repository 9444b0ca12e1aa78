"""Metrics carried by heartbeats (moto): stored once per period on the LBVM record, bounded, emitted as EMF."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lbcp.dal.lbvms import LbvmRepository, to_item
from lbcp.dal.repository import LoadBalancerRepository
from lbcp.heartbeats import HeartbeatService
from lbcp.models.agent import Heartbeat, MetricsSample
from lbcp.models.lbvm import RECENT_METRICS_KEPT, Lbvm
from lbcp.models.metrics import METRIC_ACTIVE_CONNECTIONS, METRIC_CPU, METRIC_MEMORY
from lbcp.models.resource import LoadBalancerRecord
from tests.conftest import Cloud
from tests.fleet.test_app_metrics import datapoints, emf_lines
from tests.scaling.test_run import NOW, NoCallbacks, create, lbvm_in

PERIOD_END = datetime(2026, 11, 28, 11, 59, 0, 250_000, tzinfo=UTC)


@pytest.fixture(autouse=True)
def metrics_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in the API function: Powertools on, and a service name that it would add as a dimension."""
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "lbcp-api")


class Agent:
    """One LBVM's side: numbered heartbeats at the test's clock, with whatever samples it is given."""

    def __init__(self, service: HeartbeatService, lbvm: Lbvm, clock: list[datetime]) -> None:
        self.service, self.lbvm, self.clock = service, lbvm, clock
        self.sequence = 0

    def beat(self, *samples: MetricsSample, **changes: Any) -> None:
        self.sequence += 1
        document: dict[str, Any] = {
            "lbvmId": self.lbvm.lbvm_id,
            "instanceId": self.lbvm.instance_id,
            "loadBalancerId": self.lbvm.load_balancer_id,
            "bootId": "boot-1",
            "sequence": self.sequence,
            "sentAt": self.clock[0].isoformat(),
            "state": "ready",
            "activeConnections": 7,
            "agentVersion": "test",
            **changes,
        }
        if samples:
            document["metrics"] = [s.model_dump(mode="json", by_alias=True) for s in samples]
        role = f"arn:aws:sts::123456789012:assumed-role/lbcp-lbvm/{self.lbvm.instance_id}"
        self.service.heartbeat(role, Heartbeat.model_validate(document))


def sample(minutes: int = 0, cpu: float = 61.5) -> MetricsSample:
    return MetricsSample(
        period_end=PERIOD_END + timedelta(minutes=minutes), cpu=cpu, memory=42.25, active_connections=17
    )


@pytest.fixture
def setup(cloud: Cloud, spec: dict[str, Any]) -> tuple[LoadBalancerRecord, LbvmRepository, Agent, list[datetime]]:
    repository = LoadBalancerRepository(cloud.dynamodb, cloud.table)
    lbvms = LbvmRepository(cloud.dynamodb, cloud.table)
    record = create(repository, spec, 1)
    member = lbvm_in(record, 0, record.spec.subnet_ids[0])
    lbvms.create(member)
    clock = [NOW]
    service = HeartbeatService(repository, lbvms, NoCallbacks(), lambda: clock[0])  # the real EMF emitter
    return record, lbvms, Agent(service, member, clock), clock


def stored(lbvms: LbvmRepository, record: LoadBalancerRecord) -> Lbvm:
    found = lbvms.get(record.id, "lbvm-000000000000")
    assert found is not None
    return found


def test_a_new_sample_is_stored_once_and_emitted_once_by_load_balancer_only(
    setup: tuple[LoadBalancerRecord, LbvmRepository, Agent, list[datetime]], capsys: pytest.CaptureFixture[str]
) -> None:
    record, lbvms, agent, clock = setup
    capsys.readouterr()
    agent.beat(sample(0))
    first = stored(lbvms, record)
    assert first.recent_metrics == (sample(0),)
    [line] = emf_lines(capsys.readouterr().out)
    # No service dimension (Powertools would add the function's): 3 series per load balancer, not per subnet.
    assert datapoints([line]) == {
        (METRIC_CPU, (("LoadBalancerId", record.id),)): (61.5, "Percent"),
        (METRIC_MEMORY, (("LoadBalancerId", record.id),)): (42.25, "Percent"),
        (METRIC_ACTIVE_CONNECTIONS, (("LoadBalancerId", record.id),)): (17, "Count"),
    }
    assert line["_aws"]["Timestamp"] == int(PERIOD_END.timestamp() * 1000)  # at the period's end, not now

    # The reply was lost and the agent sends the sample again, 5 s later: nothing new, nothing written.
    clock[0] += timedelta(seconds=5)
    agent.beat(sample(0))
    assert stored(lbvms, record).version == first.version
    assert emf_lines(capsys.readouterr().out) == []

    # The next period's sample, with the old one still riding along: only the new one is stored and emitted.
    clock[0] += timedelta(seconds=5)
    agent.beat(sample(0), sample(1, cpu=70.0))
    after = stored(lbvms, record)
    assert after.recent_metrics == (sample(0), sample(1, cpu=70.0))
    assert after.version == first.version + 1
    assert datapoints(emf_lines(capsys.readouterr().out)) == {
        (METRIC_CPU, (("LoadBalancerId", record.id),)): (70.0, "Percent"),
        (METRIC_MEMORY, (("LoadBalancerId", record.id),)): (42.25, "Percent"),
        (METRIC_ACTIVE_CONNECTIONS, (("LoadBalancerId", record.id),)): (17, "Count"),
    }


def test_a_sample_is_a_change_within_the_persist_interval_and_a_heartbeat_without_one_is_not(
    setup: tuple[LoadBalancerRecord, LbvmRepository, Agent, list[datetime]],
) -> None:
    record, lbvms, agent, clock = setup
    agent.beat()  # an agent from before metrics rode on heartbeats
    first = stored(lbvms, record)
    assert first.recent_metrics == () and first.agent_state == "ready"
    clock[0] += timedelta(seconds=5)
    agent.beat()
    assert stored(lbvms, record).version == first.version  # nothing changed within HEARTBEAT_PERSIST_INTERVAL
    clock[0] += timedelta(seconds=5)
    agent.beat(sample(0))
    assert stored(lbvms, record).version == first.version + 1
    assert stored(lbvms, record).recent_metrics == (sample(0),)


def test_the_record_keeps_the_newest_samples_and_drops_late_or_far_off_ones(
    setup: tuple[LoadBalancerRecord, LbvmRepository, Agent, list[datetime]], capsys: pytest.CaptureFixture[str]
) -> None:
    record, lbvms, agent, clock = setup
    for minute in range(RECENT_METRICS_KEPT + 2):
        clock[0] = NOW + timedelta(minutes=minute)
        agent.beat(sample(minute))
    kept = stored(lbvms, record).recent_metrics
    assert kept == tuple(sample(minute) for minute in range(2, RECENT_METRICS_KEPT + 2))
    capsys.readouterr()
    # Older than every sample kept (a heartbeat held up for minutes), and one from an agent's clock 2 hours ahead.
    agent.beat(sample(1), sample(120))
    assert stored(lbvms, record).recent_metrics == kept
    assert emf_lines(capsys.readouterr().out) == []


def test_samples_are_normalised_to_what_the_record_stores() -> None:
    naive = MetricsSample(
        period_end=datetime(2026, 11, 28, 11, 59, 0, 250_999), cpu=61.499, memory=42.251, active_connections=3
    )
    assert naive.stored() == MetricsSample(
        period_end=datetime(2026, 11, 28, 11, 59, 0, 250_000, tzinfo=UTC), cpu=61.5, memory=42.25, active_connections=3
    )


def test_six_samples_add_about_200_bytes_to_a_record() -> None:
    lbvm = lbvm_in_for_size()
    samples = tuple(
        MetricsSample(period_end=PERIOD_END + timedelta(minutes=m), cpu=87.65, memory=43.21, active_connections=12345)
        for m in range(RECENT_METRICS_KEPT)
    )
    text = to_item(lbvm.model_copy(update={"recent_metrics": samples}))["recentMetrics"]["S"]
    assert len("recentMetrics") + len(text.encode()) <= 210
    assert "recentMetrics" not in to_item(lbvm)  # none yet: no attribute at all


def lbvm_in_for_size() -> Lbvm:
    return Lbvm(
        lbvm_id="lbvm-0123456789ab",
        load_balancer_id="lb-0123456789abcdef0",
        subnet_id="subnet-0123456789abcdef0",
        state="Routable",
        state_since=NOW,
        version=1,
        launched_generation=1,
        launch_reason="test",
        created_at=NOW,
    )
