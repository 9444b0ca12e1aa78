"""The alarms that page and the dashboard, in the synthesized stack; each alarm has its runbook section."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Final

import pytest

from lbcp.models.app_metrics import (
    METRIC_HEARTBEATS,
    METRIC_JOBS_DONE,
    METRIC_JOBS_FAILED,
    METRIC_LOAD_BALANCERS,
    METRIC_ROLLOUTS_ACTIVE,
    METRIC_SCALER_METRICS_MISSING,
    METRIC_SCALING_DECISIONS,
    METRIC_TICK_DURATION,
    NAMESPACE,
    PHASES,
    SERVICE_RECONCILER,
    SERVICE_SCALER,
)
from lbcp.models.metrics import METRIC_CONSISTENCY_FINDINGS
from stacks.config import REPO_ROOT
from stacks.monitoring import DEGRADED_MINUTES, MISSING_METRICS_MINUTES, RECONCILER_SLOW_MS

if TYPE_CHECKING:
    from tests.cdk.conftest import Synthesized

pytestmark = pytest.mark.cdk

RUNBOOK: Final = REPO_ROOT / "docs" / "runbook.md"
EXPECTED_ALARMS: Final = {
    "reconciler-errors": "notBreaching",
    "reconciler-slow": "notBreaching",
    "reconciler-not-running": "breaching",
    "stream-dead-letters": "notBreaching",
    "failing-load-balancers": "notBreaching",
    "reconcile-work-dead-letters": "notBreaching",
    "reconcile-work-backlog": "notBreaching",
    "lifecycle-executions-failed": "notBreaching",
    "drain-executions-failed": "notBreaching",
    "load-balancers-degraded": "missing",
    "scaler-metrics-missing": "breaching",
    "consistency-orphan": "notBreaching",
    "consistency-drift": "notBreaching",
}
HANDLERS: Final = (
    "handlers.api.lambda_handler",
    "handlers.agent_api.lambda_handler",
    "handlers.reconciler.lambda_handler",
    "handlers.reconcile_worker.lambda_handler",
    "handlers.scaler.lambda_handler",
    "handlers.lifecycle_tasks.lambda_handler",
    "handlers.consistency.lambda_handler",
)


def _alarms(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    """The alarms' properties by slug (their names are ``Lbcp-<slug>``)."""
    found = {}
    for alarm in synthesized.resources("AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        assert props["AlarmName"].startswith("Lbcp-")
        found[props["AlarmName"].removeprefix("Lbcp-")] = props
    return found


def _function_id(synthesized: Synthesized, handler: str) -> str:
    (logical_id,) = (
        logical_id
        for logical_id, function in synthesized.resources("AWS::Lambda::Function").items()
        if function["Properties"]["Handler"] == handler
    )
    return logical_id


def _state_machine_id(synthesized: Synthesized, name: str) -> str:
    (logical_id,) = (
        logical_id
        for logical_id, machine in synthesized.resources("AWS::StepFunctions::StateMachine").items()
        if machine["Properties"]["StateMachineName"] == f"Lbcp-lbvm-{name}"
    )
    return logical_id


def _dimensions(props: dict[str, Any]) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in props["Dimensions"]}


def test_exactly_the_expected_alarms_each_with_its_missing_data_choice(synthesized: Synthesized) -> None:
    alarms = _alarms(synthesized)
    assert {slug: props["TreatMissingData"] for slug, props in alarms.items()} == EXPECTED_ALARMS


def test_every_alarm_links_its_runbook_section_and_the_runbook_has_one_for_each() -> None:
    headings = set(re.findall(r"^## (\S+)$", RUNBOOK.read_text(encoding="utf-8"), flags=re.MULTILINE))
    assert set(EXPECTED_ALARMS) <= headings


def test_alarm_descriptions_name_the_runbook_section(synthesized: Synthesized) -> None:
    for slug, props in _alarms(synthesized).items():
        assert props["AlarmDescription"].endswith(f"Runbook: docs/runbook.md#{slug}"), slug


def _math(props: dict[str, Any]) -> tuple[str, dict[str, tuple[str, str, Any]]]:
    """A metric-math alarm's expression, and its inputs by id: (metric name, statistic, function)."""
    [expression] = [q["Expression"] for q in props["Metrics"] if "Expression" in q]
    inputs = {
        q["Id"]: (
            q["MetricStat"]["Metric"]["MetricName"],
            q["MetricStat"]["Stat"],
            {d["Name"]: d["Value"] for d in q["MetricStat"]["Metric"]["Dimensions"]}["FunctionName"],
        )
        for q in props["Metrics"]
        if "MetricStat" in q
    }
    return expression, inputs


def test_the_reconciler_pages_on_errors_and_on_ticks_near_its_timeout(synthesized: Synthesized) -> None:
    alarms = _alarms(synthesized)
    function_id = _function_id(synthesized, "handlers.reconciler.lambda_handler")
    worker_id = _function_id(synthesized, "handlers.reconcile_worker.lambda_handler")
    timeouts_ms = {
        synthesized.template["Resources"][logical_id]["Properties"]["Timeout"] * 1000
        for logical_id in (function_id, worker_id)
    }
    # Both functions reconcile (inline ticks, and the work queue's shards): both count, under one timeout.
    [timeout_ms] = timeouts_ms
    slow = alarms["reconciler-slow"]
    assert _math(slow) == (
        "MAX([dispatcher, worker])",
        {
            "dispatcher": ("Duration", "Maximum", {"Ref": function_id}),
            "worker": ("Duration", "Maximum", {"Ref": worker_id}),
        },
    )
    assert slow["Threshold"] == RECONCILER_SLOW_MS and 0.5 * timeout_ms < RECONCILER_SLOW_MS < timeout_ms
    assert slow["ComparisonOperator"] == "GreaterThanThreshold"
    assert _math(alarms["reconciler-errors"]) == (
        "FILL(dispatcher, 0) + FILL(worker, 0)",
        {"dispatcher": ("Errors", "Sum", {"Ref": function_id}), "worker": ("Errors", "Sum", {"Ref": worker_id})},
    )
    # The schedule invokes the dispatcher: its invocations say whether anything runs at all.
    props = alarms["reconciler-not-running"]
    assert (props["Namespace"], props["MetricName"]) == ("AWS/Lambda", "Invocations")
    assert _dimensions(props) == {"FunctionName": {"Ref": function_id}}
    assert props["ComparisonOperator"] == "LessThanThreshold"


