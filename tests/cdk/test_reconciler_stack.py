"""The reconciler in the synthesized stack: triggers, dead letters, and what its role may do."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

import pytest

from lbcp.dal.schema import GSI_BY_KIND, GSI_BY_KIND_KEYS
from lbcp.settings import (
    ENV_AGENT_ENDPOINT,
    ENV_DRAIN_STATE_MACHINE_ARN,
    ENV_LIFECYCLE_STATE_MACHINE_ARN,
    ENV_RECONCILE_DEAD_LETTER_AFTER,
    ENV_RECONCILE_DEAD_LETTER_QUEUE_URL,
    ENV_RECONCILE_SHARD_SIZE,
    ENV_RECONCILE_WORK_QUEUE_URL,
    ENV_TABLE_NAME,
    ENV_TASKS_FUNCTION_ARN,
)
from tests.cdk.test_fleet_stack import IAM5, NAG_ARN, NAG_EC2

if TYPE_CHECKING:
    from tests.cdk.conftest import Synthesized

pytestmark = pytest.mark.cdk

HANDLER = "handlers.reconciler.lambda_handler"
WORKER_HANDLER = "handlers.reconcile_worker.lambda_handler"
ENTRY = "Lbcp/Reconciler/Function/EntryPermissions"


def _function_acknowledgments(name: str) -> set[tuple[str, str]]:
    """The accepted findings of one of the reconciler's functions (the dispatcher and the worker: the same rights)."""
    function, entry = f"Lbcp/Reconciler/{name}", f"Lbcp/Reconciler/{name}/EntryPermissions"
    return {
        (f"{IAM5}*]", f"{function}/Role/DefaultPolicy"),
        (f"{IAM5}*]", f"{function}/ObserveComputePolicy"),
        ("AwsSolutions::AwsSolutions-L1", f"{function}/Function"),
        *(
            (f"{IAM5}{NAG_EC2.format(resource)}]", f"{function}/Role/DefaultPolicy")
            for resource in ("instance", "network-interface")
        ),
        (
            f"{IAM5}arn:<AWS::Partition>:ssm:<AWS::Region>::parameter/aws/service/ami-amazon-linux-latest/*]",
            f"{function}/Role/DefaultPolicy",
        ),
        (
            f"{IAM5}arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:alarm:*]",
            f"{function}/Role/DefaultPolicy",
        ),
        # What it may do to the entries (stacks/entry_permissions.py).
        (f"{IAM5}*]", f"{entry}/Describe"),
        *((f"{IAM5}{NAG_EC2.format(resource)}]", f"{entry}/Management") for resource in ("security-group", "vpc")),
        *(
            (f"{IAM5}{NAG_ARN.format(service='elasticloadbalancing', resource=pattern)}]", f"{entry}/Management")
            for pattern in ("loadbalancer/net/lbcp-*/*", "targetgroup/lbcp-*/*", "listener/net/lbcp-*/*/*")
        ),
    }


# (acknowledged finding, where) of every accepted cdk-nag finding of the reconciler.
EXPECTED_RECONCILER_ACKNOWLEDGMENTS: Final = {
    *_function_acknowledgments("Function"),
    *_function_acknowledgments("Worker"),
    ("AwsSolutions::AwsSolutions-SQS3", "Lbcp/Reconciler/StreamDeadLetters"),
    ("AwsSolutions::AwsSolutions-SQS3", "Lbcp/Reconciler/FailingLoadBalancers"),
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _reconciler(synthesized: Synthesized) -> tuple[str, dict[str, Any]]:
    (found,) = (
        (logical_id, function)
        for logical_id, function in synthesized.resources("AWS::Lambda::Function").items()
        if function["Properties"]["Handler"] == HANDLER
    )
    return found


def _statements(synthesized: Synthesized) -> list[dict[str, Any]]:
    role = _reconciler(synthesized)[1]["Properties"]["Role"]
    role_id = role["Fn::GetAtt"][0]
    return [
        statement
        for policy in synthesized.resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_it_knows_where_everything_is(synthesized: Synthesized) -> None:
    variables = _reconciler(synthesized)[1]["Properties"]["Environment"]["Variables"]
    for name in (
        ENV_TABLE_NAME,
        ENV_AGENT_ENDPOINT,
        ENV_LIFECYCLE_STATE_MACHINE_ARN,
        ENV_DRAIN_STATE_MACHINE_ARN,
        ENV_TASKS_FUNCTION_ARN,
    ):
        assert name in variables, name


def test_it_runs_every_minute_and_never_late(synthesized: Synthesized) -> None:
    function_id, _ = _reconciler(synthesized)
    rules = [
        rule
        for rule in synthesized.resources("AWS::Events::Rule").values()
        if any(target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]} for target in rule["Properties"]["Targets"])
    ]
    [rule] = [rule for rule in rules if "ScheduleExpression" in rule["Properties"]]
    assert rule["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    [target] = rule["Properties"]["Targets"]
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 60, "MaximumRetryAttempts": 0}


