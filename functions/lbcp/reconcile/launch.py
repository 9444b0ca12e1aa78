"""What an LBVM is launched from: its image and its user data."""

from __future__ import annotations

from typing import Any

from lbcp.instance_types import architecture
from lbcp.models.lbvm import Lbvm
from lbcp.models.resource import LoadBalancerRecord
from lbcp.models.rollout import template_of
from lbcp.models.spec import LoadBalancerSpec

# Amazon Linux 2023, as AWS publishes it in SSM (public parameters).
AL2023_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}"


def launch_template(spec: LoadBalancerSpec) -> str:
    """The spec fields a running LBVM cannot take on, in words: changing any of them rolls the fleet.

    Everything else (listeners, backends, WAF rules, timeouts) reaches running
    agents as a new config version. The instance type and image are fixed at
    launch, and the user data installs the proxy named here.
    """
    return template_of(spec).description


class LatestImages:
    """The public Amazon Linux 2023 parameter, read at most once per architecture per tick.

    The reconciler observes it (image drift) and launches from it with the same
    reading: a warm Lambda must not keep launching last week's image, and a
    tick must not ask SSM again for every launch.
    """

    def __init__(self, ssm: Any) -> None:
        self._ssm = ssm
        self._images: dict[str, str] = {}

    def new_tick(self) -> None:
        self._images.clear()

    def latest(self, architecture: str) -> str:
        if architecture not in self._images:
            name = AL2023_PARAMETER.format(arch=architecture)
            self._images[architecture] = self._ssm.get_parameter(Name=name)["Parameter"]["Value"]
        return self._images[architecture]


class DefaultLaunchSettings:
    def __init__(self, images: LatestImages, *, agent_endpoint: str, agent_artifact_url: str, region: str) -> None:
        self._images = images
        self._agent_endpoint = agent_endpoint
        self._agent_artifact_url = agent_artifact_url
        self._region = region

    def image_id(self, record: LoadBalancerRecord) -> str:
        # A template that follows the latest image names its AMI here (``spec_on``).
        if record.spec.instance.image_id:
            return record.spec.instance.image_id
        return self._images.latest(architecture(record.spec.instance.type))

    def user_data(self, record: LoadBalancerRecord, lbvm: Lbvm) -> str:
        from lbcp.bootstrap import user_data

        return str(
            user_data(
                lb_id=record.id,
                lbvm_id=lbvm.lbvm_id,
                endpoint=self._agent_endpoint,
                proxy=record.spec.proxy,
                agent_artifact_url=self._agent_artifact_url,
                region=self._region,
            )
        )
