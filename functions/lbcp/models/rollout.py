"""A rollout: moving a fleet from one launch template to another, as a record of its own.

A rollout starts when the spec asks for instances that the running LBVMs are not
(another instance type, image or proxy). It goes through steps (``Canary``:
the first LBVMs on the new template; ``Bake``: they must stay healthy for
``bakeSeconds``; ``Roll``: the rest, within maxSurge and maxUnavailable) and ends
``Succeeded``, or, when the new template fails its health gate (or one of
``rollout.alarmNames`` goes into ALARM), returns the
fleet to the template it came from (``Rollback``) and ends ``RolledBack``: the
new template is then rejected, and never rolled onto again while the spec asks
for it with the same gates (``verdict_key``). ``Failed`` means even the way
back did not progress. The planner decides all of it (``lbcp.reconcile.plan.rollout``);
operators steer it through ``RolloutControl``.

A spec that leaves the image unset runs "the latest Amazon Linux 2023". With
``rollout.followLatestImage`` the fleet follows AWS's public parameter: the
template then names the concrete AMI it resolved to (``latest_image``), so that
a rollout onto a newer image has two templates to tell apart, a rollback
returns to the AMI the fleet really ran, and a rejected AMI stays rejected
while a later one is tried.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import Field

from lbcp.models.base import StatusModel
from lbcp.models.spec import LoadBalancerSpec, ProxyEngine

RolloutState = Literal["Progressing", "Paused", "Succeeded", "RolledBack", "Failed"]
# Preload: config rollouts only (every LBVM validates the new version before any switches).
RolloutStep = Literal["Preload", "Canary", "Bake", "Roll", "Rollback"]
RolloutAction = Literal["pause", "resume", "abort"]
# Of a launch template (new instances) or of a config version (the same instances, another config).
RolloutKind = Literal["template", "config"]

ACTIVE_STATES: frozenset[str] = frozenset({"Progressing", "Paused"})

LATEST_AL2023 = "the latest Amazon Linux 2023"
_DESCRIPTION = re.compile(
    rf"^(?P<type>\S+) from (?P<image>ami-[0-9a-f]+|{LATEST_AL2023}(?: \((?P<latest>ami-[0-9a-f]+)\))?) "
    r"running (?P<proxy>haproxy|nginx)$"
)


class LaunchTemplate(StatusModel):
    """What an instance is launched from: the spec fields a running LBVM cannot take on."""

    instance_type: str
    image_id: str | None = Field(default=None, description="Unset: the latest Amazon Linux 2023 at launch.")
    proxy: ProxyEngine
    latest_image: str | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="With imageId unset and rollout.followLatestImage: the AMI the latest Amazon Linux 2023 "
        "resolved to, which this template launches.",
    )

    @property
    def description(self) -> str:
        """In words; also the identity LBVM records keep (``Lbvm.launch_template``)."""
        return f"{self.instance_type} from {self.image_text} running {self.proxy}"

    @property
    def image_text(self) -> str:
        if self.image_id:
            return self.image_id
        return f"{LATEST_AL2023} ({self.latest_image})" if self.latest_image else LATEST_AL2023

    @property
    def on_latest(self) -> bool:
        """It runs whatever the public Amazon Linux 2023 parameter says (pinned or not), not an image of the spec's."""
        return self.image_id is None

    def pinned(self, latest_image: str | None) -> LaunchTemplate:
        """The same template at ``latest_image`` (None: unpinned, the latest at launch); a spec's image stays."""
        if self.image_id is not None:
            return self
        return self.model_copy(update={"latest_image": latest_image})

    @classmethod
    def from_description(cls, description: str | None) -> LaunchTemplate | None:
        """The template an LBVM record names (its ``launch_template``), or None if it names none we wrote."""
        match = _DESCRIPTION.match(description or "")
        if match is None:
            return None
        image = match["image"]
        return cls(
            instance_type=match["type"],
            image_id=image if image.startswith("ami-") else None,
            proxy=match["proxy"],
            latest_image=match["latest"],
        )


