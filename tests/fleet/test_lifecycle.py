"""The LBVM lifecycle and drain state machines (``statemachines/*.asl.json``) run by moto's interpreter.

Real ASL, real tasks function (in-process through ``lbcp_local.lambda_bridge``),
real entry adapter against moto's ELBv2 and Route53; waits and retry intervals
fast-forwarded (``tests/fleet/sfn.py``); task timeouts are real but short, from
the execution input. Only the agent and the reconciler's drain request are
simulated (``tests/fleet/harness.py``).
"""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from lbcp import LB_ID_TAG_KEY, PRODUCT_TAG_KEY
from lbcp.dal.lbvms import to_item
from lbcp.lifecycle.executions import execution_arn
from lbcp.lifecycle.protocol import LBVM_ID_TAG_KEY
from lbcp_local.seed import example_spec
from tests.fleet.harness import Fleet, wait_until


def _pool(fleet: Fleet, **spec_overrides: Any) -> tuple[str, Any]:
    return fleet.create_load_balancer({**example_spec(fleet.cloud.account), **spec_overrides})


def _routable(fleet: Fleet, lb_id: str, lbvm_id: str) -> None:
    fleet.wait_for_callback(lb_id, lbvm_id, "first-heartbeat")
    fleet.heartbeat(lb_id, lbvm_id)
    fleet.wait_for_callback(lb_id, lbvm_id, "heartbeats")


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in resource.get("Tags", resource.get("TagSet", []))}


# --- launch and the happy path -------------------------------------------------------


def test_happy_path_launches_registers_and_stays_routable_while_heartbeats_arrive(fleet: Fleet) -> None:
    lb_id, spec = _pool(fleet)
    lifecycle_input = fleet.lifecycle_input(lb_id, spec, unhealthy=2)
    lbvm_id = lifecycle_input.lbvm_id
    arn = fleet.start(lifecycle_input)
    assert arn.endswith(f":{lbvm_id}")
    assert fleet.start(lifecycle_input) == arn  # named after the LBVM: a second start is the same execution

    pending = fleet.wait_for_callback(lb_id, lbvm_id, "first-heartbeat")
    assert pending.state == "Pending" and pending.execution_arn == arn
    assert fleet.registered(lb_id, spec) == frozenset()  # not before the agent is up
    assert fleet.heartbeat(lb_id, lbvm_id, state="starting") == "ignored"  # up, but not serving yet
    assert fleet.lbvm(lb_id, lbvm_id).state == "Pending"
    with fleet.agent(lb_id, lbvm_id, interval=0.2):
        routable = fleet.wait_for_state(lb_id, lbvm_id, "Routable")
        time.sleep(3)  # longer than the unhealthy timeout: the heartbeats keep it routable
        assert fleet.lbvm(lb_id, lbvm_id).state == "Routable"
    assert fleet.registered(lb_id, spec) == frozenset({routable.instance_id})

    (instance,) = fleet.instances(lbvm_id)
    (interface,) = fleet.interfaces(lbvm_id)
    assert routable.instance_id == instance["InstanceId"]
    assert routable.network_interface_id == interface["NetworkInterfaceId"]
    assert routable.private_ip == interface["PrivateIpAddress"]
    assert instance["NetworkInterfaces"][0]["NetworkInterfaceId"] == interface["NetworkInterfaceId"]
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert instance["IamInstanceProfile"]["Arn"] == fleet.machinery.instance_profile_arn
    for resource in (instance, interface):
        assert {PRODUCT_TAG_KEY: "lbcp", LB_ID_TAG_KEY: lb_id, LBVM_ID_TAG_KEY: lbvm_id}.items() <= _tags(
            resource
        ).items()
    volumes = fleet.cloud.ec2.describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [instance["InstanceId"]]}]
    )["Volumes"]
    assert volumes and all(_tags(volume).get(LBVM_ID_TAG_KEY) == lbvm_id for volume in volumes)
    user_data = fleet.cloud.ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")
    assert base64.b64decode(user_data["UserData"]["Value"]) == base64.b64decode(lifecycle_input.launch.user_data)

    assert fleet.event_reasons(lb_id)[-2:] == ["Pending", "Routable"]
    routable_event = fleet.events(lb_id)[-1]
    assert routable_event.instance_id == routable.instance_id
    assert "registered with the entry (2 target groups)" in routable_event.message