def test_an_instance_that_stops_serving_triggers_it_at_once(synthesized: Synthesized) -> None:
    function_id, _ = _reconciler(synthesized)
    [rule] = [
        rule
        for rule in synthesized.resources("AWS::Events::Rule").values()
        if "EventPattern" in rule["Properties"]
        and any(target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]} for target in rule["Properties"]["Targets"])
    ]
    assert rule["Properties"]["EventPattern"] == {
        "source": ["aws.ec2"],
        "detail-type": ["EC2 Instance State-change Notification"],
        "detail": {"state": ["shutting-down", "terminated", "stopping", "stopped"]},
    }
    [target] = rule["Properties"]["Targets"]
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 120, "MaximumRetryAttempts": 2}
    # EventBridge may invoke the function.
    assert any(
        permission["Properties"]["Principal"] == "events.amazonaws.com"
        and permission["Properties"]["SourceArn"] == {"Fn::GetAtt": [logical_id, "Arn"]}
        for permission in synthesized.resources("AWS::Lambda::Permission").values()
        for logical_id, candidate in synthesized.resources("AWS::Events::Rule").items()
        if candidate is rule
    )


def _stream_dead_letters(synthesized: Synthesized) -> str:
    function_id, _ = _reconciler(synthesized)
    [mapping] = [
        m
        for m in synthesized.resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    return str(mapping["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0])


def test_spec_changes_trigger_it_at_once_with_dead_letters(synthesized: Synthesized) -> None:
    function_id, _ = _reconciler(synthesized)
    [mapping] = [
        m
        for m in synthesized.resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    props = mapping["Properties"]
    assert props["StartingPosition"] == "LATEST"
    assert props["BisectBatchOnFunctionError"] is True
    assert props["FilterCriteria"] == {"Filters": [{"Pattern": '{"dynamodb":{"Keys":{"sk":{"S":["LB"]}}}}'}]}
    queue_arn = props["DestinationConfig"]["OnFailure"]["Destination"]
    queue_id = queue_arn["Fn::GetAtt"][0]
    assert synthesized.template["Resources"][queue_id]["Type"] == "AWS::SQS::Queue"
    alarms = [
        alarm
        for alarm in synthesized.resources("AWS::CloudWatch::Alarm").values()
        if {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}
        in alarm["Properties"].get("Dimensions", [])
    ]
    assert len(alarms) == 1


def test_failing_load_balancers_go_to_an_encrypted_queue_it_may_only_send_to_with_a_depth_alarm(
    synthesized: Synthesized,
) -> None:
    variables = _reconciler(synthesized)[1]["Properties"]["Environment"]["Variables"]
    queue_id = variables[ENV_RECONCILE_DEAD_LETTER_QUEUE_URL]["Ref"]
    assert variables[ENV_RECONCILE_DEAD_LETTER_AFTER] == "8"
    queue = synthesized.template["Resources"][queue_id]
    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    # TLS only: the queue's policy denies every request that is not over TLS.
    [policy] = [
        p
        for p in synthesized.resources("AWS::SQS::QueuePolicy").values()
        if p["Properties"]["Queues"] == [{"Ref": queue_id}]
    ]
    [deny] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # The function may send to it and do nothing else with it; its only other queue rights are on the stream's
    # dead letters (the event source's on-failure destination).
    sending = [
        statement
        for statement in _statements(synthesized)
        if any(action.startswith("sqs:") for action in _as_list(statement["Action"]))
    ]
    ours = [statement for statement in sending if statement["Resource"] == {"Fn::GetAtt": [queue_id, "Arn"]}]
    assert ours == [
        {
            "Sid": "SendFailingLoadBalancers",
            "Effect": "Allow",
            "Action": "sqs:SendMessage",
            "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
        }
    ]
    others = {json.dumps(statement["Resource"]) for statement in sending if statement not in ours}
    assert others == {
        json.dumps({"Fn::GetAtt": [_stream_dead_letters(synthesized), "Arn"]}),
        json.dumps({"Fn::GetAtt": [_work_queue(synthesized), "Arn"]}),
    }
    # One alarm on its depth: a message is a load balancer for a person to look at.
    [alarm] = [
        alarm
        for alarm in synthesized.resources("AWS::CloudWatch::Alarm").values()
        if {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}
        in alarm["Properties"].get("Dimensions", [])
    ]
    props = alarm["Properties"]
    assert (props["MetricName"], props["Namespace"]) == ("ApproximateNumberOfMessagesVisible", "AWS/SQS")
    assert (props["Threshold"], props["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert props["TreatMissingData"] == "notBreaching"


def test_it_lists_lbvms_by_the_keys_only_index_and_reads_their_records_in_batches(synthesized: Synthesized) -> None:
    table_id, _ = synthesized.only("AWS::DynamoDB::Table")
    table_arn = {"Fn::GetAtt": [table_id, "Arn"]}
    by_sid = {statement.get("Sid"): statement for statement in _statements(synthesized)}
    listing = by_sid["ListByKind"]
    assert listing["Action"] == "dynamodb:Query"
    assert listing["Resource"] == [
        {"Fn::Join": ["", [table_arn, f"/index/{index}"]]} for index in (GSI_BY_KIND, GSI_BY_KIND_KEYS)
    ]
    assert (by_sid["ReadLbvmRecords"]["Action"], by_sid["ReadLbvmRecords"]["Resource"]) == (
        "dynamodb:BatchGetItem",
        table_arn,
    )


def test_it_deletes_only_what_carries_our_tags(synthesized: Synthesized) -> None:
    destructive = [
        statement
        for statement in _statements(synthesized)
        if any(
            action in ("ec2:TerminateInstances", "ec2:DeleteNetworkInterface")
            for action in _as_list(statement["Action"])
        )
    ]
    assert destructive
    for statement in destructive:
        assert statement["Condition"]["StringEquals"] == {"aws:ResourceTag/lbcp:product": "lbcp"}


def test_it_starts_lifecycles_and_answers_their_callbacks(synthesized: Synthesized) -> None:
    actions = {action for statement in _statements(synthesized) for action in _as_list(statement["Action"])}
    assert {"states:StartExecution", "states:SendTaskSuccess"} <= actions
    assert not any("*" in action for action in actions)


def test_it_reads_only_alarms_of_its_own_account_and_nothing_else_of_cloudwatch(synthesized: Synthesized) -> None:
    reading = [
        statement
        for statement in _statements(synthesized)
        if any(action.startswith("cloudwatch:") for action in _as_list(statement["Action"]))
    ]
    [statement] = reading
    assert (statement["Sid"], _as_list(statement["Action"])) == ("ReadRolloutAlarms", ["cloudwatch:DescribeAlarms"])
    [resource] = _as_list(statement["Resource"])
    assert resource == {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":cloudwatch:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                ":alarm:*",
            ],
        ]
    }


def test_it_passes_cdk_nag_with_exactly_the_expected_acknowledgments(synthesized: Synthesized) -> None:
    assert synthesized.passes_nag("Lbcp/Reconciler/") == EXPECTED_RECONCILER_ACKNOWLEDGMENTS


def test_its_entry_permissions_are_fenced_by_tags_and_names(synthesized: Synthesized) -> None:
    # (No construct paths in the tests' templates: the policies are found by their logical ids.)
    policies = {
        logical_id.removeprefix("ReconcilerFunctionEntryPermissions")[:-8]: (logical_id, resource)
        for logical_id, resource in synthesized.resources("AWS::IAM::Policy").items()
        if logical_id.startswith("ReconcilerFunctionEntryPermissions")
    }
    assert set(policies) == {"Management", "Describe"}
    reconciler_id, reconciler = _reconciler(synthesized)
    role = reconciler["Properties"]["Role"]["Fn::GetAtt"][0]
    for _, policy in policies.values():
        assert policy["Properties"]["Roles"] == [{"Ref": role}]
    management_id, management = policies["Management"]
    for statement in management["Properties"]["PolicyDocument"]["Statement"]:
        operations = [action.split(":")[1] for action in _as_list(statement["Action"])]
        if any(operation.startswith(("Create", "AddTags")) for operation in operations):
            assert "Condition" in statement or statement["Sid"] == "SecurityGroupVpc", statement
        if any(operation.startswith(("Delete", "Modify", "Set", "Register", "Deregister")) for operation in operations):
            assert statement["Condition"] in (
                {"StringEquals": {"aws:ResourceTag/lbcp:product": "lbcp"}},
                {"StringEquals": {"ec2:ResourceTag/lbcp:product": "lbcp"}},
            ), statement
        if any(action.startswith("elasticloadbalancing:") for action in _as_list(statement["Action"])):
            assert all("lbcp-*" in json.dumps(resource) for resource in _as_list(statement["Resource"])), statement
    (describe,) = policies["Describe"][1]["Properties"]["PolicyDocument"]["Statement"]
    assert describe["Resource"] == "*"
    assert all(action.split(":")[1].startswith("Describe") for action in describe["Action"])
    # The function waits for what it may do to the entries.
    assert management_id in synthesized.template["Resources"][reconciler_id]["DependsOn"]


# --- the work queue and its worker ----------------------------------------------------------------------------


def _function(synthesized: Synthesized, handler: str) -> tuple[str, dict[str, Any]]:
    (found,) = (
        (logical_id, function)
        for logical_id, function in synthesized.resources("AWS::Lambda::Function").items()
        if function["Properties"]["Handler"] == handler
    )
    return found


def _role_statements(synthesized: Synthesized, function: dict[str, Any]) -> list[dict[str, Any]]:
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    return [
        statement
        for policy in synthesized.resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _work_queue(synthesized: Synthesized) -> str:
    variables = _reconciler(synthesized)[1]["Properties"]["Environment"]["Variables"]
    return str(variables[ENV_RECONCILE_WORK_QUEUE_URL]["Ref"])


def test_the_work_queue_is_fifo_encrypted_tls_only_with_a_fifo_dead_letter_queue_and_its_alarm(
    synthesized: Synthesized,
) -> None:
    queue_id = _work_queue(synthesized)
    props = synthesized.template["Resources"][queue_id]["Properties"]
    assert props["FifoQueue"] is True and props["SqsManagedSseEnabled"] is True
    assert props.get("ContentBasedDeduplication") is not True  # the dispatcher names the deduplication ids
    _, worker = _function(synthesized, WORKER_HANDLER)
    assert props["VisibilityTimeout"] >= 6 * worker["Properties"]["Timeout"]
    redrive = props["RedrivePolicy"]
    assert redrive["maxReceiveCount"] == 3
    dead_letters_id = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
    dead_letters = synthesized.template["Resources"][dead_letters_id]["Properties"]
    assert dead_letters["FifoQueue"] is True and dead_letters["SqsManagedSseEnabled"] is True
    for queue in (queue_id, dead_letters_id):
        [policy] = [
            p
            for p in synthesized.resources("AWS::SQS::QueuePolicy").values()
            if p["Properties"]["Queues"] == [{"Ref": queue}]
        ]
        [deny] = policy["Properties"]["PolicyDocument"]["Statement"]
        assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    [alarm] = [
        alarm["Properties"]
        for alarm in synthesized.resources("AWS::CloudWatch::Alarm").values()
        if {"Name": "QueueName", "Value": {"Fn::GetAtt": [dead_letters_id, "QueueName"]}}
        in alarm["Properties"].get("Dimensions", [])
    ]
    assert (alarm["MetricName"], alarm["Threshold"]) == ("ApproximateNumberOfMessagesVisible", 1)
    assert alarm["AlarmName"] == "Lbcp-reconcile-work-dead-letters"
    [topic_id] = synthesized.resources("AWS::SNS::Topic")
    assert alarm["AlarmActions"] == [{"Ref": topic_id}] and alarm["OKActions"] == [{"Ref": topic_id}]


def test_the_dispatcher_may_only_send_to_the_work_queue_and_knows_its_shard_size(synthesized: Synthesized) -> None:
    queue_id = _work_queue(synthesized)
    _, dispatcher = _function(synthesized, HANDLER)
    assert dispatcher["Properties"]["Environment"]["Variables"][ENV_RECONCILE_SHARD_SIZE] == "50"
    on_queue = [
        statement
        for statement in _role_statements(synthesized, dispatcher)
        if json.dumps({"Fn::GetAtt": [queue_id, "Arn"]}) in json.dumps(statement["Resource"])
    ]
    assert on_queue == [
        {
            "Sid": "DispatchShards",
            "Effect": "Allow",
            "Action": "sqs:SendMessage",
            "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
        }
    ]


def test_the_worker_consumes_one_shard_at_a_time_reporting_failures_with_bounded_concurrency(
    synthesized: Synthesized,
) -> None:
    queue_id = _work_queue(synthesized)
    worker_id, worker = _function(synthesized, WORKER_HANDLER)
    [mapping] = [
        m["Properties"]
        for m in synthesized.resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": worker_id}
    ]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert mapping["BatchSize"] == 1
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 10}
    # It may consume the queue, never send to it (only the dispatcher does).
    statements = _role_statements(synthesized, worker)
    consuming = {
        action
        for statement in statements
        if json.dumps({"Fn::GetAtt": [queue_id, "Arn"]}) in json.dumps(statement["Resource"])
        for action in _as_list(statement["Action"])
    }
    assert "sqs:ReceiveMessage" in consuming and "sqs:DeleteMessage" in consuming
    assert "sqs:SendMessage" not in consuming


def test_the_worker_has_the_reconcilers_rights_granted_the_same_way(synthesized: Synthesized) -> None:
    _, dispatcher = _function(synthesized, HANDLER)
    _, worker = _function(synthesized, WORKER_HANDLER)

    # What their triggers add apart: the dispatcher's stream (and its on-failure queue) and the work queue.
    stream_reads = {
        "dynamodb:GetShardIterator",
        "dynamodb:DescribeStream",
        "dynamodb:ListStreams",
        "dynamodb:GetRecords",
    }

    def rights(function: dict[str, Any]) -> set[tuple[str, str]]:
        """(Sid, action) of everything it may do but its triggers' and queues' rights."""
        return {
            (statement.get("Sid", ""), action)
            for statement in _role_statements(synthesized, function)
            for action in _as_list(statement["Action"])
            if not action.startswith("sqs:") and action not in stream_reads
        }

    assert rights(worker) == rights(dispatcher)
    for function in (worker, dispatcher):
        assert {
            "Sid": "SendFailingLoadBalancers",
            "Effect": "Allow",
            "Action": "sqs:SendMessage",
            "Resource": {"Fn::GetAtt": [_failing_load_balancers(synthesized), "Arn"]},
        } in _role_statements(synthesized, function)
    assert worker["Properties"]["Timeout"] == dispatcher["Properties"]["Timeout"]
    variables = worker["Properties"]["Environment"]["Variables"]
    assert ENV_RECONCILE_WORK_QUEUE_URL not in variables  # a worker never dispatches
    assert ENV_RECONCILE_DEAD_LETTER_QUEUE_URL in variables


def _failing_load_balancers(synthesized: Synthesized) -> str:
    variables = _reconciler(synthesized)[1]["Properties"]["Environment"]["Variables"]
    return str(variables[ENV_RECONCILE_DEAD_LETTER_QUEUE_URL]["Ref"])


def test_workers_that_do_not_keep_up_page(synthesized: Synthesized) -> None:
    queue_id = _work_queue(synthesized)
    [alarm] = [
        alarm["Properties"]
        for alarm in synthesized.resources("AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("MetricName") == "ApproximateAgeOfOldestMessage"
    ]
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    assert (alarm["Statistic"], alarm["Period"], alarm["Threshold"]) == ("Maximum", 60, 120)
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (5, 3)
    assert alarm["AlarmName"] == "Lbcp-reconcile-work-backlog"
