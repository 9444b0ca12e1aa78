"""The control plane's own metrics as the handlers write them: EMF lines on stdout, read back as CloudWatch would.

The reconciler runs for real (the real ``Reconciler``, planner and executor
over the simulated world's ports, as ``tests.fleet.world`` builds them); only
its construction in the handler is swapped for the world's.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from handlers import reconciler as handler
from lbcp.adapters.app_metrics import Tally, publish
from lbcp.models.app_metrics import (
    METRIC_HEARTBEATS,
    METRIC_JOBS_DONE,
    METRIC_JOBS_FAILED,
    METRIC_LOAD_BALANCERS,
    METRIC_ROLLOUTS_ACTIVE,
    METRIC_SCALER_METRICS_MISSING,
    METRIC_SCALING_DECISIONS,
    METRIC_TICK_ACTED,
    METRIC_TICK_DURATION,
    METRIC_TICK_LOAD_BALANCERS,
    METRIC_TICK_LOCKED,
    NAMESPACE,
    PHASES,
    SERVICE_RECONCILER,
    SERVICE_SCALER,
)
from lbcp.scaling.run import Outcome, RunReport, scaler_metrics
from tests.fleet.world import LB_ID, FleetShape, Seed, World
from tests.fleet.world_ports import AwsError

SHAPE = FleetShape(subnets=(0, 1), min=2, max=3, max_surge=1, drain_ticks=1)
SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


class LambdaContext:
    function_name = "lbcp-reconciler"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:lbcp-reconciler"
    aws_request_id = "00000000-0000-0000-0000-000000000000"


@pytest.fixture(autouse=True)
def metrics_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in Lambda: the local runtime turns Powertools metrics off in its process, and tests may share one."""
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)


def emf_lines(out: str) -> list[dict[str, Any]]:
    """The EMF documents among stdout's lines (the Logger writes JSON there too), checked as CloudWatch reads them."""
    documents = []
    for line in out.splitlines():
        if not line.startswith("{"):
            continue
        document = json.loads(line)
        if "_aws" not in document:
            continue
        [directive] = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == NAMESPACE
        # Every dimension and metric a directive names must be a member of the document.
        for dimension_set in directive["Dimensions"]:
            assert all(isinstance(document[name], str) for name in dimension_set)
        for metric in directive["Metrics"]:
            assert isinstance(document[metric["Name"]], list | float | int)
        documents.append(document)
    return documents


def datapoints(documents: list[dict[str, Any]]) -> dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, str]]:
    """(metric, its dimensions) -> (value, unit), over all lines; each series appears once."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, str]] = {}
    for document in documents:
        [directive] = document["_aws"]["CloudWatchMetrics"]
        [dimension_set] = directive["Dimensions"]
        dimensions = tuple(sorted((name, document[name]) for name in dimension_set))
        for metric in directive["Metrics"]:
            key = (metric["Name"], dimensions)
            assert key not in found, f"{key} published twice"
            [value] = document[metric["Name"]]
            found[key] = (value, metric["Unit"])
    return found


def service(name: str, **more: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"service": name, **more}.items()))


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    """A load balancer just created, whose first lifecycle start fails: the handler ticks the world's reconciler."""
    world = World(SHAPE, 2, seed=Seed())
    world.call_faults.failing["lifecycle.start"] = "server-error"
    reconciler = world.reconciler(random.Random(0), None, owner="handler")
    monkeypatch.setattr(handler, "reconciler", lambda: reconciler)
    return world


