"""The agent endpoint: heartbeats answer real Step Functions callbacks, and only an LBVM's own instance may call."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lbcp.dal.lbvms import LbvmRepository
from lbcp.dal.repository import LoadBalancerRepository
from lbcp.models.lbvm import Lbvm
from lbcp.models.rollout import template_of
from lbcp.models.spec import HEARTBEAT_INTERVAL_SECONDS
from lbcp.models.status import LoadBalancerStatus
from lbcp.reconcile.observed import EntryView, LoadBalancerView
from lbcp.reconcile.plan import plan
from lbcp_local.invoke import ApiResponse, invoke_agent_endpoint
from tests.conftest import Api, Cloud

INSTANCE = "i-0123456789abcdef0"
ROLE_SESSION = f"arn:aws:sts::123456789012:assumed-role/lbcp-lbvm/{INSTANCE}"
LBVM_ID = "lbvm-0123456789ab"


def waiter(**timing: int) -> dict[str, Any]:
    """A stand-in lifecycle with one callback state, waiting the way the real one does.

    The callback arrives through SQS here (moto runs that without Lambda);
    ``timing`` is TimeoutSeconds and/or HeartbeatSeconds.
    """
    return {
        "StartAt": "Wait",
        "States": {
            "Wait": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl.$": "$.queueUrl", "MessageBody": {"token.$": "$$.Task.Token"}},
                **timing,
                "End": True,
            }
        },
    }


@pytest.fixture
def lb(api: Api, spec: dict[str, Any]) -> dict[str, Any]:
    response = api.create(spec)
    assert response.status == 201
    result: dict[str, Any] = response.json()
    return result


def lbvm_record(cloud: Cloud, lb_id: str, **changes: Any) -> Lbvm:
    repository = LbvmRepository(cloud.dynamodb, cloud.table)
    now = datetime.now(UTC)
    lbvm = Lbvm(
        lbvm_id=LBVM_ID,
        load_balancer_id=lb_id,
        subnet_id=cloud.account.subnet_ids[0],
        state="Pending",
        state_since=now,
        version=1,
        launched_generation=1,
        launch_reason="test",
        created_at=now,
        instance_id=INSTANCE,
    ).model_copy(update=changes)
    repository.create(lbvm)
    return lbvm


def waiting_execution(cloud: Cloud, name: str, **timing: int) -> tuple[str, str]:
    """Start the stand-in and return (execution arn, the task token it waits on)."""
    import boto3

    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = sqs.create_queue(QueueName=f"callbacks-{name}")["QueueUrl"]
    machine = sfn.create_state_machine(
        name=f"waiter-{name}", definition=json.dumps(waiter(**timing)), roleArn="arn:aws:iam::123456789012:role/sfn"
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps({"queueUrl": queue}))
    for _ in range(100):
        messages = sqs.receive_message(QueueUrl=queue).get("Messages", [])
        if messages:
            return execution["executionArn"], json.loads(messages[0]["Body"])["token"]
        time.sleep(0.05)
    raise AssertionError("the execution never asked for its callback")


def current_status(arn: str) -> str:
    import boto3

    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    return str(sfn.describe_execution(executionArn=arn)["status"])


def execution_status(arn: str) -> str:
    """The execution's status once it has ended (or RUNNING after 3 s)."""
    import boto3

    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    for _ in range(60):
        status = str(sfn.describe_execution(executionArn=arn)["status"])
        if status != "RUNNING":
            return status
        time.sleep(0.05)
    return "RUNNING"


def beat(lb_id: str, state: str = "ready", sequence: int = 1, **changes: Any) -> dict[str, Any]:
    return {
        "lbvmId": LBVM_ID,
        "instanceId": INSTANCE,
        "loadBalancerId": lb_id,
        "bootId": "boot-1",
        "sequence": sequence,
        "sentAt": datetime.now(UTC).isoformat(),
        "state": state,
        "activeConnections": 3,
        "appliedConfigVersion": 1,
        "agentVersion": "test",
        **changes,
    }


