"""Who this LBVM is: the control plane passes the LB and LBVM ids; the instance itself knows the rest.

The instance id (heartbeats) and the subnet (the scaler's metric dimension)
come from the instance metadata service, version 2 (a session token first,
which also keeps SSRF-style GETs from reading it).
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

IMDS_URL = "http://169.254.169.254"
TOKEN_TTL_SECONDS = 21600


class MetadataUnavailable(Exception):
    pass


@dataclass(frozen=True)
class Identity:
    load_balancer_id: str
    lbvm_id: str
    instance_id: str
    subnet_id: str


class InstanceMetadata:
    def __init__(self, base_url: str = IMDS_URL, timeout: float = 2.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        self._session.trust_env = False  # never through an HTTP proxy: the service is link-local
        self._token: str | None = None

    def _token_header(self) -> dict[str, str]:
        if self._token is None:
            try:
                response = self._session.put(
                    f"{self.base_url}/latest/api/token",
                    headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)},
                    timeout=self.timeout,
                )
                response.raise_for_status()
            except requests.RequestException as exc:
                raise MetadataUnavailable(f"instance metadata token: {exc}") from exc
            self._token = response.text.strip()
        return {"X-aws-ec2-metadata-token": self._token}

    def get(self, path: str) -> str:
        try:
            response = self._session.get(
                f"{self.base_url}/latest/meta-data/{path}", headers=self._token_header(), timeout=self.timeout
            )
            response.raise_for_status()
        except requests.RequestException as exc:
            raise MetadataUnavailable(f"instance metadata {path}: {exc}") from exc
        return response.text.strip()

    def instance_id(self) -> str:
        return self.get("instance-id")

    def subnet_id(self) -> str:
        mac = self.get("mac")  # the primary interface: the ENI the control plane launched the LBVM with
        return self.get(f"network/interfaces/macs/{mac}/subnet-id")

    def region(self) -> str:
        return self.get("placement/region")


def resolve_identity(
    load_balancer_id: str,
    lbvm_id: str,
    *,
    instance_id: str | None = None,
    subnet_id: str | None = None,
    metadata: InstanceMetadata | None = None,
) -> Identity:
    """Fill in what was not given from the instance metadata service."""
    if instance_id is None or subnet_id is None:
        metadata = metadata or InstanceMetadata()
        instance_id = instance_id or metadata.instance_id()
        subnet_id = subnet_id or metadata.subnet_id()
    return Identity(load_balancer_id, lbvm_id, instance_id, subnet_id)
