"""The ARN patterns the stacks grant on, built in one place.

Always in pseudo parameters (``${AWS::Partition}``, ``${AWS::Region}``,
``${AWS::AccountId}``), never the stack's literal account or region: the
template is the same in every environment, and so are the cdk-nag finding ids
that embed the rendered ARN (``stacks/nag.py`` acknowledges them by id).
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Aws

from lbcp.entry.names import NAME_PREFIX

ELB: Final = "elasticloadbalancing"
# The public SSM parameters the default LBVM image comes from.
AL2023_IMAGE_PARAMETERS: Final = "aws/service/ami-amazon-linux-latest/*"


def arn(service: str, resource: str, name: str, *, account: str | None = None, separator: str = "/") -> str:
    """``arn:${Partition}:<service>:${Region}:<account>:<resource><separator><name>``.

    ``account`` defaults to this stack's account; ``""`` is for resources no
    account owns (public images, AWS's public parameters).
    """
    owner = Aws.ACCOUNT_ID if account is None else account
    return f"arn:{Aws.PARTITION}:{service}:{Aws.REGION}:{owner}:{resource}{separator}{name}"


def ec2(resource: str) -> str:
    """Every EC2 ``resource`` (``instance``, ``volume``, ...) of this account and region."""
    return arn("ec2", resource, "*")


def any_image() -> str:
    """Every AMI, whoever owns it: the spec names it at run time."""
    return arn("ec2", "image", "*", account="")


def certificates() -> str:
    """Every ACM certificate of this account and region (the users' own, named in specs)."""
    return arn("acm", "certificate", "*")


def state_machine(name: str) -> str:
    """A state machine by name: formatted, not referenced, where a reference would be a cycle."""
    return arn("states", "stateMachine", name, separator=":")


def executions(state_machine_name: str) -> str:
    """Every execution of the named state machine."""
    return arn("states", "execution", f"{state_machine_name}:*", separator=":")


def events_rule(name: str) -> str:
    return arn("events", "rule", name)


def api_route(api_id: str, method: str, path: str) -> str:
    """One route of an HTTP API, in any stage."""
    return arn("execute-api", api_id, f"*/{method}{path}")


def entry_load_balancers() -> str:
    """The entries' network load balancers (named ``lbcp-...``)."""
    return arn(ELB, "loadbalancer", f"net/{NAME_PREFIX}*/*")


def entry_target_groups() -> str:
    """The entries' target groups (named ``lbcp-...``)."""
    return arn(ELB, "targetgroup", f"{NAME_PREFIX}*/*")


def entry_listeners() -> str:
    """The listeners of the entries' load balancers."""
    return arn(ELB, "listener", f"net/{NAME_PREFIX}*/*/*")


def hosted_zone(zone_id: str) -> str:
    """A Route 53 hosted zone (a global resource: no region, no account)."""
    return f"arn:{Aws.PARTITION}:route53:::hostedzone/{zone_id}"


def default_image_parameters() -> str:
    """AWS's public Amazon Linux 2023 image parameters (no account owns them)."""
    return arn("ssm", "parameter", AL2023_IMAGE_PARAMETERS, account="")


def alarms() -> str:
    """Every CloudWatch alarm of this account and region (their names are the users', chosen at run time)."""
    return arn("cloudwatch", "alarm", "*", separator=":")