def send(body: dict[str, Any], principal: str = ROLE_SESSION) -> ApiResponse:
    return invoke_agent_endpoint(
        "POST",
        "/v1/agent/heartbeat",
        headers={"Content-Type": "application/json"},
        body=json.dumps(body).encode(),
        principal_arn=principal,
    )


@pytest.fixture(autouse=True)
def stepfunctions_execute(cloud: Cloud) -> None:
    from moto.core.config import default_user_config

    default_user_config["stepfunctions"] = {"execute_state_machine": True}


def test_the_first_ready_heartbeat_completes_the_pending_callback(cloud: Cloud, lb: dict[str, Any]) -> None:
    arn, token = waiting_execution(cloud, "first", TimeoutSeconds=60)
    lbvm_record(cloud, lb["id"], callback_kind="first-heartbeat", callback_token=token)
    starting = send(beat(lb["id"], state="starting"))
    assert starting.status == 200
    time.sleep(0.3)
    assert current_status(arn) == "RUNNING"  # a starting agent is not healthy yet
    ready = send(beat(lb["id"], sequence=2))
    assert ready.status == 200
    assert ready.json() == {
        "desiredConfigVersion": 1,
        "drain": False,
        "drainDeadline": None,
        "heartbeatIntervalSeconds": HEARTBEAT_INTERVAL_SECONDS,  # the spec's default
    }
    assert execution_status(arn) == "SUCCEEDED"


def test_heartbeats_keep_the_routable_callback_alive_and_silence_times_it_out(cloud: Cloud, lb: dict[str, Any]) -> None:
    arn, token = waiting_execution(cloud, "alive", HeartbeatSeconds=2)
    lbvm_record(cloud, lb["id"], state="Routable", callback_kind="heartbeats", callback_token=token)
    started = time.monotonic()
    sequence = 0
    while time.monotonic() - started < 3.5:  # longer than the 2 s heartbeat timeout
        sequence += 1
        assert send(beat(lb["id"], sequence=sequence)).status == 200
        time.sleep(0.5)
    assert current_status(arn) == "RUNNING"
    time.sleep(2.5)  # now silence
    assert execution_status(arn) == "FAILED"


def test_a_failed_agent_does_not_count_as_alive(cloud: Cloud, lb: dict[str, Any]) -> None:
    arn, token = waiting_execution(cloud, "failed", HeartbeatSeconds=2)
    lbvm_record(cloud, lb["id"], state="Routable", callback_kind="heartbeats", callback_token=token)
    for sequence in range(1, 7):
        assert send(beat(lb["id"], state="failed", sequence=sequence, error="nginx: [emerg]")).status == 200
        time.sleep(0.5)
    assert execution_status(arn) == "FAILED"


def test_an_instance_may_report_only_for_itself(cloud: Cloud, lb: dict[str, Any]) -> None:
    lbvm_record(cloud, lb["id"])
    other = "arn:aws:sts::123456789012:assumed-role/lbcp-lbvm/i-0fffffffffffffff0"
    assert send(beat(lb["id"]), principal=other).status == 403
    assert send(beat(lb["id"], instanceId="i-0fffffffffffffff0"), principal=other).status == 403
    user = "arn:aws:iam::123456789012:user/alice"
    response = send(beat(lb["id"]), principal=user)
    assert response.status == 403
    assert response.json()["type"] == "urn:lbcp:problem:forbidden"


def test_heartbeats_are_stored_when_something_changes_not_every_time(cloud: Cloud, lb: dict[str, Any]) -> None:
    lbvm_record(cloud, lb["id"], state="Routable")
    repository = LbvmRepository(cloud.dynamodb, cloud.table)
    send(beat(lb["id"], sequence=1))
    first = repository.get(lb["id"], LBVM_ID)
    assert first is not None and first.agent_state == "ready" and first.active_connections == 3
    send(beat(lb["id"], sequence=2, activeConnections=9))
    assert repository.get(lb["id"], LBVM_ID) == first  # nothing but the load changed: no write
    send(beat(lb["id"], sequence=3, appliedConfigVersion=2))
    third = repository.get(lb["id"], LBVM_ID)
    assert third is not None and third.applied_config_version == 2 and third.version == first.version + 1
    send(beat(lb["id"], sequence=2, appliedConfigVersion=5))  # late: older sequence of the same boot
    assert repository.get(lb["id"], LBVM_ID) == third