def test_pending_timeout_drains_terminates_and_says_why(fleet: Fleet) -> None:
    lb_id, spec = _pool(fleet)
    lifecycle_input = fleet.lifecycle_input(lb_id, spec, pending=1)
    lbvm_id = lifecycle_input.lbvm_id
    arn = fleet.start(lifecycle_input)

    assert fleet.wait_for_execution(arn)["status"] == "SUCCEEDED"
    lbvm = fleet.lbvm(lb_id, lbvm_id)
    assert lbvm.state == "Terminated"
    assert lbvm.drain_reason == "pending-timeout"
    assert lbvm.end_reason == "pending-timeout: skipped"
    assert lbvm.terminated_at is not None and lbvm.callback_token is None
    assert "expiresAt" in to_item(lbvm)
    stored = fleet.cloud.dynamodb.get_item(
        TableName=fleet.cloud.table, Key={"pk": {"S": f"LB#{lb_id}"}, "sk": {"S": f"LBVM#{lbvm_id}"}}
    )["Item"]
    assert int(stored["expiresAt"]["N"]) > int(lbvm.terminated_at.timestamp())
    assert fleet.instances(lbvm_id) == []
    assert len(fleet.all_instances(lbvm_id)) == 1
    assert fleet.interfaces(lbvm_id) == []
    assert fleet.registered(lb_id, spec) == frozenset()
    assert fleet.event_reasons(lb_id)[-3:] == ["Pending", "Draining", "Terminated"]
    assert "Draining (pending-timeout)" in fleet.events(lb_id)[-2].message


# --- heartbeat loss ------------------------------------------------------------------


def test_heartbeat_loss_deregisters_at_once_and_a_returning_agent_is_registered_again(fleet: Fleet) -> None:
    lb_id, spec = _pool(fleet)
    lifecycle_input = fleet.lifecycle_input(lb_id, spec, unhealthy=1, recovery=30)
    lbvm_id = lifecycle_input.lbvm_id
    fleet.start(lifecycle_input)
    with fleet.agent(lb_id, lbvm_id):  # alive while the registration is checked
        fleet.wait_for_callback(lb_id, lbvm_id, "heartbeats")
        instance_id = fleet.lbvm(lb_id, lbvm_id).instance_id
        assert fleet.registered(lb_id, spec) == frozenset({instance_id})

    unroutable = fleet.wait_for_callback(lb_id, lbvm_id, "recovery")  # silence: no heartbeats sent
    assert unroutable.state == "Unroutable"
    assert fleet.registered(lb_id, spec) == frozenset()
    event = fleet.events(lb_id)[-1]
    assert event.reason == "Unroutable" and event.type == "Warning"
    assert event.message.startswith(f"{lbvm_id} {instance_id} Unroutable: no heartbeat for 1 s")
    assert "deregistered from the entry" in event.message

    assert fleet.heartbeat(lb_id, lbvm_id) == "recovered"
    fleet.wait_for_state(lb_id, lbvm_id, "Routable")
    fleet.wait_for_callback(lb_id, lbvm_id, "heartbeats")
    assert fleet.registered(lb_id, spec) == frozenset({instance_id})
    assert fleet.event_reasons(lb_id)[-1] == "Recovered"


def test_heartbeat_loss_without_recovery_replaces_the_lbvm(fleet: Fleet) -> None:
    lb_id, spec = _pool(fleet)
    lifecycle_input = fleet.lifecycle_input(lb_id, spec, unhealthy=1, recovery=1)
    lbvm_id = lifecycle_input.lbvm_id
    arn = fleet.start(lifecycle_input)
    _routable(fleet, lb_id, lbvm_id)

    assert fleet.wait_for_execution(arn)["status"] == "SUCCEEDED"
    lbvm = fleet.lbvm(lb_id, lbvm_id)
    assert (lbvm.state, lbvm.drain_reason, lbvm.end_reason) == ("Terminated", "unhealthy", "unhealthy: skipped")
    assert fleet.instances(lbvm_id) == [] and fleet.interfaces(lbvm_id) == []
    assert fleet.event_reasons(lb_id)[-4:] == ["Routable", "Unroutable", "Draining", "Terminated"]


# --- drains --------------------------------------------------------------------------


