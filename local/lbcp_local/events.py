"""Building API Gateway HTTP API (payload format 2.0) and Lambda function URL events, as AWS would send them.

Used by the local HTTP adapters and by the tests, so both exercise the handlers
with exactly the event shapes the deployed API and agent endpoint deliver.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

LOCAL_ACCOUNT_ID = "123456789012"
LOCAL_PRINCIPAL_ARN = f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:user/local-developer"
# The id a function URL's host name starts with (``<url-id>.lambda-url.<region>.on.aws``).
LOCAL_URL_ID = "localagentendpoint0000000000000"
_TEXT_TYPES = ("application/json", "application/merge-patch+json", "application/problem+json", "text/")


def http_api_event(
    method: str,
    path: str,
    *,
    query: str = "",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    source_ip: str = "127.0.0.1",
    principal_arn: str | None = LOCAL_PRINCIPAL_ARN,
) -> dict[str, Any]:
    """The event API Gateway sends a Lambda proxy integration for one request."""
    lowered: dict[str, str] = {}
    for name, value in (headers or {}).items():
        key = name.lower()
        # API Gateway joins repeated headers with commas.
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    if body is not None:
        lowered.setdefault("content-length", str(len(body)))
    now = datetime.now(UTC)
    content_type = lowered.get("content-type", "")
    is_text = body is None or any(content_type.startswith(t) for t in _TEXT_TYPES)
    encoded_body: str | None = None
    if body is not None:
        if is_text:
            try:
                encoded_body = body.decode("utf-8")
            except UnicodeDecodeError:
                is_text = False
        if not is_text:
            encoded_body = base64.b64encode(body).decode()
    query_parameters: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        query_parameters[name] = f"{query_parameters[name]},{value}" if name in query_parameters else value
    authorizer = None
    if principal_arn is not None:
        authorizer = {
            "iam": {
                "accessKey": "AKIALOCAL",
                "accountId": LOCAL_ACCOUNT_ID,
                "callerId": "AIDALOCAL",
                "principalOrgId": None,
                "userArn": principal_arn,
                "userId": "AIDALOCAL",
            }
        }
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "accountId": LOCAL_ACCOUNT_ID,
            "apiId": "local",
            "domainName": lowered.get("host", "localhost"),
            "domainPrefix": "local",
            "http": {
                "method": method.upper(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": not is_text,
    }
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    if query_parameters:
        event["queryStringParameters"] = query_parameters
    if encoded_body is not None:
        event["body"] = encoded_body
    return event


def function_url_event(
    method: str,
    path: str,
    *,
    query: str = "",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    source_ip: str = "127.0.0.1",
    principal_arn: str | None = LOCAL_PRINCIPAL_ARN,
    region: str = "us-east-1",
) -> dict[str, Any]:
    """The event a Lambda function URL sends its function: the HTTP API's payload 2.0, named after the URL.

    With ``AuthType: AWS_IAM`` the verified caller is in ``requestContext.authorizer.iam``, as with
    an HTTP API's IAM authorizer; ``apiId`` and the host are the URL's id.
    """
    event = http_api_event(
        method, path, query=query, headers=headers, body=body, source_ip=source_ip, principal_arn=principal_arn
    )
    domain = f"{LOCAL_URL_ID}.lambda-url.{region}.on.aws"
    event["requestContext"].update(apiId=LOCAL_URL_ID, domainName=domain, domainPrefix=LOCAL_URL_ID)
    event["headers"].setdefault("host", domain)
    return event


@dataclass
class LocalLambdaContext:
    """The parts of the Lambda context object that handlers and Powertools read."""

    function_name: str = "lbcp-api"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    timeout_seconds: float = 10.0
    aws_request_id: str = ""
    invoked_function_arn: str = f"arn:aws:lambda:us-east-1:{LOCAL_ACCOUNT_ID}:function:lbcp-api"
    log_group_name: str = "/aws/lambda/lbcp-api"
    log_stream_name: str = "local"

    def __post_init__(self) -> None:
        self.aws_request_id = self.aws_request_id or str(uuid.uuid4())
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
