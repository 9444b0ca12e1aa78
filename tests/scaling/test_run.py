"""A scaler run against DynamoDB (moto): metrics from the LBVM records, decisions written conditionally, explained."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lbcp.adapters.account import AccountInspector
from lbcp.adapters.metrics import LbvmMetricsReader
from lbcp.dal.lbvms import LbvmRepository
from lbcp.dal.repository import LoadBalancerRepository, new_load_balancer_id
from lbcp.heartbeats import HeartbeatService
from lbcp.models.agent import Heartbeat, MetricsSample
from lbcp.models.events import Event
from lbcp.models.lbvm import Lbvm
from lbcp.models.resource import LoadBalancerRecord
from lbcp.models.scaling import ScalingState, WarmRequest
from lbcp.scaling.run import run_scaler
from lbcp.scaling.warming import WarmResult
from lbcp.service import LoadBalancerService, initial_status
from lbcp.validation import parse_spec
from tests.conftest import Cloud

NOW = datetime(2026, 11, 28, 12, 0, 30, tzinfo=UTC)
METRIC_TIME = datetime(2026, 11, 28, 11, 58, tzinfo=UTC)


@pytest.fixture
def repository(cloud: Cloud) -> LoadBalancerRepository:
    return LoadBalancerRepository(cloud.dynamodb, cloud.table)


@pytest.fixture
def lbvms(cloud: Cloud) -> LbvmRepository:
    return LbvmRepository(cloud.dynamodb, cloud.table)


@pytest.fixture
def reader(lbvms: LbvmRepository) -> LbvmMetricsReader:
    return LbvmMetricsReader(lbvms)


def create(repository: LoadBalancerRepository, spec: dict[str, Any], index: int, **scaling: Any) -> LoadBalancerRecord:
    document = {
        **spec,
        "name": f"web-{index}",
        "capacity": {"min": 2, "max": 6},
        "scaling": {"policy": "vote", **scaling},
    }
    parsed = parse_spec(document)
    record = LoadBalancerRecord(
        id=new_load_balancer_id(),
        generation=1,
        spec=parsed,
        status=initial_status(parsed),
        created_at=NOW - timedelta(hours=1),
        updated_at=NOW - timedelta(hours=1),
        desired_capacity=2,
    )
    repository.create(record, Event(time=record.created_at, type="Normal", reason="Created", message="created"))
    return record


def lbvm_in(record: LoadBalancerRecord, index: int, subnet: str) -> Lbvm:
    return Lbvm(
        lbvm_id=f"lbvm-{index:012x}",
        load_balancer_id=record.id,
        subnet_id=subnet,
        state="Routable",
        state_since=record.created_at,
        version=1,
        launched_generation=1,
        launch_reason="test",
        created_at=record.created_at,
        instance_id=f"i-{index:017x}",
    )


def publish(
    lbvms: LbvmRepository,
    record: LoadBalancerRecord,
    values: dict[str, float],
    at: datetime = METRIC_TIME,
    subnets: Sequence[str] | None = None,
) -> None:
    """A sample at ``at`` on one LBVM per subnet (made on first use), as a heartbeat stores it."""
    for index, subnet in enumerate(record.spec.subnet_ids if subnets is None else subnets):
        current = lbvms.get(record.id, f"lbvm-{index:012x}")
        if current is None:
            current = lbvm_in(record, index, subnet)
            lbvms.create(current)
        sample = MetricsSample(
            period_end=at,
            cpu=values["cpu"],
            memory=values["memory"],
            active_connections=int(values["activeConnections"]),
        )
        lbvms.update(current, recent_metrics=(*current.recent_metrics, sample)[-6:])


def warm(repository: LoadBalancerRepository, lb_id: str, request: WarmRequest, actor: str | None) -> WarmResult:
    """The API's warm use case, at NOW."""

    def no_account() -> AccountInspector:
        raise AssertionError("warming looks nothing up in the account")

    return LoadBalancerService(repository, no_account, lambda: NOW).warm(lb_id, request, actor)


