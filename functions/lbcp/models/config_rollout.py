"""A config rollout: moving a fleet from one config version to another, without new instances.

A spec PATCH that needs no new instances (a routing rule, a backend, a WAF rule)
makes a new config version (its generation). Unstaged, every LBVM would take
it at its next heartbeat, so a valid-but-wrong config would reach them all at
once. Staged, it goes to ``canary`` LBVMs first (``Canary``: they apply it and
pass the health gate; ``Bake``: they stay healthy for ``bakeSeconds``), then to
the rest (``Roll``), and ends ``Succeeded``. When it fails the gate, every LBVM
is told the previous version again (``Rollback``) and the rollout ends
``RolledBack`` with the new version rejected: it is not served again while the
spec's config stays the same (``to_digest``). The spec is never rewritten: the
status shows that it asks for a version the fleet does not run.

Which version each LBVM is told is decided by the pure planner
(``lbcp.reconcile.plan.config_rollout``) and kept in the status document, so
the heartbeat handler, which reads the load balancer's record anyway, knows it
at no extra cost (``served_config_version``).

An operator pauses, resumes or aborts a config rollout as a template one
(``RolloutControl``, the record's ``configRolloutControl``). Paused, nobody
more is told the new version: the LBVMs that already run it keep it
(``paused_lbvms``, fixed by the planner when it carries out the pause), the
rest stay on the previous one, and no gate or deadline is judged. Resumed, it
goes on at the step it was paused at with fresh step clocks. Aborted, it rolls
back at once, the new version rejected as after a failed gate.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lbcp.models.base import StatusModel
from lbcp.models.rollout import RolloutRecord, RolloutStatus


class ServedConfig(StatusModel):
    """The config version every LBVM outside a config canary is told to run."""

    version: int = Field(ge=1, description="A spec generation: the last config that passed, or the current one.")
    digest: str = Field(description="What of that generation's spec the agents render (a digest).")


class ConfigRolloutStatus(RolloutRecord):
    """One config rollout, as ``status.configRollout`` shows it."""

    kind: Literal["config"] = Field(default="config", description="A rollout of a config version.")
    from_version: int = Field(ge=1, description="The config version the fleet ran, and returns to on a rollback.")
    to_version: int = Field(ge=1, description="The config version the spec asks for.")
    from_digest: str
    to_digest: str
    canary_lbvms: list[str] = Field(
        default_factory=list, description="The LBVMs told to_version first (during Canary and Bake)."
    )
    progress: str = Field(description="N of M on to_version and healthy (M: the LBVMs told it).")
    applied: int = Field(ge=0, description="LBVMs told to_version that run it and pass the health gate.")
    canary: int = Field(ge=0, description="How many LBVMs go first (rollout.canary resolved against desired).")
    failed: list[str] = Field(default_factory=list, description="LBVMs that failed the health gate on to_version.")
    rejected: bool = Field(
        default=False,
        description="to_version failed: the fleet stays on from_version until the spec's config changes again.",
    )
    paused_lbvms: list[str] | None = Field(
        default=None,
        description="While Paused: the LBVMs that keep being told to_version (those that ran it when the pause was "
        "carried out); every other LBVM is told from_version. Unset until the reconciler carries the pause out.",
    )

    def told_new(self, lbvm_id: str) -> bool:
        """Whether this LBVM is told to_version now."""
        if not self.active:
            return False
        if self.state == "Paused" and self.paused_lbvms is not None:
            return lbvm_id in self.paused_lbvms
        if self.step in ("Canary", "Bake"):
            return lbvm_id in self.canary_lbvms
        return self.step == "Roll"


def served_config_version(
    served: ServedConfig | None,
    rollout: ConfigRolloutStatus | None,
    generation: int,
    lbvm_id: str,
    *,
    template_rollout: RolloutStatus | None = None,
    launch_template: str | None = None,
    applied: int | None = None,
) -> int:
    """The config version an LBVM is told to run (and is served when it asks for its config).

    While a template rollout is active, only the LBVMs launched on its new
    template (``launch_template``, the LBVM's record) are told the current
    generation: they came up to run it. The others keep the version the fleet
    was served before, which their template can render: a rollout that changes
    the proxy would otherwise tell an HAProxy LBVM to run an NGINX config, and
    a routing rule PATCHed with a new instance type would reach every old LBVM
    at once instead of with the new instances.

    Once a template rollout has ended, an LBVM still on the template the
    fleet left (the old one after a success, the rejected one after a
    rollback) is on its way out: it keeps the version it runs (``applied``).

    With no decision of the planner yet (a load balancer before its first
    tick, or a status written before config rollouts existed), the current
    generation, as before.
    """
    if rollout is not None and rollout.told_new(lbvm_id):
        return rollout.to_version
    if template_rollout is not None and served is not None:
        new_template = template_rollout.to_template.description
        if template_rollout.active:
            return generation if launch_template == new_template else served.version
        left = template_rollout.from_template if template_rollout.state == "Succeeded" else template_rollout.to_template
        if applied is not None and launch_template == left.description:
            return applied
    if served is not None:
        return served.version
    return generation


def preload_config_version(rollout: ConfigRolloutStatus | None, told: int) -> int | None:
    """The config version an LBVM should have ready (rendered and validated) besides the one it is told.

    A staged config change's new version, for as long as the rollout may still
    tell this LBVM to switch to it: a version that some LBVM cannot even
    validate stops the rollout before anyone runs it, and a switch is a reload
    onto files already checked. Nothing to preload during a rollback.
    """
    if rollout is None or not rollout.active or rollout.step == "Rollback" or rollout.to_version == told:
        return None
    return rollout.to_version
