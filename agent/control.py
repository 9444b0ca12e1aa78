"""The agent's side of the control-plane protocol (lbcp.models.agent): fetch the config, send heartbeats.

``HttpControlPlaneClient`` calls the two routes of the agent endpoint: in AWS
a Lambda function URL with IAM auth (``AuthType: AWS_IAM``), so requests are
signed with SigV4 for service ``lambda`` with the instance role's credentials
(refreshed by botocore as they rotate). Without credentials it sends unsigned
requests: that is how agents talk to the local runtime, which accepts them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlencode

import requests
from pydantic import ValidationError

from agent import __version__
from lbcp.models.agent import AGENT_CONFIG_PATH, AGENT_HEARTBEAT_PATH, AgentConfig, Heartbeat, HeartbeatReply


class ControlPlaneError(Exception):
    """A call that did not get a usable answer; the loop backs off and tries again."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ControlPlaneClient(Protocol):
    def get_config(self, load_balancer_id: str, lbvm_id: str, version: int | None = None) -> AgentConfig:
        """The version this LBVM is told to run, or ``version`` (one it is told to run or to preload)."""
        ...

    def heartbeat(self, heartbeat: Heartbeat) -> HeartbeatReply: ...


CredentialsProvider = Callable[[], Any]  # returns botocore Credentials, or None for unsigned requests
# Function URLs verify SigV4 for the lambda service (API Gateway's would be execute-api).
SIGNING_SERVICE = "lambda"


def instance_credentials(region: str) -> CredentialsProvider:
    """The default credential chain (on an LBVM: the instance profile, refreshed before expiry)."""
    import boto3

    session = boto3.session.Session(region_name=region)
    provider: CredentialsProvider = session.get_credentials
    return provider


class HttpControlPlaneClient:
    def __init__(
        self,
        endpoint: str,
        region: str,
        credentials: CredentialsProvider | None,
        *,
        timeout: float = 5.0,
        headers: Mapping[str, str] | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self._credentials = credentials
        self.timeout = timeout
        self._headers = {"User-Agent": f"lbcp-agent/{__version__}", **(headers or {})}
        self._session = session or requests.Session()

    def get_config(self, load_balancer_id: str, lbvm_id: str, version: int | None = None) -> AgentConfig:
        parameters: dict[str, str | int] = {"loadBalancerId": load_balancer_id, "lbvmId": lbvm_id}
        if version is not None:
            parameters["version"] = version
        query = urlencode(parameters)
        url = f"{self.endpoint}{AGENT_CONFIG_PATH}?{query}"
        body = self._call("GET", url, None)
        try:
            return AgentConfig.model_validate_json(body)
        except ValidationError as exc:
            raise ControlPlaneError(f"GET {AGENT_CONFIG_PATH}: not an AgentConfig: {exc}") from exc

    def heartbeat(self, heartbeat: Heartbeat) -> HeartbeatReply:
        payload = heartbeat.model_dump_json(by_alias=True).encode()
        body = self._call("POST", f"{self.endpoint}{AGENT_HEARTBEAT_PATH}", payload)
        try:
            return HeartbeatReply.model_validate_json(body)
        except ValidationError as exc:
            raise ControlPlaneError(f"POST {AGENT_HEARTBEAT_PATH}: not a HeartbeatReply: {exc}") from exc

    def _call(self, method: str, url: str, payload: bytes | None) -> bytes:
        headers = dict(self._headers)
        if payload is not None:
            headers["Content-Type"] = "application/json"
        headers = self._sign(method, url, payload, headers)
        try:
            response = self._session.request(method, url, data=payload, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ControlPlaneError(f"{method} {url}: {exc}") from exc
        if response.status_code != 200:
            raise ControlPlaneError(
                f"{method} {url}: HTTP {response.status_code}: {response.text[:300]}", status=response.status_code
            )
        return response.content

    def _sign(self, method: str, url: str, payload: bytes | None, headers: dict[str, str]) -> dict[str, str]:
        credentials = self._credentials() if self._credentials is not None else None
        if credentials is None:
            return headers
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, data=payload or b"", headers=headers)
        SigV4Auth(credentials.get_frozen_credentials(), SIGNING_SERVICE, self.region).add_auth(request)
        return dict(request.headers.items())
