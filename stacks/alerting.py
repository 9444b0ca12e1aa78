"""Where every alarm of the control plane notifies: one KMS-encrypted, SSL-only SNS topic.

Every alarm goes through ``Alerting.watch``, which gives it the topic as its
alarm action and as its OK action: whoever is paged also hears when it is over.
The topic's subscriptions are the operator's (README: "Alerts"); one email
address can be subscribed from cdk context (``lbcp:alerts``, ``stacks.config``),
which AWS confirms by mail before it delivers anything.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import CfnResource, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct, IConstruct

from stacks.config import AlertsConfig

# What each alarm means and what to do, one section per alarm slug.
RUNBOOK: Final = "docs/runbook.md"
# The logical ids the topic, its policy and its key had when the consistency checker owned them:
# kept, so that deploying over an older stack updates that topic in place and the subscriptions
# made by hand survive (a new logical id would replace the topic, and drop them silently).
KEPT_LOGICAL_IDS: Final = {
    "topic": "ConsistencyAlarmTopicFBEF9923",
    "policy": "ConsistencyAlarmTopicPolicy836B0BF2",
    "key": "ConsistencyAlarmTopicKey5C26077E",
}


def alarm_name(scope: Construct, slug: str) -> str:
    """``<stack>-<slug>``: the name in the page, and the runbook section's heading."""
    return f"{Stack.of(scope).stack_name}-{slug}"


def described(slug: str, what: str) -> str:
    return f"{what}. Runbook: {RUNBOOK}#{slug}"


class Alerting(Construct):
    """The alarm topic, its key, the optional email subscription, and the alarms given to it."""

    def __init__(self, scope: Construct, construct_id: str, *, config: AlertsConfig) -> None:
        super().__init__(scope, construct_id)
        # A key of our own: CloudWatch alarms cannot publish to a topic under the AWS-managed SNS key.
        self.key = kms.Key(self, "TopicKey", description="lbcp alarms topic", enable_key_rotation=True)
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                resources=["*"],
            )
        )
        self.topic = sns.Topic(
            self, "Topic", display_name="lbcp control plane alarms", master_key=self.key, enforce_ssl=True
        )
        self._keep_logical_id(self.key, KEPT_LOGICAL_IDS["key"])
        self._keep_logical_id(self.topic, KEPT_LOGICAL_IDS["topic"])
        self._keep_logical_id(self.topic.node.find_child("Policy"), KEPT_LOGICAL_IDS["policy"])
        if config.email is not None:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.email))
        self._action = actions.SnsAction(self.topic)
        self.alarms: list[cloudwatch.Alarm] = []

    @staticmethod
    def _keep_logical_id(construct: IConstruct, logical_id: str) -> None:
        resource = construct.node.default_child
        assert isinstance(resource, CfnResource)
        resource.override_logical_id(logical_id)

    def watch(self, alarm: cloudwatch.Alarm) -> cloudwatch.Alarm:
        """``alarm`` notifies the topic when it fires and when it clears."""
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        self.alarms.append(alarm)
        return alarm