def test_a_draining_lbvm_is_told_to_drain_and_its_connections_are_tracked(cloud: Cloud, lb: dict[str, Any]) -> None:
    deadline = datetime(2030, 1, 1, tzinfo=UTC)
    lbvm_record(cloud, lb["id"], state="Draining", drain_requested_at=datetime.now(UTC), drain_deadline=deadline)
    repository = LbvmRepository(cloud.dynamodb, cloud.table)
    reply = send(beat(lb["id"], state="draining", activeConnections=4)).json()
    assert reply["drain"] is True
    assert reply["drainDeadline"] == "2030-01-01T00:00:00Z"
    send(beat(lb["id"], state="draining", sequence=2, activeConnections=0))
    stored = repository.get(lb["id"], LBVM_ID)
    assert stored is not None and stored.active_connections == 0


@pytest.mark.parametrize(
    ("case", "told"),
    [
        # Asked to go, but still in the entry: it serves on.
        (("Routable", "drain_requested_at", timedelta(0)), False),
        # Out of the entry, but the entry is still sending it new connections for a while.
        (("Draining", "accepting_until", timedelta(minutes=5)), False),
        (("Draining", "accepting_until", -timedelta(seconds=1)), True),
    ],
    ids=["requested", "in-grace", "grace-over"],
)
def test_an_lbvm_is_told_to_drain_only_once_the_entry_no_longer_sends_it_connections(
    cloud: Cloud, lb: dict[str, Any], case: tuple[str, str, timedelta], told: bool
) -> None:
    state, field, offset = case
    # The time is taken when the test runs, not when it is collected (minutes earlier in a full run).
    lbvm_record(cloud, lb["id"], state=state, **{field: datetime.now(UTC) + offset})
    assert send(beat(lb["id"], state="ready", activeConnections=4)).json()["drain"] is told


def test_the_agent_fetches_the_current_spec_and_its_version(cloud: Cloud, api: Api, lb: dict[str, Any]) -> None:
    lbvm_record(cloud, lb["id"])

    def fetch(principal: str = ROLE_SESSION) -> ApiResponse:
        return invoke_agent_endpoint(
            "GET", "/v1/agent/config", query=f"lbvmId={LBVM_ID}&loadBalancerId={lb['id']}", principal_arn=principal
        )

    first = fetch()
    assert first.status == 200
    assert first.json()["configVersion"] == 1
    assert first.json()["spec"]["name"] == "web"
    api.request(
        "PATCH",
        f"/v1/load-balancers/{lb['id']}",
        {"capacity": {"max": 8}},
        headers={"Content-Type": "application/merge-patch+json", "If-Match": '"1"'},
    )
    second = fetch().json()
    assert (second["configVersion"], second["spec"]["capacity"]["max"]) == (2, 8)
    assert send(beat(lb["id"])).json()["desiredConfigVersion"] == 2
    assert fetch("arn:aws:sts::123456789012:assumed-role/lbcp-lbvm/i-0aaaaaaaaaaaaaaa0").status == 403
    unknown = invoke_agent_endpoint(
        "GET",
        "/v1/agent/config",
        query=f"lbvmId=lbvm-000000000000&loadBalancerId={lb['id']}",
        principal_arn=ROLE_SESSION,
    )
    assert unknown.status == 404