def test_drain_deregisters_first_and_ends_when_connections_fall_below_the_threshold(fleet: Fleet) -> None:
    lb_id, spec = _pool(fleet)
    lifecycle_input = fleet.lifecycle_input(lb_id, spec, unhealthy=30, threshold=3, drain_timeout=3600)
    lbvm_id = lifecycle_input.lbvm_id
    arn = fleet.start(lifecycle_input)
    _routable(fleet, lb_id, lbvm_id)
    fleet.set_connections(lb_id, lbvm_id, 10)

    assert fleet.request_drain(lb_id, lbvm_id, "scale-in")
    draining = fleet.wait_for_state(lb_id, lbvm_id, "Draining")
    assert draining.drain_deadline is not None and draining.drain_requested_at is not None
    assert (draining.drain_deadline - draining.state_since).total_seconds() == pytest.approx(3600, abs=1)
    wait_until(lambda: fleet.registered(lb_id, spec) == frozenset(), what="deregistration")
    time.sleep(0.5)  # ~10 polls (5 s each, fast-forwarded): still 10 connections, still draining
    assert fleet.lbvm(lb_id, lbvm_id).state == "Draining"
    assert len(fleet.instances(lbvm_id)) == 1

    fleet.set_connections(lb_id, lbvm_id, 2)  # below the threshold of 3
    assert fleet.wait_for_execution(arn)["status"] == "SUCCEEDED"
    lbvm = fleet.lbvm(lb_id, lbvm_id)
    assert (lbvm.state, lbvm.end_reason) == ("Terminated", "scale-in: drained")
    assert fleet.instances(lbvm_id) == [] and fleet.interfaces(lbvm_id) == []
    drain = fleet.sfn.describe_execution(
        executionArn=execution_arn(fleet.machinery.drain_state_machine_arn, f"drain-{lbvm_id}")
    )
    assert drain["status"] == "SUCCEEDED"
    assert "connections fell to 2" in fleet.events(lb_id)[-1].message


def test_a_drained_lbvm_keeps_accepting_for_the_deregistration_grace_before_it_drains(fleet: Fleet) -> None:
    """The entry still sends new connections for a while after deregistration: the LBVM must take them."""
    lb_id, spec = _pool(fleet)
    # 100 s of grace, 1 s here (waits run at 1/100): no connections, yet no termination before it ends.
    # The test heartbeats once: an unhealthy timeout of 300 s (3 s here) keeps a loaded machine's slow drain
    # request from racing the heartbeat timeout (at 30 s, 0.3 s here, a full parallel run lost it once).
    lifecycle_input = fleet.lifecycle_input(lb_id, spec, unhealthy=300, threshold=1, drain_timeout=600, grace=100)
    lbvm_id = lifecycle_input.lbvm_id
    arn = fleet.start(lifecycle_input)
    _routable(fleet, lb_id, lbvm_id)

    assert fleet.request_drain(lb_id, lbvm_id, "scale-in")
    wait_until(lambda: fleet.registered(lb_id, spec) == frozenset(), what="deregistration")
    draining = fleet.lbvm(lb_id, lbvm_id)
    assert draining.state == "Draining" and draining.accepting_until is not None
    assert draining.drain_deadline is not None
    # The agent's deadline counts the grace and the drain timeout.
    assert (draining.drain_deadline - draining.state_since).total_seconds() == pytest.approx(700, abs=1)
    time.sleep(0.4)  # 40 s of the grace: still serving, still there
    assert fleet.lbvm(lb_id, lbvm_id).state == "Draining"
    assert len(fleet.instances(lbvm_id)) == 1
    assert "still accepting new connections for 100 s" in next(
        event.message for event in fleet.events(lb_id) if event.reason == "Draining"
    )
    assert fleet.wait_for_execution(arn)["status"] == "SUCCEEDED"
    assert fleet.lbvm(lb_id, lbvm_id).end_reason == "scale-in: drained"


def test_drain_ends_at_the_timeout_when_connections_stay(fleet: Fleet) -> None:
    lb_id, spec = _pool(fleet)
    lifecycle_input = fleet.lifecycle_input(lb_id, spec, unhealthy=30, threshold=1, drain_timeout=20, poll=5)
    lbvm_id = lifecycle_input.lbvm_id
    arn = fleet.start(lifecycle_input)
    _routable(fleet, lb_id, lbvm_id)
    fleet.set_connections(lb_id, lbvm_id, 50)

    fleet.request_drain(lb_id, lbvm_id, "rollout")
    assert fleet.wait_for_execution(arn)["status"] == "SUCCEEDED"
    lbvm = fleet.lbvm(lb_id, lbvm_id)
    assert (lbvm.state, lbvm.end_reason) == ("Terminated", "rollout: timeout")
    assert "drain timeout passed with 50 connections still open" in fleet.events(lb_id)[-1].message
    assert fleet.instances(lbvm_id) == [] and fleet.interfaces(lbvm_id) == []