def test_a_scheduled_tick_publishes_its_work_jobs_by_kind_and_the_fleet_by_phase(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    result = handler.lambda_handler(SCHEDULED, LambdaContext())
    assert result == {"loadBalancers": 1, "acted": [LB_ID], "jobs": 2, "failed": 1}
    points = datapoints(emf_lines(capsys.readouterr().out))
    tick = service(SERVICE_RECONCILER)
    duration, unit = points.pop((METRIC_TICK_DURATION, tick))
    assert unit == "Milliseconds" and 0 < duration < 60_000
    assert points == {
        (METRIC_TICK_LOAD_BALANCERS, tick): (1.0, "Count"),
        (METRIC_TICK_ACTED, tick): (1.0, "Count"),
        (METRIC_TICK_LOCKED, tick): (0.0, "Count"),
        # The entry was built, both launches were tried and one failed starting its lifecycle.
        (METRIC_JOBS_DONE, service(SERVICE_RECONCILER, JobKind="EnsureEntry")): (1.0, "Count"),
        (METRIC_JOBS_DONE, service(SERVICE_RECONCILER, JobKind="Launch")): (1.0, "Count"),
        (METRIC_JOBS_FAILED, service(SERVICE_RECONCILER, JobKind="Launch")): (1.0, "Count"),
        (METRIC_ROLLOUTS_ACTIVE, tick): (0.0, "Count"),
        # Every phase, zeros too: the Degraded alarm sees 0 rather than no data.
        **{
            (METRIC_LOAD_BALANCERS, service(SERVICE_RECONCILER, Phase=phase)): (
                1.0 if phase == "Provisioning" else 0.0,
                "Count",
            )
            for phase in PHASES
        },
    }
    assert len(PHASES) == 7


def test_a_tick_for_some_load_balancers_publishes_no_fleet_gauges(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    changed = {"Records": [{"dynamodb": {"Keys": {"pk": {"S": f"LB#{LB_ID}"}, "sk": {"S": "LB"}}}}]}
    handler.lambda_handler(changed, LambdaContext())
    names = {name for name, _dimensions in datapoints(emf_lines(capsys.readouterr().out))}
    assert METRIC_TICK_DURATION in names and METRIC_JOBS_FAILED in names
    # A part of the fleet counted as if it were all of it would clear or raise the Degraded alarm wrongly.
    assert names.isdisjoint({METRIC_LOAD_BALANCERS, METRIC_ROLLOUTS_ACTIVE})


def test_a_tick_that_fails_publishes_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world = World(SHAPE, 2, seed=Seed())
    world.call_faults.failing["load_balancers.list"] = "throttle"
    reconciler = world.reconciler(random.Random(0), None, owner="handler")
    monkeypatch.setattr(handler, "reconciler", lambda: reconciler)
    with pytest.raises(AwsError, match=r"load_balancers\.list"):
        handler.lambda_handler(SCHEDULED, LambdaContext())
    assert emf_lines(capsys.readouterr().out) == []


def test_a_scaler_run_publishes_decisions_by_direction_and_those_missing_metrics(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = RunReport(
        [
            Outcome("lb-1", "a", "scaled-out", 2, 3, "ScaledOut", written=True),
            Outcome("lb-2", "b", "scaled-out", 2, 3, "ScaledOut", written=True, missing_metrics=("cpu",)),
            Outcome("lb-3", "c", "held", 3, 3, "ScalingHeld", missing_metrics=("cpu", "memory")),
            Outcome("lb-4", "d", "unchanged", 2, 2),
        ]
    )
    publish(scaler_metrics(report), SERVICE_SCALER)
    assert datapoints(emf_lines(capsys.readouterr().out)) == {
        (METRIC_SCALER_METRICS_MISSING, service(SERVICE_SCALER)): (2.0, "Count"),
        (METRIC_SCALING_DECISIONS, service(SERVICE_SCALER, Direction="out")): (2.0, "Count"),
        (METRIC_SCALING_DECISIONS, service(SERVICE_SCALER, Direction="in")): (0.0, "Count"),
    }


def test_heartbeats_are_tallied_and_published_once_a_period(capsys: pytest.CaptureFixture[str]) -> None:
    tally = Tally(METRIC_HEARTBEATS, period_seconds=60)
    published = [tally.add(now) for now in (1000.0, 1005.0, 1030.0, 1059.9)]
    assert published == [(), (), (), ()]
    [due] = tally.add(1060.0)  # the fifth, 60 s after the first
    publish([due], "lbcp-api")
    assert datapoints(emf_lines(capsys.readouterr().out)) == {(METRIC_HEARTBEATS, service("lbcp-api")): (5.0, "Count")}
    # A new period starts with the next heartbeat, not at the last publication.
    assert tally.add(2000.0) == ()
    [due] = tally.add(2060.0)
    assert due.values[0].value == 2