def test_an_agent_error_is_an_event_once_with_what_happens_next(cloud: Cloud, api: Api, lb: dict[str, Any]) -> None:
    lbvm_record(cloud, lb["id"], state="Pending", applied_config_version=None)

    def bind_error(pid: int) -> str:
        return f"start: haproxy: [ALERT]    ({pid}) : Starting frontend l80: cannot bind socket (Address in use)"

    for sequence in (1, 2, 3):  # the agent retries: the same failure, other pids
        error = bind_error(100 + sequence)
        send(beat(lb["id"], state="failed", sequence=sequence, appliedConfigVersion=None, error=error))
    events = [e for e in api.request("GET", f"/v1/load-balancers/{lb['id']}/events").json()["items"]]
    [said] = [e for e in events if e["reason"] == "AgentError"]
    assert said["type"] == "Warning"
    assert said["message"] == (
        f"{LBVM_ID} {INSTANCE}: the agent is failed, not serving: {bind_error(101)}; it is not registered; replaced "
        f"unless healthy within the pending timeout ({lb['lifecycle']['pendingTimeoutSeconds']} s after launch)"
    )
    stored = LbvmRepository(cloud.dynamodb, cloud.table).get(lb["id"], LBVM_ID)
    assert stored is not None and stored.agent_error == bind_error(103)  # the latest words, in the status
    # Healthy again: the error is cleared, and a refused config later is a new event that says what still serves.
    send(beat(lb["id"], sequence=4))
    stored = LbvmRepository(cloud.dynamodb, cloud.table).get(lb["id"], LBVM_ID)
    assert stored is not None and stored.agent_error is None
    send(beat(lb["id"], sequence=5, error="validate: nginx: [emerg] unknown directive"))
    events = api.request("GET", f"/v1/load-balancers/{lb['id']}/events").json()["items"]
    refused = [e["message"] for e in events if e["reason"] == "AgentError"]
    assert len(refused) == 2
    assert refused[0].endswith("refused a config: validate: nginx: [emerg] unknown directive; config v1 keeps serving")


def test_a_backend_no_target_answers_is_an_event_on_the_transition_only(
    cloud: Cloud, api: Api, lb: dict[str, Any]
) -> None:
    lbvm_record(cloud, lb["id"], state="Routable", callback_kind=None, callback_token=None)

    def health(app: int, db: int) -> list[dict[str, Any]]:
        return [
            {"name": "app", "healthyTargets": app, "targets": 2},
            {"name": "db", "healthyTargets": db, "targets": 1},
        ]

    def said(reason: str) -> list[str]:
        events = api.request("GET", f"/v1/load-balancers/{lb['id']}/events").json()["items"]
        return [e["message"] for e in events if e["reason"] == reason]

    assert send(beat(lb["id"], sequence=1, backends=health(2, 1))).status == 200
    assert said("BackendUnavailable") == []  # all reachable: nothing to say
    for sequence in (2, 3, 4):  # db's only target stops answering, and stays down for three beats
        send(beat(lb["id"], sequence=sequence, backends=health(1, 0)))
    [down] = said("BackendUnavailable")
    assert down == (
        f"{LBVM_ID} {INSTANCE}: backend db has 0 of 1 targets passing its health check; this LBVM answers its "
        "requests with 503 until one passes. Its place in the entry does not change (a Pending LBVM is still "
        "registered once healthy): the fault is behind it, where every LBVM sees the same targets"
    )  # once, and app (1 of 2 still passing) is no event
    stored = LbvmRepository(cloud.dynamodb, cloud.table).get(lb["id"], LBVM_ID)
    assert stored is not None and stored.backend_health == "app=1/2,db=0/1"

    send(beat(lb["id"], sequence=5, backends=None))  # not known (an NGINX agent, a drain): not a recovery
    assert said("BackendAvailable") == []
    stored = LbvmRepository(cloud.dynamodb, cloud.table).get(lb["id"], LBVM_ID)
    assert stored is not None and stored.backend_health is None
    send(beat(lb["id"], sequence=6, backends=health(2, 0)))
    send(beat(lb["id"], sequence=7, backends=health(2, 1)))
    assert said("BackendAvailable") == [
        f"{LBVM_ID} {INSTANCE}: backend db is reachable again: 1 of 1 targets pass its health check"
    ]


