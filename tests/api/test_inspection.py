"""GET /v1/load-balancers/{id}/lbvms/{lbvmId} and the heartbeat time in the status, through the real API handler."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from lbcp.dal.lbvms import LbvmRepository
from lbcp.dal.repository import LoadBalancerRepository
from lbcp.models.events import Event
from lbcp.models.lbvm import Lbvm
from lbcp.models.status import LbvmStatus
from tests.conftest import Api, Cloud

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ARN = "arn:aws:states:us-east-1:123456789012:execution:lbcp-lifecycle:lbvm-00000000000a"


def _lbvm(lb_id: str, lbvm_id: str, instance_id: str | None, **changes: Any) -> Lbvm:
    fields: dict[str, Any] = {
        "lbvm_id": lbvm_id, "load_balancer_id": lb_id, "subnet_id": "subnet-0123456789abcdef0", "state": "Routable",
        "state_since": T0, "version": 1, "launched_generation": 1, "created_at": T0,
        "launch_reason": "launching an LBVM in subnet-0123456789abcdef0: 0 of 2 desired LBVMs are routable",
        "instance_id": instance_id, "callback_kind": "heartbeats", "callback_token": "secret-task-token",
    }  # fmt: skip
    return Lbvm(**{**fields, **changes})


def _event(minutes: int, message: str, **fields: Any) -> Event:
    return Event(time=T0 + timedelta(minutes=minutes), type="Normal", reason="Routable", message=message, **fields)


def _create(api: Api, spec: dict[str, Any]) -> str:
    response = api.create(spec)
    assert response.status == 201, response.json()
    return str(response.json()["id"])


def test_an_lbvm_shows_its_record_its_execution_and_only_its_own_events_newest_first(
    api: Api, cloud: Cloud, spec: dict[str, Any]
) -> None:
    lb_id = _create(api, spec)
    lbvms = LbvmRepository(cloud.dynamodb, cloud.table)
    mine = _lbvm(
        lb_id, "lbvm-00000000000a", "i-0000000000000000a", execution_arn=ARN, applied_config_version=1,
        last_heartbeat_at=T0 + timedelta(minutes=9), agent_error="haproxy refused the config",
        drain_requested_at=T0 + timedelta(minutes=10), drain_reason="scale-in",
    )  # fmt: skip
    lbvms.create(mine)
    lbvms.create(_lbvm(lb_id, "lbvm-00000000000b", "i-0000000000000000b"))
    events = LoadBalancerRepository(cloud.dynamodb, cloud.table)
    events.append_event(lb_id, _event(1, "launching an LBVM", lbvm_id="lbvm-00000000000a"))
    events.append_event(lb_id, _event(2, "lbvm-00000000000a i-0000000000000000a Routable"))  # before lbvmId existed
    events.append_event(lb_id, _event(3, "lbvm-00000000000b i-0000000000000000b Routable", lbvm_id="lbvm-00000000000b"))
    events.append_event(lb_id, _event(4, "i-0000000000000000a is registered but not routable"))

    response = api.request("GET", f"/v1/load-balancers/{lb_id}/lbvms/lbvm-00000000000a")

    assert response.status == 200, response.json()
    body = response.json()
    assert body["launchReason"] == mine.launch_reason
    assert (body["drainReason"], body["agentError"], body["appliedConfigVersion"]) == (
        "scale-in", "haproxy refused the config", 1,
    )  # fmt: skip
    assert body["lastHeartbeatAt"] == "2026-12-01T12:09:00Z"
    assert body["executionArn"] == ARN
    assert body["executionConsoleUrl"] == (
        f"https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/v2/executions/details/{ARN}"
    )
    assert body["waitingFor"] == "heartbeats"
    assert b"secret-task-token" not in response.body
    assert [event["message"] for event in body["events"]] == [
        "i-0000000000000000a is registered but not routable",
        "lbvm-00000000000a i-0000000000000000a Routable",
        "launching an LBVM",
    ]
    assert body["eventsTruncated"] is False


def test_an_unknown_lbvm_is_404_naming_lbvm_id_and_a_malformed_one_400(api: Api, spec: dict[str, Any]) -> None:
    lb_id = _create(api, spec)
    missing = api.request("GET", f"/v1/load-balancers/{lb_id}/lbvms/lbvm-0000000000ff")
    assert missing.status == 404
    assert missing.header("Content-Type") == "application/problem+json"
    assert [error["field"] for error in missing.json()["errors"]] == ["lbvmId"]
    malformed = api.request("GET", f"/v1/load-balancers/{lb_id}/lbvms/not-an-lbvm")
    assert malformed.status == 400
    assert malformed.header("Content-Type") == "application/problem+json"
    assert [error["field"] for error in malformed.json()["errors"]] == ["lbvmId"]
    no_lb = api.request("GET", "/v1/load-balancers/lb-00000000000000bad/lbvms/lbvm-0000000000ff")
    assert no_lb.status == 404
    assert [error["field"] for error in no_lb.json()["errors"]] == ["id"]


def test_the_status_of_one_load_balancer_shows_each_lbvm_s_last_heartbeat_from_its_record(
    api: Api, cloud: Cloud, spec: dict[str, Any]
) -> None:
    lb_id = _create(api, spec)
    repository = LoadBalancerRepository(cloud.dynamodb, cloud.table)
    record = repository.get(lb_id)
    assert record is not None
    vm = _lbvm(lb_id, "lbvm-00000000000a", "i-0000000000000000a", last_heartbeat_at=T0 + timedelta(seconds=30))
    LbvmRepository(cloud.dynamodb, cloud.table).create(vm)
    shown = LbvmStatus(
        lbvm_id=vm.lbvm_id, instance_id=vm.instance_id, subnet_id=vm.subnet_id, state=vm.state,
        launch_reason=vm.launch_reason,
    )  # fmt: skip
    repository.write_status(lb_id, record.status.model_copy(update={"lbvms": [shown]}), [], [])

    [lbvm] = api.request("GET", f"/v1/load-balancers/{lb_id}").json()["status"]["lbvms"]

    assert lbvm["lastHeartbeatAt"] == "2026-12-01T12:00:30Z"
    assert lbvm["launchReason"] == vm.launch_reason
