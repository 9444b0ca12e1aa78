"""The rollout history: template and config rollouts in one listing, told apart by ``kind``."""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import Field, RootModel, TypeAdapter

from lbcp.models.base import StatusModel
from lbcp.models.config_rollout import ConfigRolloutStatus
from lbcp.models.rollout import RolloutStatus

AnyRollout = Annotated[RolloutStatus | ConfigRolloutStatus, Field(discriminator="kind")]

_ANY_ROLLOUT: TypeAdapter[RolloutStatus | ConfigRolloutStatus] = TypeAdapter(AnyRollout)


def parse_rollout(document: str) -> RolloutStatus | ConfigRolloutStatus:
    """One stored history item (JSON) as the rollout it records."""
    parsed = json.loads(document)
    # Template rollouts stored before config rollouts joined the history name no kind.
    parsed.setdefault("kind", "template")
    return _ANY_ROLLOUT.validate_python(parsed)


class RolloutList(StatusModel):
    items: list[AnyRollout] = Field(description="Template and config rollouts (``kind``), newest first.")
    next_token: str | None = None


class AnyRolloutDocument(RootModel[AnyRollout]):
    """One rollout of either kind (a pause, resume or abort answers with the one it acted on)."""