def test_http_answer_counts_ride_along_with_stored_heartbeats_and_never_cause_a_write(
    cloud: Cloud, lb: dict[str, Any]
) -> None:
    lbvm_record(cloud, lb["id"], state="Routable")
    repository = LbvmRepository(cloud.dynamodb, cloud.table)
    send(beat(lb["id"], sequence=1, responses={"requests": 10, "serverErrors": 1}))
    first = repository.get(lb["id"], LBVM_ID)
    assert first is not None and (first.http_requests, first.http_server_errors) == (10, 1)
    send(beat(lb["id"], sequence=2, responses={"requests": 500, "serverErrors": 40}))
    assert repository.get(lb["id"], LBVM_ID) == first  # counts move with every request: not a reason to write
    send(beat(lb["id"], sequence=3, appliedConfigVersion=2, responses={"requests": 600, "serverErrors": 41}))
    third = repository.get(lb["id"], LBVM_ID)
    assert third is not None and (third.http_requests, third.http_server_errors) == (600, 41)
    refused = send(beat(lb["id"], sequence=4, responses={"requests": -1, "serverErrors": 0}))
    assert refused.status == 400 and b"#/responses/requests" in refused.body


def test_a_newer_agents_unknown_fields_are_ignored_not_refused(cloud: Cloud, lb: dict[str, Any]) -> None:
    lbvm_record(cloud, lb["id"], state="Routable")
    answer = send(beat(lb["id"], sequence=1, someFieldOfALaterVersion={"x": 1}))
    assert answer.status == 200
    stored = LbvmRepository(cloud.dynamodb, cloud.table).get(lb["id"], LBVM_ID)
    assert stored is not None and stored.agent_state == "ready"


def _tick(cloud: Cloud, lb_id: str) -> LoadBalancerStatus:
    """One decision of the real planner, its status written as the reconciler writes it (its jobs not run)."""
    repository = LoadBalancerRepository(cloud.dynamodb, cloud.table)
    record = repository.get(lb_id)
    assert record is not None
    lbvms = LbvmRepository(cloud.dynamodb, cloud.table).list_for(lb_id)
    view = LoadBalancerView(entry=EntryView(ready=True, dns_name="web.example.com"))
    decided = plan(record, lbvms, view, datetime.now(UTC), rng=random.Random(1))
    repository.write_status(lb_id, decided.status, [])
    return decided.status


def _two_serving_lbvms(cloud: Cloud, lb_id: str) -> dict[str, str]:
    """Two Routable LBVMs on the spec's template, ready on version 1: LBVM id -> its instance."""
    record = LoadBalancerRepository(cloud.dynamodb, cloud.table).get(lb_id)
    assert record is not None
    template = template_of(record.spec).description
    instances = {"lbvm-0000000000a1": "i-0aaaaaaaaaaaaaaa1", "lbvm-0000000000b2": "i-0bbbbbbbbbbbbbbb2"}
    for lbvm_id, instance in instances.items():
        lbvm_record(
            cloud,
            lb_id,
            lbvm_id=lbvm_id,
            instance_id=instance,
            state="Routable",
            agent_state="ready",
            applied_config_version=1,
            launch_template=template,
        )
    return instances


