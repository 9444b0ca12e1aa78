"""HTTP to the lbcp API: endpoint handling, SigV4 signing, retries, problem documents.

Signing uses botocore (``SigV4Auth`` over an ``AWSRequest``) with the user's
credentials for service ``execute-api``. The exact bytes and headers that are
signed are the ones sent: the body is serialised once, the URL (with its query
string) is built once, and the signed headers are copied onto the request.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import requests
from urllib3.exceptions import NewConnectionError

from lbctl import __version__
from lbctl.errors import ApiError, TransportError, UsageError

SERVICE = "execute-api"
BASE_PATH = "/v1"
USER_AGENT = f"lbctl/{__version__}"
_EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 20.0

# When may a request be sent again after a failure?
#   "safe":    reads, deletes and creates with an Idempotency-Key: on connection errors, 5xx, 429, and
#              409 request-in-progress (the first try with the same key is still running)
#   "connect": only when the request certainly never reached the server (connection refused, connect timeout)
RetryPolicy = Literal["safe", "connect"]


def normalize_endpoint(endpoint: str) -> str:
    """``http://127.0.0.1:8080/v1/`` -> ``http://127.0.0.1:8080``; the API's base path is added per request."""
    text = endpoint.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--endpoint must be an http:// or https:// URL, not {endpoint!r}")
    if parts.query or parts.fragment:
        raise UsageError(f"--endpoint must not have a query or fragment: {endpoint!r}")
    if text.endswith(BASE_PATH):
        text = text[: -len(BASE_PATH)]
    return text


