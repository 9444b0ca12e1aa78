"""Deterministic names and owner tags of a load balancer's entry resources.

Every name is derived from the load balancer id, so the adapter finds what it
created by name (one call) and a retried create finds the first one instead of
making a second. ELBv2 names are at most 32 characters of letters, digits and
hyphens: ``lbcp-`` plus the id's 17 hex digits is 22, a target group adds
``-<port>`` (at most 28).
"""

from __future__ import annotations

from typing import Final

from lbcp import LB_ID_TAG_KEY, PRODUCT_TAG_KEY, PRODUCT_TAG_VALUE

NAME_PREFIX: Final = "lbcp-"
ELBV2_NAME_MAX: Final = 32


def _suffix(load_balancer_id: str) -> str:
    # "lb-0123456789abcdef0" -> "0123456789abcdef0"
    return load_balancer_id.removeprefix("lb-")


def nlb_name(load_balancer_id: str) -> str:
    name = f"{NAME_PREFIX}{_suffix(load_balancer_id)}"
    assert len(name) <= ELBV2_NAME_MAX, name
    return name


def target_group_name(load_balancer_id: str, port: int) -> str:
    name = f"{NAME_PREFIX}{_suffix(load_balancer_id)}-{port}"
    assert len(name) <= ELBV2_NAME_MAX, name
    return name


def target_group_port(load_balancer_id: str, name: str) -> int | None:
    """The listener port a target group of this load balancer serves, from its name."""
    prefix = f"{NAME_PREFIX}{_suffix(load_balancer_id)}-"
    if not name.startswith(prefix):
        return None
    rest = name[len(prefix) :]
    return int(rest) if rest.isdigit() else None


def security_group_name(load_balancer_id: str) -> str:
    return f"{NAME_PREFIX}{load_balancer_id}-lbvms"


def record_name(load_balancer_name: str, dns_domain: str) -> str:
    """The load balancer's DNS name: ``<name>.<domain>`` (Route53 answers with a trailing dot)."""
    return f"{load_balancer_name}.{dns_domain.strip('.')}"


def owner_tags(load_balancer_id: str) -> list[dict[str, str]]:
    """The tags every entry resource carries (the checker and IAM conditions find them by these)."""
    return [
        {"Key": PRODUCT_TAG_KEY, "Value": PRODUCT_TAG_VALUE},
        {"Key": LB_ID_TAG_KEY, "Value": load_balancer_id},
    ]


def has_owner_tags(tags: list[dict[str, str]], load_balancer_id: str) -> bool:
    found = {tag["Key"]: tag["Value"] for tag in tags}
    return found.get(PRODUCT_TAG_KEY) == PRODUCT_TAG_VALUE and found.get(LB_ID_TAG_KEY) == load_balancer_id