def template_of(spec: LoadBalancerSpec, latest_image: str | None = None) -> LaunchTemplate:
    """The template a spec asks for; pinned at ``latest_image`` (the parameter's value now) when it follows it."""
    template = LaunchTemplate(instance_type=spec.instance.type, image_id=spec.instance.image_id, proxy=spec.proxy)
    if spec.rollout.follow_latest_image and latest_image is not None:
        return template.pinned(latest_image)
    return template


def spec_on(spec: LoadBalancerSpec, template: LaunchTemplate) -> LoadBalancerSpec:
    """The spec as an LBVM on ``template`` runs it: its instance and proxy are the template's (a pin is an image)."""
    image_id = template.image_id or template.latest_image
    instance = spec.instance.model_copy(update={"type": template.instance_type, "image_id": image_id})
    return spec.model_copy(update={"instance": instance, "proxy": template.proxy})


class NewerImage(StatusModel):
    """A newer Amazon Linux 2023 image than some LBVMs run, on a spec that leaves the image unset."""

    image_id: str = Field(description="What the public parameter names now.")
    running_image_ids: list[str] = Field(description="The older images LBVMs run, most used first.")
    outdated: int = Field(ge=0, description="Live LBVMs on an older image.")
    lbvms: int = Field(ge=0, description="Live LBVMs whose image is known.")
    since: datetime = Field(description="When this image was first seen.")
    message: str


class AnswerCount(StatusModel):
    """One LBVM's HTTP answers when a bake began (its later counts of the same boot are compared with it)."""

    boot_id: str
    requests: int
    server_errors: int


class RolloutRecord(StatusModel):
    """What every rollout has, of a template or of a config: its state, step, times and the bake's 5xx window."""

    id: str
    state: RolloutState
    step: RolloutStep | None = Field(default=None, description="Unset once the rollout has ended.")
    started_at: datetime
    step_started_at: datetime
    last_progress_at: datetime
    finished_at: datetime | None = None
    answers_at_bake: dict[str, AnswerCount] = Field(
        default_factory=dict,
        description="Per LBVM, its HTTP answers when the bake began: the 5xx gate compares what the canary and "
        "the rest answered since then.",
    )
    paused_step: RolloutStep | None = Field(default=None, description="While Paused: the step it resumes at.")
    paused_by: str | None = None
    progress: str = Field(description="How far it got, in words with the numbers.")
    waiting_for: str | None = Field(default=None, description="Why the rollout waits, when it does.")
    message: str = Field(description="What the rollout did last, or how it ended, with the numbers.")

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


class RolloutStatus(RolloutRecord):
    """One rollout, as ``status.rollout`` and ``lbctl rollout status|history`` show it."""

    kind: Literal["template"] = Field(default="template", description="A rollout of a launch template.")
    from_template: LaunchTemplate = Field(description="What the fleet ran, and returns to on a rollback.")
    to_template: LaunchTemplate = Field(description="What the spec asks for.")
    generation: int = Field(ge=1, description="The spec generation that asked for to_template.")
    progress: str = Field(description="N of M replaced (M: the desired capacity).")
    replaced: int = Field(ge=0, description="LBVMs on to_template that pass the health gate.")
    desired: int = Field(ge=0)
    canary: int = Field(ge=0, description="LBVMs that go first (rollout.canary resolved against desired).")
    launched: list[str] = Field(default_factory=list, description="LBVMs launched on to_template.")
    failed: list[str] = Field(
        default_factory=list, description="LBVMs on to_template that never passed, or stopped passing, the gate."
    )
    rejected: bool = Field(
        default=False,
        description="to_template failed: it is not rolled onto again until the spec asks for something else "
        "(or changes its lifecycle or rollout settings).",
    )
    verdict_key: str = Field(description="The parts of the spec the verdict was reached on (a digest).")


class RolloutControl(StatusModel):
    """An operator's request about the current rollout; the planner carries it out on its next tick."""

    rollout_id: str
    action: RolloutAction
    requested_at: datetime
    requested_by: str | None = None
