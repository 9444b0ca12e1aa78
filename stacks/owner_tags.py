"""The IAM conditions on our owner tags: what fences every create, change and delete.

Everything the control plane creates at run time carries the product tag
(``lbcp.PRODUCT_TAG_KEY``); the policies allow creates only when the request
carries it and changes or deletes only when the resource does. EC2 has a
condition key of its own for the resource's tags (``ec2:ResourceTag``); ELBv2
uses the global ``aws:ResourceTag``.
"""

from __future__ import annotations

from typing import Any, Final

from lbcp import LB_ID_TAG_KEY, PRODUCT_TAG_KEY, PRODUCT_TAG_VALUE

# A create whose request tags the new resource as ours.
REQUEST_TAGGED: Final[dict[str, Any]] = {
    "StringEquals": {f"aws:RequestTag/{PRODUCT_TAG_KEY}": PRODUCT_TAG_VALUE},
}
# An EC2 resource that carries our product tag.
EC2_RESOURCE_TAGGED: Final[dict[str, Any]] = {
    "StringEquals": {f"ec2:ResourceTag/{PRODUCT_TAG_KEY}": PRODUCT_TAG_VALUE},
}
# Any other service's resource that carries our product tag.
RESOURCE_TAGGED: Final[dict[str, Any]] = {
    "StringEquals": {f"aws:ResourceTag/{PRODUCT_TAG_KEY}": PRODUCT_TAG_VALUE},
}
# Ours, and made for some load balancer (what the reconciler may remove as an orphan).
RESOURCE_TAGGED_FOR_A_LOAD_BALANCER: Final[dict[str, Any]] = {
    **RESOURCE_TAGGED,
    "Null": {f"aws:ResourceTag/{LB_ID_TAG_KEY}": "false"},
}


def tagging_only_inside(condition_key: str, *create_actions: str) -> dict[str, Any]:
    """``CreateTags``/``AddTags`` allowed only as part of these creates (tag-on-create).

    ``condition_key`` is the service's create-action key (``ec2:CreateAction``,
    ``elasticloadbalancing:CreateAction``); one action renders as a string.
    """
    value: str | list[str] = create_actions[0] if len(create_actions) == 1 else list(create_actions)
    return {"StringEquals": {condition_key: value}}
