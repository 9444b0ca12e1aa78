"""The control plane's alarms and its dashboard (what each alarm means and what to do: docs/runbook.md).

Every alarm is named ``<stack>-<slug>`` (what an operator reads in the page)
and notifies the one topic (``stacks.alerting``) when it fires and when it
clears; its description links the runbook section of the same slug. How each
alarm treats missing data is chosen with it, and says why: a metric published
every run (zeros too) going silent means the run stopped, which is an alarm
of its own, not a reason to guess.

The application's metrics come from ``lbcp.models.app_metrics`` (the handlers
emit the same names); the rest are AWS's own (Lambda, Step Functions, SQS).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from lbcp.models.app_metrics import (
    DIMENSION_DIRECTION,
    DIMENSION_JOB_KIND,
    DIMENSION_PHASE,
    DIMENSION_SERVICE,
    DIRECTIONS,
    METRIC_AGENT_REQUESTS_VIA_HTTP_API,
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
    NAMESPACE,
    PHASES,
    SERVICE_AGENT_API,
    SERVICE_RECONCILER,
    SERVICE_SCALER,
)
from lbcp.models.metrics import DIMENSION_FINDING_KIND, METRIC_CONSISTENCY_FINDINGS
from stacks.alerting import Alerting, alarm_name, described
from stacks.reconciler import RECONCILER_TIMEOUT

MINUTE: Final = Duration.minutes(1)
FIVE_MINUTES: Final = Duration.minutes(5)
# Three quarters of the reconciler's timeout (45 of 60 s): a tick past this is close to being cut off.
RECONCILER_SLOW_MS: Final = int(RECONCILER_TIMEOUT.to_milliseconds() * 3 // 4)
# A load balancer Degraded this long is not a replacement in progress (a launch takes a few minutes).
DEGRADED_MINUTES: Final = 10
# Metrics absent this long are not an LBVM still booting: the agents are not publishing.
MISSING_METRICS_MINUTES: Final = 10
FINDING_KINDS: Final = ("orphan", "drift", "leak", "stuck")


def app_metric(
    metric_name: str,
    service: str,
    *,
    statistic: str = "Sum",
    period: Duration = MINUTE,
    label: str | None = None,
    dimensions: Mapping[str, str] | None = None,
) -> cloudwatch.Metric:
    """One of the handlers' EMF metrics, with the ``service`` dimension Powertools gives it."""
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=metric_name,
        dimensions_map={DIMENSION_SERVICE: service, **(dimensions or {})},
        statistic=statistic,
        period=period,
        label=label,
    )


def by_dimension(metric_name: str, service: str, dimension: str) -> cloudwatch.MathExpression:
    """Every series of ``metric_name`` by ``dimension`` (job kinds appear as they occur): a SEARCH."""
    return cloudwatch.MathExpression(
        expression=(
            f"SEARCH('{{{NAMESPACE},{DIMENSION_SERVICE},{dimension}}} "
            f'MetricName="{metric_name}" {DIMENSION_SERVICE}="{service}"\', \'Sum\', 60)'
        ),
        using_metrics={},
        # Each series is named by its dimension's value (a job kind), not by the expression.
        label=f"${{PROP('Dim.{dimension}')}}",
        period=MINUTE,
    )


def graph(title: str, left: Sequence[cloudwatch.IMetric], **options: Any) -> cloudwatch.GraphWidget:
    """A third of the dashboard's width."""
    return cloudwatch.GraphWidget(title=title, left=list(left), width=8, height=6, **options)