def test_a_drain_requested_before_the_agent_is_up_is_delivered_when_the_callback_registers(fleet: Fleet) -> None:
    lb_id, spec = _pool(fleet)
    lifecycle_input = fleet.lifecycle_input(lb_id, spec, pending=60)
    lbvm_id = lifecycle_input.lbvm_id
    # Requested while Launching, before any token exists: nobody to wake yet.
    assert fleet.request_drain(lb_id, lbvm_id, "scale-in") is False
    arn = fleet.start(lifecycle_input)

    assert fleet.wait_for_execution(arn)["status"] == "SUCCEEDED"  # well before the 60 s pending timeout
    lbvm = fleet.lbvm(lb_id, lbvm_id)
    assert (lbvm.state, lbvm.drain_reason) == ("Terminated", "scale-in")
    assert "Routable" not in fleet.event_reasons(lb_id)


# --- failures ------------------------------------------------------------------------


def test_launch_steps_failing_transiently_are_retried_without_duplicates(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models import EC2Backend

    calls = {"create_network_interface": 0, "run_instances": 0}
    create_interface = EC2Backend.create_network_interface
    run_instances = EC2Backend.run_instances

    def throttled_create_interface(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["create_network_interface"] += 1
        if calls["create_network_interface"] == 1:  # throttled: nothing created
            raise EC2ClientError("RequestLimitExceeded", "Request limit exceeded.")
        return create_interface(self, *args, **kwargs)

    def lost_response_run_instances(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["run_instances"] += 1
        result = run_instances(self, *args, **kwargs)
        if calls["run_instances"] == 1:  # launched, but the caller never hears of it
            raise EC2ClientError("InternalError", "An internal error has occurred.")
        return result

    monkeypatch.setattr(EC2Backend, "create_network_interface", throttled_create_interface)
    monkeypatch.setattr(EC2Backend, "run_instances", lost_response_run_instances)
    lb_id, spec = _pool(fleet)
    lifecycle_input = fleet.lifecycle_input(lb_id, spec)
    lbvm_id = lifecycle_input.lbvm_id
    fleet.start(lifecycle_input)

    pending = fleet.wait_for_callback(lb_id, lbvm_id, "first-heartbeat")
    assert calls == {"create_network_interface": 2, "run_instances": 1}  # the second launch found the first
    assert [i["InstanceId"] for i in fleet.all_instances(lbvm_id)] == [pending.instance_id]
    assert [i["NetworkInterfaceId"] for i in fleet.interfaces(lbvm_id)] == [pending.network_interface_id]


# moto warns that "Throttling" is not in ELBv2's error model (AWS does answer it): expected here.
@pytest.mark.filterwarnings("ignore:Exception\\(ELBClientError\\) with code Throttling")
def test_an_entry_call_throttled_once_is_retried(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.elbv2.exceptions import ELBClientError
    from moto.elbv2.models import ELBv2Backend

    calls = {"register_targets": 0}
    register_targets = ELBv2Backend.register_targets

    def throttled(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["register_targets"] += 1
        if calls["register_targets"] == 1:
            raise ELBClientError("Throttling", "Rate exceeded")
        return register_targets(self, *args, **kwargs)

    monkeypatch.setattr(ELBv2Backend, "register_targets", throttled)
    lb_id, spec = _pool(fleet)
    lifecycle_input = fleet.lifecycle_input(lb_id, spec)
    lbvm_id = lifecycle_input.lbvm_id
    fleet.start(lifecycle_input)
    _routable(fleet, lb_id, lbvm_id)
    assert fleet.registered(lb_id, spec) == frozenset({fleet.lbvm(lb_id, lbvm_id).instance_id})
    assert calls["register_targets"] == 3  # 1 throttled + 2 target groups
    assert "LifecycleFailed" not in fleet.event_reasons(lb_id)


def test_a_failing_step_is_recorded_and_turned_into_a_replacement(fleet: Fleet) -> None:
    lb_id, spec = _pool(fleet)
    lifecycle_input = fleet.lifecycle_input(lb_id, spec)
    lbvm_id = lifecycle_input.lbvm_id
    # The entry loses its target groups: registration cannot succeed, however often it is retried.
    for group in fleet.elbv2.describe_target_groups(Names=[f"lbcp-{lb_id[3:]}-80"])["TargetGroups"]:
        for listener in fleet.elbv2.describe_listeners(LoadBalancerArn=group["LoadBalancerArns"][0])["Listeners"]:
            fleet.elbv2.delete_listener(ListenerArn=listener["ListenerArn"])
        fleet.elbv2.delete_target_group(TargetGroupArn=group["TargetGroupArn"])
    arn = fleet.start(lifecycle_input)
    fleet.wait_for_callback(lb_id, lbvm_id, "first-heartbeat")
    fleet.heartbeat(lb_id, lbvm_id)

    assert fleet.wait_for_execution(arn)["status"] == "SUCCEEDED"
    lbvm = fleet.lbvm(lb_id, lbvm_id)
    assert (lbvm.state, lbvm.drain_reason) == ("Terminated", "replace")
    failure = next(event for event in fleet.events(lb_id) if event.reason == "LifecycleFailed")
    assert failure.type == "Warning"
    assert "EntryNotReady" in failure.message and "so that the reconciler replaces it" in failure.message
    # The record keeps what ended it: the planner tells a fleet whose every launch fails by it.
    assert lbvm.failure is not None and lbvm.failure.startswith("lifecycle step failed (")
    assert "EntryNotReady" in lbvm.failure
    assert fleet.instances(lbvm_id) == [] and fleet.interfaces(lbvm_id) == []


def test_a_missing_record_stops_the_launch_before_anything_is_created(fleet: Fleet) -> None:
    lb_id, spec = _pool(fleet)
    lifecycle_input = fleet.lifecycle_input(lb_id, spec)
    fleet.lbvms.delete(fleet.lbvm(lb_id, lifecycle_input.lbvm_id))
    arn = fleet.start(lifecycle_input)

    described = fleet.wait_for_execution(arn)
    assert described["status"] == "FAILED"
    assert described["error"] == "Lbcp.NotLaunchable"
    assert fleet.interfaces(lifecycle_input.lbvm_id) == []
    assert fleet.all_instances(lifecycle_input.lbvm_id) == []


def test_an_input_with_a_null_instance_profile_launches_without_one(fleet: Fleet) -> None:
    lb_id, spec = _pool(fleet)
    lifecycle_input = fleet.lifecycle_input(lb_id, spec, instance_profile=False)
    lbvm_id = lifecycle_input.lbvm_id
    # The input exactly as pydantic dumps it with the unset profile as null.
    fleet.sfn.start_execution(
        stateMachineArn=fleet.machinery.lifecycle_state_machine_arn,
        name=lbvm_id,
        input=lifecycle_input.model_dump_json(by_alias=True),
    )
    fleet.wait_for_callback(lb_id, lbvm_id, "first-heartbeat")
    (instance,) = fleet.instances(lbvm_id)
    assert "IamInstanceProfile" not in instance


# --- dns mode ------------------------------------------------------------------------


def test_dns_mode_publishes_one_record_per_routable_lbvm_and_removes_it_on_heartbeat_loss(fleet: Fleet) -> None:
    lb_id, spec = _pool(fleet, name="direct", entry={"mode": "dns", "scheme": "internal", "dnsTtlSeconds": 15})
    lifecycle_input = fleet.lifecycle_input(lb_id, spec, unhealthy=1, recovery=1)
    lbvm_id = lifecycle_input.lbvm_id
    arn = fleet.start(lifecycle_input)
    with fleet.agent(lb_id, lbvm_id):  # alive while the record is checked
        fleet.wait_for_callback(lb_id, lbvm_id, "heartbeats")
        lbvm = fleet.lbvm(lb_id, lbvm_id)
        assert fleet.dns_records(lb_id, spec) == {lbvm_id: lbvm.private_ip}
        (record,) = [
            r
            for r in fleet.route53.list_resource_record_sets(HostedZoneId=fleet.hosted_zone_id)["ResourceRecordSets"]
            if r.get("SetIdentifier") == lbvm_id
        ]
    assert record["Name"].rstrip(".") == f"direct.{fleet.dns_domain}"
    assert (record["TTL"], record["MultiValueAnswer"]) == (15, True)

    fleet.wait_for_state(lb_id, lbvm_id, "Unroutable")  # no heartbeats
    assert fleet.dns_records(lb_id, spec) == {}
    assert fleet.wait_for_execution(arn)["status"] == "SUCCEEDED"
    assert fleet.lbvm(lb_id, lbvm_id).state == "Terminated"