def events(repository: LoadBalancerRepository, lb_id: str) -> list[Event]:
    return repository.list_events(lb_id, 50, None).items


SEED = {"cpu": 85.0, "memory": 35.0, "activeConnections": 1000.0}
LOW = {"cpu": 20.0, "memory": 30.0, "activeConnections": 100.0}


def test_a_run_scales_out_writes_conditionally_and_explains(
    repository: LoadBalancerRepository, lbvms: LbvmRepository, reader: LbvmMetricsReader, spec: dict[str, Any]
) -> None:
    hot = create(repository, spec, 1)
    quiet = create(repository, spec, 2)
    publish(lbvms, hot, SEED)
    publish(lbvms, quiet, {"cpu": 60.0, "memory": 60.0, "activeConnections": 1000.0})
    report = run_scaler(repository, reader, NOW)
    assert report.metric_calls == 2  # one query of LBVM records per load balancer
    results = {o.name: o.result for o in report.outcomes}
    assert results == {"web-1": "scaled-out", "web-2": "unchanged"}
    stored = repository.get(hot.id)
    assert stored is not None
    assert (stored.desired_capacity, stored.scaling_version, stored.status.desired_capacity) == (3, 1, 3)
    assert stored.scaling.last_scale_out_at == NOW
    latest = events(repository, hot.id)[0]
    assert (latest.reason, latest.type, latest.actor) == ("ScaledOut", "Normal", "scaler")
    assert latest.message.startswith(
        "scaled out 2 -> 3: cpu 85% > 80% voted +1; memory 35% < 40% voted -1; "
        "activeConnections 1000 in band voted 0; any +1 wins [vote]; cooldown: none active"
    )
    untouched = repository.get(quiet.id)
    assert untouched is not None and untouched.scaling_version == 0  # nothing to remember, nothing written
    assert [e.reason for e in events(repository, quiet.id)] == ["Created"]


def test_the_cooldown_holds_the_next_run(
    repository: LoadBalancerRepository, lbvms: LbvmRepository, reader: LbvmMetricsReader, spec: dict[str, Any]
) -> None:
    record = create(repository, spec, 1)
    publish(lbvms, record, SEED)
    run_scaler(repository, reader, NOW)
    publish(lbvms, record, SEED, METRIC_TIME + timedelta(minutes=1))
    report = run_scaler(repository, reader, NOW + timedelta(minutes=1))
    assert [o.result for o in report.outcomes] == ["held"]
    stored = repository.get(record.id)
    assert stored is not None and stored.desired_capacity == 3


def test_missing_metrics_never_scale_in(
    repository: LoadBalancerRepository, lbvms: LbvmRepository, reader: LbvmMetricsReader, spec: dict[str, Any]
) -> None:
    record = create(repository, spec, 1)
    repository.set_desired_capacity(record.id, 0, 4, ScalingState(), None)
    publish(lbvms, record, LOW, subnets=record.spec.subnet_ids[:1])  # nothing from the other subnet
    report = run_scaler(repository, reader, NOW)
    assert report.outcomes[0].desired == 4
    stale = create(repository, spec, 2)
    repository.set_desired_capacity(stale.id, 0, 4, ScalingState(), None)
    publish(lbvms, stale, LOW, NOW - timedelta(minutes=4))  # published, but too long ago
    report = run_scaler(repository, reader, NOW)
    assert {o.name: o.desired for o in report.outcomes} == {"web-1": 4, "web-2": 4}


def test_all_low_scales_in(
    repository: LoadBalancerRepository, lbvms: LbvmRepository, reader: LbvmMetricsReader, spec: dict[str, Any]
) -> None:
    record = create(repository, spec, 1)
    repository.set_desired_capacity(record.id, 0, 4, ScalingState(), None)
    publish(lbvms, record, LOW)
    report = run_scaler(repository, reader, NOW)
    assert (report.outcomes[0].result, report.outcomes[0].desired) == ("scaled-in", 3)
    assert events(repository, record.id)[0].reason == "ScaledIn"