class ControlPlaneAlarms(Construct):
    """The alarms of the reconciler, the lifecycle state machines, the fleet and the scaler."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        alerting: Alerting,
        reconciler: lambda_.IFunction,
        worker: lambda_.IFunction,
        state_machines: Mapping[str, sfn.IStateMachine],
    ) -> None:
        super().__init__(scope, construct_id)
        self._alerting = alerting
        # The reconciler's work runs in two functions: the schedule's dispatcher with the stream's and EC2's
        # inline ticks, and the work queue's worker (the shards). Errors add up; the slower one is what nears
        # a timeout (both have the same).
        functions = {"dispatcher": reconciler, "worker": worker}
        self.reconciler_errors = self._alarm(
            "reconciler-errors",
            "Reconciler invocations (inline or a work-queue shard) failed as a whole in 3 of the last 5 minutes "
            "(a job's failure is only an event)",
            cloudwatch.MathExpression(
                expression="FILL(dispatcher, 0) + FILL(worker, 0)",
                using_metrics={
                    name: function.metric_errors(period=MINUTE, statistic="Sum") for name, function in functions.items()
                },
                label="reconciler and worker errors",
                period=MINUTE,
            ),
            threshold=1,
            evaluation_periods=5,
            datapoints_to_alarm=3,
            # Lambda publishes Errors with each invocation; none means no invocation, which
            # reconciler-not-running reports.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.reconciler_slow = self._alarm(
            "reconciler-slow",
            f"A reconciler invocation took over {RECONCILER_SLOW_MS // 1000} s of its "
            f"{RECONCILER_TIMEOUT.to_seconds():.0f} s timeout, "
            "in 2 of the last 3 five-minute periods",
            cloudwatch.MathExpression(
                expression="MAX([dispatcher, worker])",
                using_metrics={
                    name: function.metric_duration(period=FIVE_MINUTES, statistic="Maximum")
                    for name, function in functions.items()
                },
                label="slowest reconciler or worker invocation",
                period=FIVE_MINUTES,
            ),
            threshold=RECONCILER_SLOW_MS,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            # No invocations, no durations: not slow (reconciler-not-running says it stopped).
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.reconciler_not_running = self._alarm(
            "reconciler-not-running",
            "The reconciler was not invoked for 10 minutes (its schedule ticks every minute): nothing is healed",
            reconciler.metric_invocations(period=FIVE_MINUTES, statistic="Sum"),
            threshold=1,
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=2,
            # Lambda publishes no Invocations datapoint for a period with none: missing is the condition itself.
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        self.executions_failed = {
            name: self._alarm(
                f"{name}-executions-failed",
                f"Executions of the LBVM {name} state machine failed or timed out in the last 5 minutes",
                cloudwatch.MathExpression(
                    expression="FILL(failed, 0) + FILL(timedOut, 0)",
                    using_metrics={
                        "failed": machine.metric_failed(period=FIVE_MINUTES, statistic="Sum"),
                        "timedOut": machine.metric_timed_out(period=FIVE_MINUTES, statistic="Sum"),
                    },
                    label=f"{name} executions failed or timed out",
                    period=FIVE_MINUTES,
                ),
                threshold=1,
                evaluation_periods=1,
                # Step Functions publishes these only when executions end: no data, none failed.
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            for name, machine in state_machines.items()
        }
        self.degraded = self._alarm(
            "load-balancers-degraded",
            f"At least one load balancer has been Degraded for {DEGRADED_MINUTES} minutes "
            "(fewer Routable LBVMs than desired)",
            app_metric(
                METRIC_LOAD_BALANCERS, SERVICE_RECONCILER, statistic="Minimum", dimensions={DIMENSION_PHASE: "Degraded"}
            ),
            threshold=1,
            evaluation_periods=DEGRADED_MINUTES,
            # Every scheduled tick publishes every phase, zeros too. Silence means the reconciler
            # is not ticking (reconciler-not-running): keep the last state rather than guess.
            treat_missing_data=cloudwatch.TreatMissingData.MISSING,
        )
        self.scaler_metrics_missing = self._alarm(
            "scaler-metrics-missing",
            f"For {MISSING_METRICS_MINUTES} minutes the scaler found load balancers whose serving LBVMs publish "
            "no metrics (they cannot scale in), or the scaler published nothing at all",
            app_metric(METRIC_SCALER_METRICS_MISSING, SERVICE_SCALER, statistic="Minimum"),
            threshold=1,
            evaluation_periods=MISSING_METRICS_MINUTES,
            # Every run publishes the count, zeros too: silence means the scaler is not running,
            # and then no load balancer is being scaled at all.
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )

    def _alarm(
        self,
        slug: str,
        what: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        evaluation_periods: int,
        treat_missing_data: cloudwatch.TreatMissingData,
        datapoints_to_alarm: int | None = None,
        comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    ) -> cloudwatch.Alarm:
        return self._alerting.watch(
            cloudwatch.Alarm(
                self,
                slug,
                alarm_name=alarm_name(self, slug),
                alarm_description=described(slug, what),
                metric=metric,
                threshold=threshold,
                evaluation_periods=evaluation_periods,
                datapoints_to_alarm=datapoints_to_alarm,
                comparison_operator=comparison,
                treat_missing_data=treat_missing_data,
            )
        )


class ControlPlaneDashboard(Construct):
    """One dashboard: the fleet, the reconciler, jobs, scaling, heartbeats, consistency, functions, state machines."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Mapping[str, lambda_.IFunction],
        state_machines: Mapping[str, sfn.IStateMachine],
        reconciler: lambda_.IFunction,
        alarms: Sequence[cloudwatch.IAlarm],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self).stack_name
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"{stack}-control-plane", default_interval=Duration.hours(6)
        )
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(alarms), width=24, height=3)
        )
        self.dashboard.add_widgets(
            graph(
                "Load balancers by phase (fleet size)",
                [
                    app_metric(
                        METRIC_LOAD_BALANCERS,
                        SERVICE_RECONCILER,
                        statistic="Maximum",
                        label=phase,
                        dimensions={DIMENSION_PHASE: phase},
                    )
                    for phase in PHASES
                ],
                stacked=True,
            ),
            graph(
                "Reconcile duration (ms)",
                [
                    app_metric(METRIC_TICK_DURATION, SERVICE_RECONCILER, statistic="Average", label="tick, average"),
                    app_metric(METRIC_TICK_DURATION, SERVICE_RECONCILER, statistic="Maximum", label="tick, max"),
                    reconciler.metric_duration(period=MINUTE, statistic="p99", label="invocation, p99"),
                ],
                left_annotations=[cloudwatch.HorizontalAnnotation(value=RECONCILER_SLOW_MS, label="alarm")],
            ),
            graph(
                "Reconciler: load balancers planned and acted on, errors",
                [
                    app_metric(METRIC_TICK_LOAD_BALANCERS, SERVICE_RECONCILER, statistic="Maximum", label="planned"),
                    app_metric(METRIC_TICK_ACTED, SERVICE_RECONCILER, label="acted on"),
                ],
                right=[reconciler.metric_errors(period=MINUTE, statistic="Sum", label="invocation errors")],
            ),
        )
        self.dashboard.add_widgets(
            graph(
                "Jobs done by kind",
                [by_dimension(METRIC_JOBS_DONE, SERVICE_RECONCILER, DIMENSION_JOB_KIND)],
                stacked=True,
            ),
            graph(
                "Jobs failed by kind",
                [by_dimension(METRIC_JOBS_FAILED, SERVICE_RECONCILER, DIMENSION_JOB_KIND)],
            ),
            graph(
                "Rollouts in progress",
                [app_metric(METRIC_ROLLOUTS_ACTIVE, SERVICE_RECONCILER, statistic="Maximum", label="active rollouts")],
            ),
        )
        self.dashboard.add_widgets(
            graph(
                "Scaling decisions",
                [
                    app_metric(
                        METRIC_SCALING_DECISIONS,
                        SERVICE_SCALER,
                        label=f"scale {d}",
                        dimensions={DIMENSION_DIRECTION: d},
                    )
                    for d in DIRECTIONS
                ],
                right=[
                    app_metric(
                        METRIC_SCALER_METRICS_MISSING, SERVICE_SCALER, statistic="Maximum", label="missing metrics"
                    )
                ],
            ),
            graph(
                "Heartbeats received",
                [
                    app_metric(METRIC_HEARTBEATS, SERVICE_AGENT_API, period=FIVE_MINUTES, label="per 5 minutes"),
                    # LBVMs launched before the agent endpoint: the legacy routes can go once this stays at 0.
                    app_metric(
                        METRIC_AGENT_REQUESTS_VIA_HTTP_API,
                        SERVICE_AGENT_API,
                        period=FIVE_MINUTES,
                        label="through the HTTP API (LBVMs launched before the agent endpoint)",
                    ),
                ],
            ),
            graph(
                "Consistency findings",
                [
                    cloudwatch.Metric(
                        namespace=NAMESPACE,
                        metric_name=METRIC_CONSISTENCY_FINDINGS,
                        dimensions_map={DIMENSION_FINDING_KIND: kind},
                        statistic="Maximum",
                        period=Duration.minutes(15),
                        label=kind,
                    )
                    for kind in FINDING_KINDS
                ],
            ),
        )
        self.dashboard.add_widgets(
            graph(
                "Lambda errors",
                [fn.metric_errors(period=FIVE_MINUTES, statistic="Sum", label=name) for name, fn in functions.items()],
            ),
            graph(
                "Lambda throttles",
                [
                    fn.metric_throttles(period=FIVE_MINUTES, statistic="Sum", label=name)
                    for name, fn in functions.items()
                ],
            ),
            graph(
                "Step Functions executions failed or timed out",
                [
                    metric
                    for name, machine in state_machines.items()
                    for metric in (
                        machine.metric_failed(period=FIVE_MINUTES, statistic="Sum", label=f"{name} failed"),
                        machine.metric_timed_out(period=FIVE_MINUTES, statistic="Sum", label=f"{name} timed out"),
                    )
                ],
            ),
        )
