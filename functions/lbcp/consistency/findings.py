"""The checker's report: the ``GET /v1/consistency`` contract (DESIGN 6).

Each finding names a resource (``resourceType``, ``resourceId``), the load
balancer it belongs to (the id on its owner tag, known or not), its ``kind``
and since when it has been seen, with a sentence saying why it is a finding:

- ``orphan``: a resource carrying our owner tag that no record claims.
- ``drift``: a resource of a live load balancer that differs from what its
  spec implies (the reconciler repairs it: the spec is the truth).
- ``leak``: a record with nothing behind it.
- ``stuck``: an execution or a deletion that runs far longer than it can.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from pydantic import Field

from lbcp.consistency.inventory import ResourceType
from lbcp.models.status import StatusModel

FindingKind = Literal["orphan", "drift", "leak", "stuck"]
FINDING_KINDS: Final[tuple[FindingKind, ...]] = ("orphan", "drift", "leak", "stuck")


class Finding(StatusModel):
    resource_type: ResourceType
    resource_id: str
    load_balancer_id: str | None = Field(
        default=None, description="The owning load balancer, or the unknown id its owner tag names."
    )
    kind: FindingKind
    first_seen: datetime = Field(description="The first run of an unbroken series of runs that saw it.")
    message: str
    sightings: int = Field(default=1, ge=1, description="Consecutive runs that saw it (mark & sweep counts these).")
    quarantined_at: datetime | None = Field(
        default=None,
        description="The time on its lbcp:quarantined-at tag, when it carries one (automatic GC).",
    )

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.resource_type, self.resource_id, self.kind)


class ConsistencyReport(StatusModel):
    """The last run's findings; before the first run, an empty report with ``generatedAt`` null."""

    generated_at: datetime | None = Field(default=None, description="When the run listed the cloud; null: never run.")
    load_balancers: int = Field(default=0, ge=0, description="Load balancer records the run compared against.")
    findings: list[Finding] = Field(default_factory=list)
    counts: dict[FindingKind, int] = Field(default_factory=lambda: dict.fromkeys(FINDING_KINDS, 0))
    aws_calls: int = Field(default=0, ge=0, description="AWS calls the run's listing cost.")
    truncated: bool = Field(default=False, description="More findings than a report keeps (the first ones are).")


def counts_of(findings: list[Finding]) -> dict[FindingKind, int]:
    counts = dict.fromkeys(FINDING_KINDS, 0)
    for finding in findings:
        counts[finding.kind] += 1
    return counts


def carry_forward(previous: ConsistencyReport | None, findings: list[Finding]) -> list[Finding]:
    """Keep ``firstSeen`` and count ``sightings`` of what the previous run saw too.

    A finding the previous run did not see starts again: "consecutive" is what
    mark & sweep relies on (a resource that was claimed in between is new).
    """
    before = {finding.key: finding for finding in previous.findings} if previous is not None else {}
    carried: list[Finding] = []
    for finding in findings:
        earlier = before.get(finding.key)
        if earlier is None:
            carried.append(finding)
        else:
            carried.append(
                finding.model_copy(update={"first_seen": earlier.first_seen, "sightings": earlier.sightings + 1})
            )
    return carried