def test_both_state_machines_page_on_failed_or_timed_out_executions(synthesized: Synthesized) -> None:
    alarms = _alarms(synthesized)
    for name in ("lifecycle", "drain"):
        machine_arn = {"Ref": _state_machine_id(synthesized, name)}
        queries = alarms[f"{name}-executions-failed"]["Metrics"]
        [expression] = [q for q in queries if "Expression" in q]
        assert expression["Expression"] == "FILL(failed, 0) + FILL(timedOut, 0)"
        stats = {q["Id"]: q["MetricStat"] for q in queries if "MetricStat" in q}
        assert {i: s["Metric"]["MetricName"] for i, s in stats.items()} == {
            "failed": "ExecutionsFailed",
            "timedOut": "ExecutionsTimedOut",
        }
        for stat in stats.values():
            assert stat["Metric"]["Namespace"] == "AWS/States"
            assert stat["Metric"]["Dimensions"] == [{"Name": "StateMachineArn", "Value": machine_arn}]


def test_degraded_load_balancers_and_missing_scaler_metrics_page_from_the_handlers_metrics(
    synthesized: Synthesized,
) -> None:
    alarms = _alarms(synthesized)
    degraded = alarms["load-balancers-degraded"]
    assert (degraded["Namespace"], degraded["MetricName"], degraded["Statistic"]) == (
        NAMESPACE,
        METRIC_LOAD_BALANCERS,
        "Minimum",
    )
    assert _dimensions(degraded) == {"Phase": "Degraded", "service": SERVICE_RECONCILER}
    assert (degraded["Period"], degraded["EvaluationPeriods"]) == (60, DEGRADED_MINUTES)
    missing = alarms["scaler-metrics-missing"]
    assert (missing["MetricName"], _dimensions(missing)) == (METRIC_SCALER_METRICS_MISSING, {"service": SERVICE_SCALER})
    assert (missing["Period"], missing["EvaluationPeriods"]) == (60, MISSING_METRICS_MINUTES)
    for props in (degraded, missing):
        assert (props["Threshold"], props["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")


def _dashboard_body(synthesized: Synthesized) -> tuple[str, dict[str, Any]]:
    _, dashboard = synthesized.only("AWS::CloudWatch::Dashboard")
    body = dashboard["Properties"]["DashboardBody"]
    # The body is a JSON text with tokens (Refs, GetAtts) joined in: render them as "<LogicalId>".
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    text = "".join(part if isinstance(part, str) else f"<{part.get('Ref') or part['Fn::GetAtt'][0]}>" for part in parts)
    return dashboard["Properties"]["DashboardName"], json.loads(text)


def test_the_dashboard_graphs_the_key_metrics_and_every_function(synthesized: Synthesized) -> None:
    name, body = _dashboard_body(synthesized)
    assert name == "Lbcp-control-plane"
    graphs = {w["properties"]["title"]: w["properties"] for w in body["widgets"] if w["type"] == "metric"}
    series = [tuple(item for item in m if not isinstance(item, dict)) for g in graphs.values() for m in g["metrics"]]
    expressions = " ".join(m[-1].get("expression", "") for g in graphs.values() for m in g["metrics"])
    named = {s[1] for s in series if len(s) > 1}
    assert {
        METRIC_LOAD_BALANCERS,
        METRIC_TICK_DURATION,
        METRIC_ROLLOUTS_ACTIVE,
        METRIC_SCALING_DECISIONS,
        METRIC_SCALER_METRICS_MISSING,
        METRIC_HEARTBEATS,
        METRIC_CONSISTENCY_FINDINGS,
        "ExecutionsFailed",
        "ExecutionsTimedOut",
        "Errors",
        "Throttles",
    } <= named
    # Jobs by kind: every kind that occurs, found by a search on the dimension.
    assert f'MetricName="{METRIC_JOBS_DONE}"' in expressions and f'MetricName="{METRIC_JOBS_FAILED}"' in expressions
    phases = {s[3] for s in series if s[:2] == (NAMESPACE, METRIC_LOAD_BALANCERS)}
    assert phases == set(PHASES)
    functions = {f"<{_function_id(synthesized, handler)}>" for handler in HANDLERS}
    for title in ("Lambda errors", "Lambda throttles"):
        assert {m[3] for m in graphs[title]["metrics"]} == functions
    [alarms] = [w["properties"]["alarms"] for w in body["widgets"] if w["type"] == "alarm"]
    assert len(alarms) == len(EXPECTED_ALARMS)


def test_alarms_and_dashboard_pass_cdk_nag_with_nothing_acknowledged(synthesized: Synthesized) -> None:
    assert synthesized.passes_nag("Lbcp/Alarms/", "Lbcp/Dashboard/") == set()
