"""The public helpers of the stacks (ARNs, owner-tag conditions, storage actions) and the template diff."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from lbcp import LB_ID_TAG_KEY, PRODUCT_TAG_KEY, PRODUCT_TAG_VALUE
from stacks import arns, owner_tags, storage
from tests.cdk import template_diff

pytestmark = pytest.mark.cdk

STACKS_DIR = Path(__file__).resolve().parents[2] / "stacks"


def _resolve(value: str) -> Any:
    """``value`` as it renders in a stack with a concrete account and region."""
    from aws_cdk import App, Environment, Stack

    stack = Stack(App(), "Arns", env=Environment(account="123456789012", region="eu-west-1"))
    return stack.resolve(value)


def _join(*parts: Any) -> dict[str, Any]:
    return {"Fn::Join": ["", list(parts)]}


PARTITION, REGION, ACCOUNT = ({"Ref": "AWS::Partition"}, {"Ref": "AWS::Region"}, {"Ref": "AWS::AccountId"})


# --- arns ---------------------------------------------------------------------------------------


def test_arns_are_in_pseudo_parameters_even_in_a_concrete_environment() -> None:
    assert _resolve(arns.ec2("instance")) == _join("arn:", PARTITION, ":ec2:", REGION, ":", ACCOUNT, ":instance/*")
    assert _resolve(arns.state_machine("Lbcp-lbvm-lifecycle")) == _join(
        "arn:", PARTITION, ":states:", REGION, ":", ACCOUNT, ":stateMachine:Lbcp-lbvm-lifecycle"
    )
    assert _resolve(arns.executions("Lbcp-lbvm-drain")) == _join(
        "arn:", PARTITION, ":states:", REGION, ":", ACCOUNT, ":execution:Lbcp-lbvm-drain:*"
    )


def test_arns_of_what_no_account_owns_have_an_empty_account() -> None:
    assert _resolve(arns.any_image()) == _join("arn:", PARTITION, ":ec2:", REGION, "::image/*")
    assert _resolve(arns.default_image_parameters()) == _join(
        "arn:", PARTITION, ":ssm:", REGION, "::parameter/aws/service/ami-amazon-linux-latest/*"
    )
    assert _resolve(arns.hosted_zone("Z123")) == _join("arn:", PARTITION, ":route53:::hostedzone/Z123")


def test_entry_arns_are_fenced_by_the_name_prefix() -> None:
    from lbcp.entry.names import NAME_PREFIX

    for pattern, resource in (
        (arns.entry_load_balancers(), f":loadbalancer/net/{NAME_PREFIX}*/*"),
        (arns.entry_target_groups(), f":targetgroup/{NAME_PREFIX}*/*"),
        (arns.entry_listeners(), f":listener/net/{NAME_PREFIX}*/*/*"),
    ):
        assert _resolve(pattern) == _join("arn:", PARTITION, ":elasticloadbalancing:", REGION, ":", ACCOUNT, resource)


# --- owner tags ---------------------------------------------------------------------------------


def test_owner_tag_conditions_name_our_product_tag() -> None:
    assert {"StringEquals": {f"aws:RequestTag/{PRODUCT_TAG_KEY}": PRODUCT_TAG_VALUE}} == owner_tags.REQUEST_TAGGED
    assert {"StringEquals": {f"ec2:ResourceTag/{PRODUCT_TAG_KEY}": PRODUCT_TAG_VALUE}} == owner_tags.EC2_RESOURCE_TAGGED
    assert {"StringEquals": {f"aws:ResourceTag/{PRODUCT_TAG_KEY}": PRODUCT_TAG_VALUE}} == owner_tags.RESOURCE_TAGGED
    assert {
        "StringEquals": {f"aws:ResourceTag/{PRODUCT_TAG_KEY}": PRODUCT_TAG_VALUE},
        "Null": {f"aws:ResourceTag/{LB_ID_TAG_KEY}": "false"},
    } == owner_tags.RESOURCE_TAGGED_FOR_A_LOAD_BALANCER


def test_tagging_only_inside_creates() -> None:
    assert owner_tags.tagging_only_inside("ec2:CreateAction", "CreateSecurityGroup") == {
        "StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"}
    }
    assert owner_tags.tagging_only_inside("ec2:CreateAction", "RunInstances", "CreateNetworkInterface") == {
        "StringEquals": {"ec2:CreateAction": ["RunInstances", "CreateNetworkInterface"]}
    }


# --- storage actions ----------------------------------------------------------------------------

ACTION_SETS = {
    "ITEM_ACTIONS": storage.ITEM_ACTIONS,
    "RECORD_UPDATE_ACTIONS": storage.RECORD_UPDATE_ACTIONS,
    "RECORD_READ_ACTIONS": storage.RECORD_READ_ACTIONS,
    "RECORD_WRITE_ACTIONS": storage.RECORD_WRITE_ACTIONS,
    "INDEX_QUERY_ACTIONS": storage.INDEX_QUERY_ACTIONS,
}


@pytest.mark.parametrize("name", sorted(ACTION_SETS))
def test_storage_actions_are_item_level(name: str) -> None:
    actions = ACTION_SETS[name]
    assert actions and len(set(actions)) == len(actions)
    # Never a scan, a batch, a wildcard or table management.
    assert all(
        re.fullmatch(r"dynamodb:(GetItem|PutItem|UpdateItem|DeleteItem|ConditionCheckItem|Query)", a) for a in actions
    )
    assert set(actions) <= set(storage.ITEM_ACTIONS)


# --- one place for each concept -----------------------------------------------------------------


def test_no_private_helper_is_imported_across_stack_modules() -> None:
    private_imports = [
        f"{path.name}: {line.strip()}"
        for path in sorted(STACKS_DIR.glob("*.py"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if re.match(r"\s*from stacks(\.\w+)? import .*\b_\w", line)
    ]
    assert private_imports == []


def test_arn_patterns_are_built_only_in_arns() -> None:
    builders = [
        f"{path.name}: {line.strip()}"
        for path in sorted(STACKS_DIR.glob("*.py"))
        if path.name != "arns.py"
        for line in path.read_text(encoding="utf-8").splitlines()
        if 'f"arn:' in line
    ]
    assert builders == []


# --- the template diff (tests/cdk/template_diff.py) ---------------------------------------------


def _template(policy_id: str, *, action: str = "s3:GetObject", asset: str = "a" * 64) -> dict[str, Any]:
    return {
        "Resources": {
            "FunctionAAAAAAAA": {
                "Type": "AWS::Lambda::Function",
                "Properties": {"Code": {"S3Key": f"{asset}.zip"}},
                "DependsOn": [policy_id],
            },
            policy_id: {
                "Type": "AWS::IAM::Policy",
                "Properties": {"PolicyName": policy_id, "PolicyDocument": {"Statement": [{"Action": action}]}},
            },
        }
    }


def test_template_diff_ignores_asset_hashes_and_id_suffixes() -> None:
    before = _template("FleetPolicy1CC2AA41", asset="a" * 64)
    after = _template("FleetPolicy9F367894", asset="b" * 64)
    assert template_diff.compare(before, after) == []


def test_template_diff_reports_renames_and_changes() -> None:
    assert template_diff.compare(_template("FleetPolicy1CC2AA41"), _template("ReconcilerPolicy1CC2AA41")) == [
        "R Resources/FleetPolicy -> Resources/ReconcilerPolicy (same properties)"
    ]
    changed = template_diff.compare(_template("PolicyAAAAAAAA"), _template("PolicyAAAAAAAA", action="s3:PutObject"))
    assert changed == [
        '~ /Resources/Policy/Properties/PolicyDocument/Statement[0]/Action: "s3:GetObject" -> "s3:PutObject"'
    ]
