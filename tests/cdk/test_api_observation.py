"""The API function with a hosted zone: the plan preview gets the DNS settings and lists the zone's records only."""

from __future__ import annotations

from typing import Any

import pytest

from lbcp.settings import ENV_DNS_DOMAIN, ENV_HOSTED_ZONE_ID
from stacks.fleet import CTX_DNS_DOMAIN, CTX_HOSTED_ZONE_ID
from tests.cdk.conftest import ACCOUNT, REGION

pytestmark = pytest.mark.cdk

ZONE = "Z0123456789ABCDEFGHIJ"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from aws_cdk import Environment

    from stacks.application import STACK_NAME, build_app

    app, _ = build_app(
        env=Environment(account=ACCOUNT, region=REGION),
        extra_context={"aws:cdk:bundling-stacks": [], CTX_HOSTED_ZONE_ID: ZONE, CTX_DNS_DOMAIN: "lb.example.com"},
        outdir=str(tmp_path_factory.mktemp("cdk.out")),
        builtin_cloudformation_validation=False,
    )
    # Raises on an unacknowledged cdk-nag finding, as the default synth does.
    template: dict[str, Any] = app.synth().get_stack_by_name(STACK_NAME).template
    return template


def _api(template: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    resources = template["Resources"]
    [function] = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Function"
                  and r["Properties"]["Handler"] == "handlers.api.lambda_handler"]  # fmt: skip
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = [
        statement
        for resource in resources.values()
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in resource["Properties"]["Roles"]
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
    ]
    return function, statements


def test_the_api_function_observes_with_the_zone_s_settings_and_reads_only_that_zone(template: dict[str, Any]) -> None:
    function, statements = _api(template)
    variables = function["Properties"]["Environment"]["Variables"]
    assert (variables[ENV_HOSTED_ZONE_ID], variables[ENV_DNS_DOMAIN]) == (ZONE, "lb.example.com")
    route53 = [s for s in statements if any(str(a).startswith("route53:") for a in _list(s["Action"]))]
    assert [_list(s["Action"]) for s in route53] == [["route53:ListResourceRecordSets"]]
    [resource] = _list(route53[0]["Resource"])
    assert ZONE in str(resource) and "*" not in str(resource)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
