"""Image drift: a newer Amazon Linux 2023 image than the fleet runs, reported, and followed on request (pure).

A spec that leaves ``instance.imageId`` unset runs "the latest Amazon Linux
2023": whatever AWS's public SSM parameter names when an instance launches.
When the parameter moves on, running LBVMs stay on the image they booted;
``newer_image`` says so (``status.newerImage``, and a ``NewerImageAvailable``
event once per new image, not every tick).

Rolling onto it is opt-in (``rollout.followLatestImage``). The rollout
machinery compares templates by their description, so following needs
templates that name the concrete AMI: ``as_followed`` gives each LBVM on the
latest image the identity of the AMI it runs (its pin, else what EC2 says its
instance runs, else, not listed yet, what the parameter says now), and without
following it gives them all the unpinned identity, so that switching the flag
off never rolls anything.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime

from lbcp.instance_types import architecture
from lbcp.models.lbvm import Lbvm
from lbcp.models.rollout import LaunchTemplate, NewerImage, RolloutStatus
from lbcp.models.spec import LoadBalancerSpec
from lbcp.reconcile.observed import ObservedInstance
from lbcp.reconcile.plan.rollout import RolloutDecision, RolloutNote


def follows(spec: LoadBalancerSpec) -> bool:
    return spec.rollout.follow_latest_image and spec.instance.image_id is None


def followed_image(spec: LoadBalancerSpec, latest: str | None, previous: RolloutStatus | None) -> str | None:
    """The AMI the fleet follows this tick, or None when it does not follow one.

    When the parameter could not be read, the last rollout's image stands in
    (same architecture only), so that a failed read neither starts nor
    supersedes a rollout.
    """
    if not follows(spec):
        return None
    if latest is not None:
        return latest
    if previous is None or previous.to_template.latest_image is None:
        return None
    if architecture(previous.to_template.instance_type) != architecture(spec.instance.type):
        return None
    return previous.to_template.latest_image


def as_followed(
    lbvms: Sequence[Lbvm], instances: Iterable[ObservedInstance], spec: LoadBalancerSpec, image: str | None
) -> list[Lbvm]:
    """The LBVMs as the planner compares them: pinned to their AMI when following ``image``, unpinned when not."""
    images = {instance.instance_id: instance.image_id for instance in instances}
    arch = architecture(spec.instance.type)
    result = []
    for lbvm in lbvms:
        template = LaunchTemplate.from_description(lbvm.launch_template)
        if template is None or not template.on_latest:
            result.append(lbvm)
            continue
        if image is None:
            seen = template.pinned(None)
        elif template.latest_image is not None:
            seen = template
        else:
            running = images.get(lbvm.instance_id or "")
            # Not listed yet: it gets what the parameter says now (if it is of the spec's architecture).
            fallback = image if architecture(template.instance_type) == arch else None
            seen = template.pinned(running or fallback)
        changed = seen.description != lbvm.launch_template
        result.append(lbvm.model_copy(update={"launch_template": seen.description}) if changed else lbvm)
    return result


def newer_image(
    previous: NewerImage | None,
    spec: LoadBalancerSpec,
    lbvms: Sequence[Lbvm],
    instances: Iterable[ObservedInstance],
    *,
    latest: str | None,
    decision: RolloutDecision,
    now: datetime,
) -> tuple[NewerImage | None, tuple[RolloutNote, ...]]:
    """What ``status.newerImage`` says now, and the event when the image is one not reported before.

    ``latest`` None (the parameter was not read this tick) keeps what was said:
    a failed read is not news.
    """
    if spec.instance.image_id is not None:
        return None, ()
    if latest is None:
        return previous, ()
    images = {instance.instance_id: instance.image_id for instance in instances}
    running: list[str] = []
    for lbvm in lbvms:
        if not lbvm.live:
            continue
        template = LaunchTemplate.from_description(lbvm.launch_template)
        if template is not None and not template.on_latest:
            continue
        # What EC2 says the instance runs is the truth; the pin is what it was launched for.
        image = images.get(lbvm.instance_id or "") or (template.latest_image if template else None)
        if image is not None:
            running.append(image)
    older = Counter(image for image in running if image != latest)
    if not older:
        return None, ()
    outdated = sum(older.values())
    old = [image for image, _ in sorted(older.items(), key=lambda item: (-item[1], item[0]))]
    message = (
        f"a newer image is available: {latest} (running {', '.join(old)} on {outdated} of {len(running)} LBVMs); "
        f"{_what_now(spec, latest, decision)}"
    )
    same = previous is not None and previous.image_id == latest
    report = NewerImage(
        image_id=latest,
        running_image_ids=old,
        outdated=outdated,
        lbvms=len(running),
        since=previous.since if previous is not None and same else now,
        message=message,
    )
    return report, () if same else (RolloutNote("NewerImageAvailable", message),)


def _what_now(spec: LoadBalancerSpec, latest: str, decision: RolloutDecision) -> str:
    if not spec.rollout.follow_latest_image:
        return "set rollout.followLatestImage to roll onto it"
    rollout = decision.rollout
    if rollout is None or rollout.to_template.latest_image != latest:
        return "rollout.followLatestImage rolls the fleet onto it"
    if rollout.active:
        return f"rollout {rollout.id} rolls the fleet onto it ({rollout.progress})"
    if rollout.rejected:
        return f"rollout {rollout.id} rejected it ({rollout.state}); the fleet stays, and a later image will be tried"
    return f"rollout {rollout.id} rolled the fleet onto it ({rollout.state})"