def is_loopback(endpoint: str) -> bool:
    host = (urlsplit(endpoint).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def region_from_host(endpoint: str) -> str | None:
    """The region of an ``<api-id>.execute-api.<region>.amazonaws.com`` endpoint, else None."""
    match = _EXECUTE_API_HOST.match((urlsplit(endpoint).hostname or "").lower())
    return match.group(1) if match else None


def lb_path(ref: str, *rest: str) -> str:
    """The path of one load balancer (by id or name), quoted so any input stays one path segment."""
    return "/".join([f"{BASE_PATH}/load-balancers/{quote(ref, safe='')}", *rest])


def _query_string(params: Mapping[str, Any]) -> str:
    # RFC 3986 encoding (space as %20, never '+'): the form SigV4 canonicalises.
    return "&".join(f"{quote(str(k), safe='-_.~')}={quote(str(v), safe='-_.~')}" for k, v in params.items())


class Signer:
    """SigV4 for execute-api with a botocore session's credentials (env, profile, SSO, instance role...)."""

    def __init__(self, region: str | None, profile: str | None, endpoint: str) -> None:
        import botocore.session
        from botocore.exceptions import BotoCoreError

        try:
            session = botocore.session.Session(profile=profile)
            self.region = region or region_from_host(endpoint) or session.get_config_variable("region")
            credentials = session.get_credentials()
        except BotoCoreError as exc:
            raise UsageError(f"cannot load AWS configuration: {exc}") from None
        if not self.region:
            raise UsageError(
                "no region to sign requests for: pass --region, set AWS_REGION, or use an "
                "*.execute-api.<region>.amazonaws.com endpoint"
            )
        if credentials is None:
            raise UsageError(
                "no AWS credentials found to sign requests with (set AWS_PROFILE or use --profile, "
                "or pass --no-sign for an endpoint that takes unsigned requests)"
            )
        self._credentials = credentials

    def sign(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> dict[str, str]:
        """The headers to send: ``headers`` plus X-Amz-Date, X-Amz-Content-SHA256, the token and Authorization."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        payload = body or b""
        request = AWSRequest(
            method=method,
            url=url,
            data=payload,
            headers={**headers, "X-Amz-Content-SHA256": hashlib.sha256(payload).hexdigest()},
        )
        SigV4Auth(self._credentials.get_frozen_credentials(), SERVICE, self.region).add_auth(request)
        return {str(name): str(value) for name, value in request.headers.items()}


@dataclass
class Response:
    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes
    attempts: int = 1

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise TransportError(
                f"the endpoint answered HTTP {self.status} with a body that is not JSON: {self.body[:200]!r}"
            ) from None


@dataclass
class ApiClient:
    endpoint: str
    timeout: float = 30.0
    signer: Signer | None = None
    max_retries: int = 4
    log: Callable[[str], None] = lambda message: None
    sleep: Callable[[float], None] = time.sleep
    _session: requests.Session = field(default_factory=requests.Session, init=False, repr=False)

    def url(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        url = self.endpoint + path
        params = {k: v for k, v in (query or {}).items() if v is not None}
        if params:
            url += "?" + _query_string(params)
        return url

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        json_body: Any = None,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        retry: RetryPolicy = "safe",
    ) -> Response:
        """Send one API request (retrying per ``retry``); raise ``ApiError`` for any status >= 300."""
        url = self.url(path, query)
        body = None
        base_headers = {"Accept": "application/json, application/problem+json", "User-Agent": USER_AGENT}
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
            base_headers["Content-Type"] = content_type
        base_headers.update(headers or {})
        attempt = 0
        while True:
            attempt += 1
            send_headers = self.signer.sign(method, url, base_headers, body) if self.signer else dict(base_headers)
            delay: float | None = None
            try:
                raw = self._session.request(
                    method,
                    url,
                    data=body,
                    headers=send_headers,
                    timeout=self.timeout,
                    allow_redirects=False,
                    auth=_as_signed,  # keeps requests from adding ~/.netrc credentials over the signature
                )
            except requests.RequestException as exc:
                if attempt > self.max_retries or not _may_retry_exception(exc, retry):
                    message = _describe_transport_error(self.endpoint, exc)
                    if retry != "safe" and not _never_sent(exc):
                        message += f"; the {method} may or may not have been applied: check before repeating it"
                    raise TransportError(message) from None
                why = _short_reason(exc)
            else:
                response = Response(raw.status_code, raw.reason or "", raw.headers, raw.content, attempt)
                if response.status < 300:
                    return response
                error = _api_error(method, path, response)
                if attempt > self.max_retries or not _may_retry_response(error, retry):
                    raise error
                why = f"HTTP {response.status} {response.reason}".strip()
                delay = _retry_after(response.headers)
            if delay is None:
                delay = min(8.0, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            self.log(f"lbctl: {method} {path}: {why}; retrying in {delay:.1f}s (attempt {attempt + 1})")
            self.sleep(delay)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def close(self) -> None:
        self._session.close()


def _as_signed(request: requests.PreparedRequest) -> requests.PreparedRequest:
    return request


def _never_sent(exc: requests.RequestException) -> bool:
    """Whether the request certainly did not reach the server (no connection was made)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError) and exc.args:
        reason = getattr(exc.args[0], "reason", exc.args[0])  # urllib3's MaxRetryError wraps the cause
        return isinstance(reason, NewConnectionError)  # refused, unreachable, name not resolved
    return False


def _may_retry_exception(exc: requests.RequestException, policy: RetryPolicy) -> bool:
    if _never_sent(exc):
        return True
    if policy != "safe":
        return False
    return isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout)


def _may_retry_response(error: ApiError, policy: RetryPolicy) -> bool:
    if policy != "safe":
        return False
    return error.status in _RETRYABLE_STATUS or error.problem_type.endswith(":request-in-progress")


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    try:
        return min(MAX_RETRY_AFTER_SECONDS, max(0.0, float(value))) if value else None
    except ValueError:
        return None  # an HTTP date: use our own backoff


def _api_error(method: str, path: str, response: Response) -> ApiError:
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    text = response.body.decode("utf-8", errors="replace")
    problem: dict[str, Any] | None = None
    if content_type in ("application/problem+json", "application/json"):
        try:
            document = json.loads(text)
        except ValueError:
            document = None
        if isinstance(document, dict) and "title" in document and "status" in document:
            problem = document
        elif isinstance(document, dict) and isinstance(document.get("message"), str):
            text = document["message"]  # API Gateway's own errors: {"message": "Forbidden"}
    return ApiError(method, path, response.status, reason=response.reason, problem=problem, text=text)


def _short_reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    text = str(exc)
    for marker in ("Connection refused", "Connection reset", "Remote end closed connection", "Name or service"):
        if marker in text:
            return marker.lower()
    return f"{type(exc).__name__}: {text[:200]}"


def _describe_transport_error(endpoint: str, exc: requests.RequestException) -> str:
    message = f"cannot reach {endpoint}: {_short_reason(exc)}"
    if is_loopback(endpoint) and "refused" in message:
        message += " (is the local runtime running? start it with `make local`)"
    return message