def test_during_a_staged_config_change_each_lbvm_is_told_and_served_its_own_version(
    cloud: Cloud, api: Api, lb: dict[str, Any], spec: dict[str, Any]
) -> None:
    instances = _two_serving_lbvms(cloud, lb["id"])
    assert _tick(cloud, lb["id"]).config is not None  # the planner's first word: everyone on version 1

    def role(lbvm_id: str) -> str:
        return f"arn:aws:sts::123456789012:assumed-role/lbcp-lbvm/{instances[lbvm_id]}"

    def fetch(lbvm_id: str) -> dict[str, Any]:
        response = invoke_agent_endpoint(
            "GET", "/v1/agent/config", query=f"lbvmId={lbvm_id}&loadBalancerId={lb['id']}", principal_arn=role(lbvm_id)
        )
        assert response.status == 200
        result: dict[str, Any] = response.json()
        return result

    sequence = iter(range(1, 100))

    def told(lbvm_id: str, **changes: Any) -> int:
        body = beat(lb["id"], sequence=next(sequence), lbvmId=lbvm_id, instanceId=instances[lbvm_id], **changes)
        response = send(body, principal=role(lbvm_id))
        assert response.status == 200
        return int(response.json()["desiredConfigVersion"])

    backends = [dict(backend) for backend in spec["backends"]]
    old_port = backends[0]["targets"][0]["port"]
    backends[0]["targets"] = [{**backends[0]["targets"][0], "port": old_port + 1}]
    patched = api.request(
        "PATCH",
        f"/v1/load-balancers/{lb['id']}",
        {"backends": backends},
        headers={"Content-Type": "application/merge-patch+json", "If-Match": '"1"'},
    )
    assert patched.status == 200
    # Until the planner decides, nobody is told version 2.
    assert {lbvm_id: told(lbvm_id) for lbvm_id in instances} == dict.fromkeys(instances, 1)
    rollout = _tick(cloud, lb["id"]).config_rollout
    assert rollout is not None and rollout.step == "Canary"
    [canary] = rollout.canary_lbvms
    [other] = set(instances) - {canary}
    assert (told(canary), told(other)) == (2, 1)
    served = {lbvm_id: fetch(lbvm_id) for lbvm_id in instances}
    assert (served[canary]["configVersion"], served[other]["configVersion"]) == (2, 1)
    assert served[canary]["spec"]["backends"][0]["targets"][0]["port"] == old_port + 1
    assert served[other]["spec"]["backends"][0]["targets"][0]["port"] == old_port  # version 1, from its copy
    # The canary's proxy refuses version 2: the planner rolls back, and both are told (and served) version 1.
    told(canary, error="haproxy -c: config refused", appliedConfigVersion=1)
    after = _tick(cloud, lb["id"])
    assert after.config_rollout is not None and after.config_rollout.rejected
    assert (told(canary), told(other)) == (1, 1)
    assert fetch(canary)["configVersion"] == 1
    assert fetch(canary)["spec"]["backends"][0]["targets"][0]["port"] == old_port