def test_load_balancers_being_deleted_are_skipped(
    repository: LoadBalancerRepository, lbvms: LbvmRepository, reader: LbvmMetricsReader, spec: dict[str, Any]
) -> None:
    record = create(repository, spec, 1)
    publish(lbvms, record, SEED)
    repository.request_deletion(
        record.id, None, NOW, Event(time=NOW, type="Normal", reason="DeletionRequested", message="x")
    )
    report = run_scaler(repository, reader, NOW)
    assert [o.result for o in report.outcomes] == ["skipped-deleting"]
    assert report.metric_calls == 0


class RacingRepository(LoadBalancerRepository):
    """Another writer decides just before our first write."""

    raced = False

    def set_desired_capacity(
        self, lb_id: str, expected: int, desired: int, scaling: ScalingState, event: Event | None
    ) -> None:
        if not self.raced:
            self.raced = True
            super().set_desired_capacity(lb_id, expected, 5, ScalingState(last_decision="someone else"), None)
        super().set_desired_capacity(lb_id, expected, desired, scaling, event)


def test_a_lost_conditional_write_is_decided_again_on_the_winner(
    cloud: Cloud, lbvms: LbvmRepository, reader: LbvmMetricsReader, spec: dict[str, Any]
) -> None:
    repository = RacingRepository(cloud.dynamodb, cloud.table)
    record = create(repository, spec, 1)
    publish(lbvms, record, SEED)
    report = run_scaler(repository, reader, NOW)
    assert [(o.result, o.previous, o.desired) for o in report.outcomes] == [("scaled-out", 5, 6)]
    stored = repository.get(record.id)
    assert stored is not None and (stored.desired_capacity, stored.scaling_version) == (6, 2)


class BrokenReader:
    def read(self, keys: list[Any], now: datetime) -> Any:
        from lbcp.adapters.metrics import MetricsBatch

        return MetricsBatch()


