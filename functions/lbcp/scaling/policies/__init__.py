"""The scaling policies behind one interface, and the name ``default``.

A policy proposes a desired capacity from fresh readings, the load balancer as
it stands, its settings and the time; it never reads a clock, the network or
a random source. ``lbcp.scaling.evaluate.decide`` wraps every proposal in the
same guards (missing data, safeguards, warm floor, bounds).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final, Protocol

from lbcp.models.spec import DEFAULT_SCALING_POLICY
from lbcp.scaling.model import Current, Proposal, Reading
from lbcp.scaling.policies.noise_aware import NoiseAwarePolicy
from lbcp.scaling.policies.step import StepPolicy
from lbcp.scaling.policies.target_tracking import TargetTrackingPolicy
from lbcp.scaling.policies.vote import VotePolicy
from lbcp.scaling.settings import PolicySettings


class Policy(Protocol):
    name: str

    def propose(
        self, readings: Mapping[str, Reading], current: Current, settings: PolicySettings, now: datetime
    ) -> Proposal: ...


POLICIES: Final[dict[str, Policy]] = {
    policy.name: policy for policy in (VotePolicy(), TargetTrackingPolicy(), StepPolicy(), NoiseAwarePolicy())
}
DEFAULT_ALIAS: Final = "default"


class UnknownPolicy(ValueError):
    pass


def resolve(name: str) -> Policy:
    """The policy called ``name``; ``default`` is the one chosen for new load balancers."""
    key = DEFAULT_SCALING_POLICY if name == DEFAULT_ALIAS else name
    try:
        return POLICIES[key]
    except KeyError:
        known = ", ".join([DEFAULT_ALIAS, *POLICIES])
        raise UnknownPolicy(f"unknown scaling policy {name!r} (known: {known})") from None