def test_accepted_heartbeats_are_counted_in_the_heartbeats_metric(
    cloud: Cloud, lb: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lbcp.adapters.app_metrics import Tally
    from lbcp.api.routes import agent
    from lbcp.models.app_metrics import METRIC_HEARTBEATS, SERVICE_AGENT_API
    from tests.fleet.test_app_metrics import datapoints, emf_lines

    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    # A period of 0: every accepted heartbeat is published at once (a minute's worth in AWS).
    monkeypatch.setattr(agent, "HEARTBEATS", Tally(METRIC_HEARTBEATS, period_seconds=0))
    lbvm_record(cloud, lb["id"], state="Routable")
    capsys.readouterr()
    other = "arn:aws:sts::123456789012:assumed-role/lbcp-lbvm/i-0fffffffffffffff0"
    assert send(beat(lb["id"]), principal=other).status == 403
    for sequence in (1, 2):
        assert send(beat(lb["id"], sequence=sequence)).status == 200
    lines = emf_lines(capsys.readouterr().out)
    assert len(lines) == 2  # the refused one is not a heartbeat received
    assert all(
        datapoints([line]) == {(METRIC_HEARTBEATS, (("service", SERVICE_AGENT_API),)): (1.0, "Count")} for line in lines
    )


def test_an_lbvm_launched_before_the_agent_endpoint_is_served_through_the_http_api_and_counted(
    cloud: Cloud, lb: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its user data names the HTTP API: an upgrade must keep hearing it, and say how many such requests remain."""
    from lbcp.adapters.app_metrics import Tally
    from lbcp.api import agent_app
    from lbcp.models.app_metrics import METRIC_AGENT_REQUESTS_VIA_HTTP_API, SERVICE_AGENT_API
    from tests.fleet.test_app_metrics import datapoints, emf_lines

    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.setattr(agent_app, "VIA_HTTP_API", Tally(METRIC_AGENT_REQUESTS_VIA_HTTP_API, period_seconds=0))
    arn, token = waiting_execution(cloud, "legacy", TimeoutSeconds=60)
    lbvm_record(cloud, lb["id"], callback_kind="first-heartbeat", callback_token=token)
    capsys.readouterr()
    body = json.dumps(beat(lb["id"])).encode()
    headers = {"Content-Type": "application/json"}
    ready = invoke_agent_endpoint(
        "POST", "/v1/agent/heartbeat", headers=headers, body=body, principal_arn=ROLE_SESSION, via_http_api=True
    )
    assert ready.status == 200
    assert ready.json()["desiredConfigVersion"] == 1
    assert execution_status(arn) == "SUCCEEDED"  # its first heartbeat completes its callback as through the URL
    config = invoke_agent_endpoint(
        "GET",
        "/v1/agent/config",
        query=f"lbvmId={LBVM_ID}&loadBalancerId={lb['id']}",
        principal_arn=ROLE_SESSION,
        via_http_api=True,
    )
    assert config.status == 200
    assert (config.json()["configVersion"], config.json()["spec"]["name"]) == (1, "web")
    counted = [
        line
        for line in emf_lines(capsys.readouterr().out)
        if datapoints([line])
        == {(METRIC_AGENT_REQUESTS_VIA_HTTP_API, (("service", SERVICE_AGENT_API),)): (1.0, "Count")}
    ]
    assert len(counted) == 2
    # Through the function URL, nothing is counted.
    assert send(beat(lb["id"], sequence=2)).status == 200
    assert not [
        line
        for line in emf_lines(capsys.readouterr().out)
        if (METRIC_AGENT_REQUESTS_VIA_HTTP_API, (("service", SERVICE_AGENT_API),)) in datapoints([line])
    ]


def test_agents_that_preload_are_told_the_new_version_first_and_old_agents_never_see_the_field(
    cloud: Cloud, api: Api, lb: dict[str, Any], spec: dict[str, Any]
) -> None:
    instances = _two_serving_lbvms(cloud, lb["id"])
    modern, old = instances
    sequence = iter(range(1, 100))

    def role(lbvm_id: str) -> str:
        return f"arn:aws:sts::123456789012:assumed-role/lbcp-lbvm/{instances[lbvm_id]}"

    def reply(lbvm_id: str, **changes: Any) -> dict[str, Any]:
        body = beat(lb["id"], sequence=next(sequence), lbvmId=lbvm_id, instanceId=instances[lbvm_id], **changes)
        response = send(body, principal=role(lbvm_id))
        assert response.status == 200
        answer: dict[str, Any] = response.json()
        return answer

    def fetch(lbvm_id: str, version: int) -> ApiResponse:
        query = f"lbvmId={lbvm_id}&loadBalancerId={lb['id']}&version={version}"
        return invoke_agent_endpoint("GET", "/v1/agent/config", query=query, principal_arn=role(lbvm_id))

    capable = {"capabilities": ["preload"]}
    reply(modern, **capable)
    reply(old)
    _tick(cloud, lb["id"])
    backends = [dict(backend) for backend in spec["backends"]]
    port = backends[0]["targets"][0]["port"]
    backends[0]["targets"] = [{**backends[0]["targets"][0], "port": port + 1}]
    patched = api.request(
        "PATCH",
        f"/v1/load-balancers/{lb['id']}",
        {"backends": backends},
        headers={"Content-Type": "application/merge-patch+json", "If-Match": '"1"'},
    )
    assert patched.status == 200
    rollout = _tick(cloud, lb["id"]).config_rollout
    assert rollout is not None and rollout.step == "Preload"
    told = reply(modern, **capable)
    assert (told["desiredConfigVersion"], told["preloadConfigVersion"]) == (1, 2)
    assert "preloadConfigVersion" not in reply(old)  # an agent from before preloading refuses unknown fields
    offered = fetch(modern, 2)
    assert offered.status == 200 and offered.json()["configVersion"] == 2
    assert offered.json()["spec"]["backends"][0]["targets"][0]["port"] == port + 1
    refused = fetch(modern, 3)
    assert refused.status == 409 and refused.json()["errors"][0]["field"] == "version"
    assert fetch(old, 2).status == 409  # not offered to an agent that cannot preload
    # Ready: the planner moves on to the canary, which is told to switch.
    reply(modern, preload={"version": 2}, **capable)
    moved = _tick(cloud, lb["id"]).config_rollout
    assert moved is not None and moved.step == "Canary"
