"""The alarm topic: one for the whole control plane, encrypted, SSL only, on every alarm; its email from context."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from stacks.config import CTX_ALERTS, AlertsConfig, parse_alerts

if TYPE_CHECKING:
    from tests.cdk.conftest import Synthesized

pytestmark = pytest.mark.cdk


def test_every_alarm_notifies_the_one_topic_when_it_fires_and_when_it_clears(synthesized: Synthesized) -> None:
    topic_id, _ = synthesized.only("AWS::SNS::Topic")
    alarms = synthesized.resources("AWS::CloudWatch::Alarm")
    assert alarms
    for logical_id, alarm in alarms.items():
        props = alarm["Properties"]
        assert props.get("AlarmActions") == [{"Ref": topic_id}], logical_id
        assert props.get("OKActions") == [{"Ref": topic_id}], logical_id
        assert props.get("ActionsEnabled", True) is True, logical_id
        # Chosen per alarm (stacks.monitoring says why), never CloudFormation's silent default.
        assert props.get("TreatMissingData") in ("breaching", "notBreaching", "ignore", "missing"), logical_id


def test_the_topic_is_encrypted_with_a_rotated_key_cloudwatch_may_use(synthesized: Synthesized) -> None:
    _, topic = synthesized.only("AWS::SNS::Topic")
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = synthesized.template["Resources"][key_id]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    [publish] = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert set(publish["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    (policy,) = synthesized.resources("AWS::SNS::TopicPolicy").values()
    [deny] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert (deny["Effect"], deny["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})


def test_the_topic_keeps_the_logical_ids_deployed_stacks_have(synthesized: Synthesized) -> None:
    # Moved from the consistency checker: a new logical id would replace the topic and drop its subscriptions.
    assert synthesized.only("AWS::SNS::Topic")[0] == "ConsistencyAlarmTopicFBEF9923"
    assert synthesized.only("AWS::SNS::TopicPolicy")[0] == "ConsistencyAlarmTopicPolicy836B0BF2"
    assert synthesized.template["Resources"]["ConsistencyAlarmTopicKey5C26077E"]["Type"] == "AWS::KMS::Key"


def test_by_default_nobody_is_subscribed(synthesized: Synthesized) -> None:
    assert synthesized.context[CTX_ALERTS] == {"email": None}
    assert synthesized.resources("AWS::SNS::Subscription") == {}


def test_it_passes_cdk_nag_with_nothing_acknowledged(synthesized: Synthesized) -> None:
    assert synthesized.passes_nag("Lbcp/Alerting/") == set()


def _alerting_template(config: AlertsConfig) -> dict[str, Any]:
    """Only the construct in a stack of its own: a second synth of the whole app would cost seconds."""
    from aws_cdk import App, Stack
    from aws_cdk.assertions import Template

    from stacks.alerting import Alerting

    stack = Stack(App(), "AlertingOnly")
    Alerting(stack, "Alerting", config=config)
    return dict(Template.from_stack(stack).to_json())


def test_a_configured_email_is_subscribed_to_the_topic() -> None:
    template = _alerting_template(AlertsConfig(email="ops@example.com"))
    resources = template["Resources"]
    [topic_id] = [i for i, r in resources.items() if r["Type"] == "AWS::SNS::Topic"]
    [subscription] = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::SNS::Subscription"]
    assert subscription == {"Protocol": "email", "Endpoint": "ops@example.com", "TopicArn": {"Ref": topic_id}}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ({"email": None}, None),
        ({}, None),
        ({"email": "ops@example.com"}, "ops@example.com"),
        ('{"email": " ops@example.com "}', "ops@example.com"),  # `cdk deploy -c 'lbcp:alerts={...}'`
        ('{"email": null}', None),
    ],
)
def test_alerts_context_is_parsed(raw: Any, expected: str | None) -> None:
    assert parse_alerts(raw).email == expected


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ({"email": "not-an-address"}, "'email'"),
        ({"email": 42}, "'email'"),
        ({"email": "a b@example.com"}, "'email'"),
        ({"emails": ["ops@example.com"]}, "emails"),
        ("ops@example.com", "JSON object"),
        (["ops@example.com"], "an object"),
    ],
)
def test_bad_alerts_context_fails_the_synth_naming_the_key_and_field(raw: Any, names: str) -> None:
    with pytest.raises(ValueError, match=CTX_ALERTS) as failure:
        parse_alerts(raw)
    assert names in str(failure.value)


def test_the_stack_reads_alerts_from_context() -> None:
    from aws_cdk import App

    from stacks.config import ControlPlaneConfig, load_cdk_json_context

    app = App(context={**load_cdk_json_context(), CTX_ALERTS: '{"email": "oncall@example.org"}'})
    assert ControlPlaneConfig.from_context(app).alerts == AlertsConfig(email="oncall@example.org")