def test_one_failing_load_balancer_does_not_stop_the_others(
    cloud: Cloud, spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = LoadBalancerRepository(cloud.dynamodb, cloud.table)
    create(repository, spec, 1)
    create(repository, spec, 2)
    from lbcp.scaling import run

    original = run.evaluate_record

    def flaky(record: LoadBalancerRecord, window: Any, now: datetime) -> Any:
        if record.spec.name == "web-1":
            raise RuntimeError("boom")
        return original(record, window, now)

    monkeypatch.setattr(run, "evaluate_record", flaky)
    report = run_scaler(repository, BrokenReader(), NOW)
    assert {o.name: o.result for o in report.outcomes} == {"web-1": "failed", "web-2": "unchanged"}
    assert report.summary() == {
        "loadBalancers": 2,
        "metricsQueries": 0,
        "metricsReadFailed": 0,
        "results": {"failed": 1, "unchanged": 1},
        # web-2 was evaluated with no metrics at all (the reader failed); web-1 was not evaluated.
        "missingMetrics": 1,
    }
    assert {o.name: o.missing_metrics for o in report.outcomes} == {
        "web-1": (),
        "web-2": ("activeConnections", "cpu", "memory"),
    }


def test_a_warm_floor_scales_out_at_once_holds_and_expires_with_an_event(
    repository: LoadBalancerRepository, lbvms: LbvmRepository, reader: LbvmMetricsReader, spec: dict[str, Any]
) -> None:
    record = create(repository, spec, 1)
    request = WarmRequest.model_validate({"extra": 3, "durationSeconds": 600, "reason": "product launch"})
    result = warm(repository, record.id, request, "arn:aws:iam::123456789012:user/alice")
    assert result.to_json() == {
        "loadBalancerId": record.id,
        "warm": {
            "floor": 5,
            "expiresAt": "2026-11-28T12:10:30Z",
            "reason": "product launch",
            "requestedBy": "arn:aws:iam::123456789012:user/alice",
            "requestedAt": "2026-11-28T12:00:30Z",
        },
        "previousDesiredCapacity": 2,
        "desiredCapacity": 5,
    }
    warmed = events(repository, record.id)[0]
    assert warmed.reason == "WarmRequested"
    assert "warm floor 5 until 2026-11-28T12:10:30Z by arn:aws:iam::123456789012:user/alice (product launch)" in (
        warmed.message
    )
    publish(lbvms, record, LOW, NOW + timedelta(minutes=3))
    held = run_scaler(repository, reader, NOW + timedelta(minutes=5))
    assert held.outcomes[0].desired == 5  # all -1, but the floor holds
    publish(lbvms, record, LOW, NOW + timedelta(minutes=9))
    expired = run_scaler(repository, reader, NOW + timedelta(minutes=11))
    assert expired.outcomes[0].desired == 4  # the floor went: the votes decide again, and all say -1
    stored = repository.get(record.id)
    assert stored is not None and stored.scaling.warm is None
    latest = events(repository, record.id)[0]
    assert latest.reason == "ScaledIn"
    assert latest.message.endswith("warm floor of 5 expired")


def test_a_warm_request_counts_as_a_scale_out_for_the_cooldown(
    repository: LoadBalancerRepository, lbvms: LbvmRepository, reader: LbvmMetricsReader, spec: dict[str, Any]
) -> None:
    record = create(repository, spec, 1)
    request = WarmRequest.model_validate({"floor": 3, "durationSeconds": 60})
    warm(repository, record.id, request, None)
    publish(lbvms, record, LOW, NOW + timedelta(minutes=1))
    report = run_scaler(repository, reader, NOW + timedelta(minutes=3))
    assert (report.outcomes[0].result, report.outcomes[0].desired) == ("held", 3)  # expired, but cooling down
    assert events(repository, record.id)[0].reason == "WarmExpired"


class LambdaContext:
    function_name = "lbcp-scaler"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:lbcp-scaler"
    aws_request_id = "00000000-0000-0000-0000-000000000000"


def test_the_lambda_handler_runs_the_scaler(
    repository: LoadBalancerRepository,
    lbvms: LbvmRepository,
    spec: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from handlers import scaler
    from lbcp.models.app_metrics import METRIC_SCALER_METRICS_MISSING, METRIC_SCALING_DECISIONS, SERVICE_SCALER
    from tests.fleet.test_app_metrics import datapoints, emf_lines

    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)  # set by the local runtime's tests

    record = create(repository, spec, 1)
    now = datetime.now(UTC)
    publish(lbvms, record, SEED, now.replace(second=0, microsecond=0) - timedelta(minutes=2))
    scaler.dependencies.cache_clear()
    try:
        summary = scaler.lambda_handler({"source": "aws.events"}, LambdaContext())
    finally:
        scaler.dependencies.cache_clear()
    assert summary == {
        "loadBalancers": 1,
        "metricsQueries": 1,
        "metricsReadFailed": 0,
        "results": {"scaled-out": 1},
        "missingMetrics": 0,
    }
    # Its metrics, as EMF lines on stdout (what Lambda sends to CloudWatch).
    assert datapoints(emf_lines(capsys.readouterr().out)) == {
        (METRIC_SCALER_METRICS_MISSING, (("service", SERVICE_SCALER),)): (0.0, "Count"),
        (METRIC_SCALING_DECISIONS, (("Direction", "out"), ("service", SERVICE_SCALER))): (1.0, "Count"),
        (METRIC_SCALING_DECISIONS, (("Direction", "in"), ("service", SERVICE_SCALER))): (0.0, "Count"),
    }


def test_a_metric_missing_where_lbvms_serve_is_reported(
    repository: LoadBalancerRepository, lbvms: LbvmRepository, reader: LbvmMetricsReader, spec: dict[str, Any]
) -> None:
    record = create(repository, spec, 1)
    # The LBVMs of one subnet report; those of the other have sent no sample (every metric is missing there).
    publish(lbvms, record, LOW, subnets=record.spec.subnet_ids[:1])
    report = run_scaler(repository, reader, NOW)
    [outcome] = report.outcomes
    assert outcome.missing_metrics == ("activeConnections", "cpu", "memory")
    assert report.summary()["missingMetrics"] == 1


class NoCallbacks:
    """The LBVMs here wait on no lifecycle callback: a heartbeat must not try to answer one."""

    def complete(self, token: str, output: dict[str, object]) -> bool:
        raise AssertionError("no callback to complete")

    def heartbeat(self, token: str) -> bool:
        raise AssertionError("no callback to beat")


def test_the_scaler_scales_out_on_samples_the_heartbeats_carried(
    repository: LoadBalancerRepository, lbvms: LbvmRepository, reader: LbvmMetricsReader, spec: dict[str, Any]
) -> None:
    """Agent samples -> heartbeat handler -> LBVM records -> the scaler's reader -> a decision."""
    record = create(repository, spec, 1)
    clock = [METRIC_TIME]
    emitted: list[Any] = []
    service = HeartbeatService(repository, lbvms, NoCallbacks(), lambda: clock[0], emit_metrics=emitted.extend)
    subnets = record.spec.subnet_ids
    members = [lbvm_in(record, index, subnets[index % len(subnets)]) for index in range(4)]
    for member in members:
        lbvms.create(member)
    sequence = 0
    # Two minutes of samples from every LBVM: busy CPU everywhere, the last minute hotter.
    for minute, cpu in ((0, 82.0), (1, 90.0)):
        clock[0] = METRIC_TIME + timedelta(minutes=minute, seconds=30)
        for index, member in enumerate(members):
            sequence += 1
            sample = {"periodEnd": clock[0].isoformat(), "cpu": cpu + index, "memory": 35.0, "activeConnections": 900}
            beat = Heartbeat.model_validate(
                {
                    "lbvmId": member.lbvm_id,
                    "instanceId": member.instance_id,
                    "loadBalancerId": record.id,
                    "bootId": "boot-1",
                    "sequence": sequence,
                    "sentAt": clock[0].isoformat(),
                    "state": "ready",
                    "activeConnections": 900,
                    "agentVersion": "test",
                    "metrics": [sample],
                }
            )
            role = f"arn:aws:sts::123456789012:assumed-role/lbcp-lbvm/{member.instance_id}"
            service.heartbeat(role, beat)
    assert len(emitted) == 8  # every sample once, for the users' graphs
    report = run_scaler(repository, reader, NOW)
    [outcome] = report.outcomes
    assert (outcome.result, outcome.previous, outcome.desired, outcome.missing_metrics) == ("scaled-out", 2, 3, ())
    assert report.metric_calls == 1  # one query for the four LBVMs
    latest = events(repository, record.id)[0]
    # The newest whole minute (11:59), per subnet the mean of its two LBVMs (90 and 92: 91; 91 and 93: 92),
    # then over the subnets, weighted alike (2 LBVMs each): 91.5, not the older minute's 83.5.
    assert latest.reason == "ScaledOut" and "cpu 91.5% > 80% voted +1" in latest.message


def test_a_load_balancer_whose_lbvm_records_cannot_be_read_is_evaluated_as_missing_metrics(
    cloud: Cloud, repository: LoadBalancerRepository, spec: dict[str, Any]
) -> None:
    record = create(repository, spec, 1)
    repository.set_desired_capacity(record.id, 0, 4, ScalingState(), None)
    unreadable = LbvmMetricsReader(LbvmRepository(cloud.dynamodb, "no-such-table"))
    report = run_scaler(repository, unreadable, NOW)
    [outcome] = report.outcomes
    assert (outcome.desired, outcome.missing_metrics) == (4, ("activeConnections", "cpu", "memory"))
    assert report.summary()["metricsReadFailed"] == 1
