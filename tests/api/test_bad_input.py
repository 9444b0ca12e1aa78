"""Every bad request gets a precise problem and leaves the table untouched.

One table of bad requests (the issue's acceptance test). Each case names the
status it must get and the field its ``errors[]`` must name, exactly as a
client would read it (``listeners[0].port``, ``If-Match``, ``(request body)``).
For every case the response must be ``application/problem+json`` with the
RFC 9457 members, and the DynamoDB table must be identical before and after:
a rejected request writes nothing.

Cases that change or delete a load balancer create it first and take the
snapshot afterwards, so "unchanged" is measured across the bad request only.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pytest

from lbcp_local.seed import LocalAccount, example_spec

if TYPE_CHECKING:
    from lbcp_local.invoke import ApiResponse
    from tests.conftest import Api, Cloud

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
PROBLEM = "application/problem+json"
COLLECTION = "/v1/load-balancers"
UNKNOWN_ID = "lb-0123456789abcdef0"
UNKNOWN_VPC = "vpc-0123456789abcdef0"
UNKNOWN_SUBNET = "subnet-0123456789abcdef0"
IDEMPOTENCY_KEY = "create-web-2024-01-01"

Json = Any
PathPart = str | int
Setup = Literal["none", "lb", "lb-patched", "lb-deleting", "lb-idempotent"]


# --- requests --------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: Json = None  # a JSON document, sent as application/json unless headers say otherwise
    raw: bytes | None = None  # exact bytes, for bodies that are not JSON documents
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    query: str = ""


@dataclass
class Context:
    """What a case can build its request from: the account and the load balancer of its setup."""

    account: LocalAccount
    lb_id: str = UNKNOWN_ID
    generation: int = 1

    def spec(self, name: str = "web") -> dict[str, Any]:
        return example_spec(self.account, name)

    @property
    def lb_path(self) -> str:
        return f"{COLLECTION}/{self.lb_id}"


Build = Callable[[Context], Request]
Edit = Callable[[dict[str, Any], LocalAccount], None]
Value = Json | Callable[[LocalAccount], Json]


def _resolve(value: Value, account: LocalAccount) -> Json:
    return value(account) if callable(value) else copy.deepcopy(value)


def _parent(document: Any, path: tuple[PathPart, ...]) -> Any:
    for part in path[:-1]:
        document = document[part]
    return document


def put(path: tuple[PathPart, ...], value: Value) -> Edit:
    """Set ``path`` in the spec (creating the last key if needed)."""

    def edit(spec: dict[str, Any], account: LocalAccount) -> None:
        _parent(spec, path)[path[-1]] = _resolve(value, account)

    return edit


def drop(path: tuple[PathPart, ...]) -> Edit:
    def edit(spec: dict[str, Any], account: LocalAccount) -> None:
        del _parent(spec, path)[path[-1]]

    return edit


def post(*edits: Edit, headers: dict[str, str] | None = None, name: str = "web") -> Build:
    """POST the example spec with ``edits`` applied."""

    def build(ctx: Context) -> Request:
        spec = ctx.spec(name)
        for edit in edits:
            edit(spec, ctx.account)
        return Request("POST", COLLECTION, body=spec, headers=dict(headers or {}))

    return build


def post_raw(data: bytes | Callable[[Context], bytes] | None, content_type: str | None = JSON) -> Build:
    def build(ctx: Context) -> Request:
        raw = data(ctx) if callable(data) else data
        headers = {"content-type": content_type} if content_type is not None else {}
        return Request("POST", COLLECTION, raw=raw, headers=headers)

    return build


def spec_bytes(ctx: Context) -> bytes:
    return json.dumps(ctx.spec()).encode()


IfMatch = str | Literal["current"] | None


def _if_match(value: IfMatch, ctx: Context) -> dict[str, str]:
    if value is None:
        return {}
    return {"If-Match": f'"{ctx.generation}"' if value == "current" else value}


def patch(
    body: Value = None,
    *,
    raw: bytes | None = None,
    if_match: IfMatch = "current",
    content_type: str = MERGE_PATCH,
    lb: str | None = None,
) -> Build:
    """PATCH the setup's load balancer (or ``lb``) with a merge patch."""

    def build(ctx: Context) -> Request:
        document = _resolve(body, ctx.account)
        data = raw if raw is not None else json.dumps(document).encode()
        headers = {"content-type": content_type, **_if_match(if_match, ctx)}
        path = f"{COLLECTION}/{lb}" if lb is not None else ctx.lb_path
        return Request("PATCH", path, raw=data, headers=headers)

    return build


def patch_listeners(change: Callable[[list[dict[str, Any]], LocalAccount], None]) -> Build:
    """PATCH the whole ``listeners`` array (merge patch replaces arrays) after ``change``."""

    def body(account: LocalAccount) -> Json:
        listeners: list[dict[str, Any]] = example_spec(account)["listeners"]
        change(listeners, account)
        return {"listeners": listeners}

    return patch(body)


def call(method: str, path: str | Callable[[Context], str], query: str = "", **headers: str) -> Build:
    def build(ctx: Context) -> Request:
        return Request(method, path(ctx) if callable(path) else path, headers=dict(headers), query=query)

    return build


def lb_path(suffix: str = "") -> Callable[[Context], str]:
    return lambda ctx: ctx.lb_path + suffix


# --- values --------------------------------------------------------------------------


def nested_arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def forged_token(keys: dict[str, str]) -> str:
    raw = json.dumps(keys, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def certificate_in_region(region: str) -> Callable[[LocalAccount], str]:
    def value(account: LocalAccount) -> str:
        parts = account.certificate_arn.split(":")
        parts[3] = region
        return ":".join(parts)

    return value


def certificate_in_account(account_id: str) -> Callable[[LocalAccount], str]:
    def value(account: LocalAccount) -> str:
        parts = account.certificate_arn.split(":")
        parts[4] = account_id
        return ":".join(parts)

    return value


def padded_spec(ctx: Context) -> bytes:
    # A valid spec, made too large only by insignificant whitespace: the limit is on bytes.
    data = spec_bytes(ctx)
    return data[:-1] + b" " * (64 * 1024 + 1 - len(data)) + b"}"


def duplicate_key_spec(ctx: Context) -> bytes:
    # A valid spec that names "capacity" twice: parsers disagree on which one wins.
    return spec_bytes(ctx)[:-1] + b', "capacity": {"min": 1, "max": 100}}'


def invalid_utf8_spec(ctx: Context) -> bytes:
    return spec_bytes(ctx).replace(b'"web"', b'"w\xffb"', 1)


CLASSIC_TLS = [{"protocol": "TLS", "port": 443, "defaultBackend": "app"}]


def classic(spec: dict[str, Any], account: LocalAccount) -> None:
    spec["type"] = "classic"


def classic_without_rules(spec: dict[str, Any], account: LocalAccount) -> None:
    spec["type"] = "classic"
    spec["listeners"][1]["rules"] = []


# --- cases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    request: Build
    status: int
    # The field errors[] must name; None where no field is to blame (an unknown path, a wrong
    # method) or where the case is about how a field is named (unknown-empty-key).
    field: str | None
    setup: Setup = "none"
    headers: dict[str, str] = dataclasses.field(default_factory=dict)  # response headers that must be present


RULE = ("listeners", 1, "rules", 0)
HEALTH = ("backends", 0, "healthCheck")
TARGET = ("backends", 0, "targets", 0)

CASES: list[Case] = [
    # --- the body as a whole: JSON syntax, top-level type, size, media type ---------
    Case("json-truncated", post_raw(b'{"name": "web", "type": '), 400, "(request body)"),
    Case("json-trailing-comma", post_raw(b'{"name": "web",}'), 400, "(request body)"),
    Case("json-nan", post_raw(b'{"name": "web", "capacity": {"min": NaN, "max": 2}}'), 400, "(request body)"),
    Case(
        "json-infinity",
        post_raw(b'{"name": "web", "capacity": {"min": 1, "max": Infinity}}'),
        400,
        "(request body)",
    ),
    Case("json-duplicate-keys", post_raw(duplicate_key_spec), 400, "(request body)"),
    Case("json-single-quotes", post_raw(b"{'name': 'web'}"), 400, "(request body)"),
    Case("json-invalid-utf8", post_raw(invalid_utf8_spec), 400, "(request body)"),
    Case("json-nested-too-deep", post_raw(nested_arrays(20_000)), 400, "(request body)"),
    Case(
        "json-nested-too-deep-in-a-field",
        post_raw(b'{"name": "web", "tags": ' + nested_arrays(20_000) + b"}"),
        400,
        "(request body)",
    ),
    Case(
        "json-huge-integer",
        post_raw(b'{"capacity": {"min": 1' + b"0" * 5000 + b', "max": 2}}'),
        400,
        "(request body)",
    ),
    Case("body-array", post_raw(lambda ctx: b"[" + spec_bytes(ctx) + b"]"), 400, "(request body)"),
    Case("body-string", post_raw(b'"web"'), 400, "(request body)"),
    Case("body-null", post_raw(b"null"), 400, "(request body)"),
    Case("body-number", post_raw(b"42"), 400, "(request body)"),
    Case("body-empty", post_raw(b""), 400, "(request body)"),
    Case("body-absent", post_raw(None), 400, "(request body)"),
    Case("body-whitespace", post_raw(b"  \n "), 400, "(request body)"),
    Case("body-over-64KiB", post_raw(padded_spec), 413, "(request body)"),
    Case("content-type-text-plain", post_raw(spec_bytes, "text/plain"), 415, "Content-Type"),
    Case("content-type-missing", post_raw(spec_bytes, None), 415, "Content-Type"),
    Case("content-type-form", post_raw(spec_bytes, "application/x-www-form-urlencoded"), 415, "Content-Type"),
    # Media types are case-insensitive (RFC 9110 8.3.1): this one is JSON, and its body has a bad port.
    Case(
        "content-type-uppercase-bad-port",
        post(put(("listeners", 0, "port"), 0), headers={"content-type": "Application/JSON"}),
        400,
        "listeners[0].port",
    ),
    Case("content-type-merge-patch-on-post", post_raw(spec_bytes, MERGE_PATCH), 415, "Content-Type"),
    # --- required fields -------------------------------------------------------------
    Case("missing-name", post(drop(("name",))), 400, "name"),
    Case("missing-type", post(drop(("type",))), 400, "type"),
    Case("missing-vpcId", post(drop(("vpcId",))), 400, "vpcId"),
    Case("missing-listeners", post(drop(("listeners",))), 400, "listeners"),
    Case("missing-backends", post(drop(("backends",))), 400, "backends"),
    Case("missing-capacity", post(drop(("capacity",))), 400, "capacity"),
    Case("missing-capacity-max", post(drop(("capacity", "max"))), 400, "capacity.max"),
    Case(
        "missing-listener-defaultBackend",
        post(drop(("listeners", 0, "defaultBackend"))),
        400,
        "listeners[0].defaultBackend",
    ),
    Case("missing-target-port", post(drop((*TARGET, "port"))), 400, "backends[0].targets[0].port"),
    Case("null-name", post(put(("name",), None)), 400, "name"),
    # --- unknown fields --------------------------------------------------------------
    Case("unknown-top-level-field", post(put(("colour",), "blue")), 400, "colour"),
    Case("unknown-listener-field", post(put(("listeners", 0, "colour"), "blue")), 400, "listeners[0].colour"),
    Case(
        "unknown-health-check-field",
        post(put((*HEALTH, "timeout"), 5)),
        400,
        "backends[0].healthCheck.timeout",
    ),
    # An unknown key that is the empty string: errors[] must still name it visibly (field is not "").
    Case("unknown-empty-key", post(put(("",), 1)), 400, None),
    Case("snake-case-field", post(put(("vpc_id",), lambda a: a.vpc_id), drop(("vpcId",))), 400, "vpc_id"),
    # --- wrong types -----------------------------------------------------------------
    Case("port-as-string", post(put(("listeners", 0, "port"), "80")), 400, "listeners[0].port"),
    Case("min-as-bool", post(put(("capacity", "min"), True)), 400, "capacity.min"),
    Case("name-as-int", post(put(("name",), 42)), 400, "name"),
    Case("max-as-float", post(put(("capacity", "max"), 2.5)), 400, "capacity.max"),
    Case("subnets-as-object", post(put(("subnetIds",), {"a": "subnet-0123456789abcdef0"})), 400, "subnetIds"),
    Case("listeners-as-string", post(put(("listeners",), "HTTP:80")), 400, "listeners"),
    Case("capacity-as-list", post(put(("capacity",), [2, 6])), 400, "capacity"),
    Case("waf-enabled-as-string", post(put(("waf",), {"enabled": "true"})), 400, "waf.enabled"),
    Case("listeners-empty", post(put(("listeners",), [])), 400, "listeners"),
    Case("targets-empty", post(put(("backends", 0, "targets"), [])), 400, "backends[0].targets"),
    # --- numbers out of range --------------------------------------------------------
    Case("port-0", post(put(("listeners", 0, "port"), 0)), 400, "listeners[0].port"),
    Case("port-65536", post(put(("listeners", 1, "port"), 65536)), 400, "listeners[1].port"),
    Case("port-negative", post(put((*TARGET, "port"), -8080)), 400, "backends[0].targets[0].port"),
    Case("capacity-min-0", post(put(("capacity", "min"), 0)), 400, "capacity.min"),
    Case("capacity-max-101", post(put(("capacity", "max"), 101)), 400, "capacity.max"),
    Case("capacity-min-huge", post(put(("capacity", "min"), 10**30)), 400, "capacity.min"),
    Case("capacity-min-over-max", post(put(("capacity", "min"), 7)), 400, "capacity.min"),
    Case("drain-timeout-negative", post(put(("drain",), {"timeoutSeconds": -1})), 400, "drain.timeoutSeconds"),
    Case(
        "drain-lifetime-zero",
        post(put(("drain",), {"maxConnectionLifetimeSeconds": 0})),
        400,
        "drain.maxConnectionLifetimeSeconds",
    ),
    Case(
        "health-protocol-unknown",
        post(put((*HEALTH, "protocol"), "UDP")),
        400,
        "backends[0].healthCheck.protocol",
    ),
    Case(
        "pending-timeout-negative",
        post(put(("lifecycle",), {"pendingTimeoutSeconds": -600})),
        400,
        "lifecycle.pendingTimeoutSeconds",
    ),
    Case(
        "health-interval-too-large",
        post(put((*HEALTH, "intervalSeconds"), 301)),
        400,
        "backends[0].healthCheck.intervalSeconds",
    ),
    Case(
        "health-timeout-not-below-interval",
        post(put((*HEALTH, "timeoutSeconds"), 10)),
        400,
        "backends[0].healthCheck.timeoutSeconds",
    ),
    Case(
        "unhealthy-timeout-below-two-heartbeats",
        post(put(("lifecycle",), {"heartbeatIntervalSeconds": 30, "unhealthyTimeoutSeconds": 30})),
        400,
        "lifecycle.unhealthyTimeoutSeconds",
    ),
    Case(
        "too-many-listeners",
        post(
            put(
                ("listeners",),
                [{"protocol": "HTTP", "port": 8000 + i, "defaultBackend": "app"} for i in range(11)],
            )
        ),
        400,
        "listeners",
    ),
    # --- names -----------------------------------------------------------------------
    Case("name-uppercase", post(put(("name",), "Web")), 400, "name"),
    Case("name-leading-hyphen", post(put(("name",), "-web")), 400, "name"),
    Case("name-trailing-hyphen", post(put(("name",), "web-")), 400, "name"),
    Case("name-too-long", post(put(("name",), "a" * 64)), 400, "name"),
    Case("name-empty", post(put(("name",), "")), 400, "name"),
    Case("name-underscore", post(put(("name",), "web_app")), 400, "name"),
    Case("name-unicode-letter", post(put(("name",), "wéb")), 400, "name"),
    Case("name-emoji", post(put(("name",), "web\N{ROCKET}")), 400, "name"),
    Case("name-shaped-like-an-id", post(put(("name",), UNKNOWN_ID)), 400, "name"),
    Case("name-trailing-newline", post(put(("name",), "web\n")), 400, "name"),
    # --- listeners, protocols, certificates -------------------------------------------
    Case("tcp-on-application", post(put(("listeners", 0, "protocol"), "TCP")), 400, "listeners[0].protocol"),
    Case("unknown-protocol", post(put(("listeners", 0, "protocol"), "UDP")), 400, "listeners[0].protocol"),
    Case("rules-on-classic", post(classic), 400, "listeners[1].rules"),
    Case(
        "https-without-certificate",
        post(drop(("listeners", 1, "certificateArn"))),
        400,
        "listeners[1].certificateArn",
    ),
    Case(
        "tls-without-certificate",
        post(classic_without_rules, put(("listeners",), CLASSIC_TLS)),
        400,
        "listeners[0].certificateArn",
    ),
    Case(
        "certificate-on-http",
        post(put(("listeners", 0, "certificateArn"), lambda a: a.certificate_arn)),
        400,
        "listeners[0].certificateArn",
    ),
    Case(
        "certificate-not-an-arn",
        post(put(("listeners", 1, "certificateArn"), "my-certificate")),
        400,
        "listeners[1].certificateArn",
    ),
    Case("duplicate-listener-port", post(put(("listeners", 1, "port"), 80)), 400, "listeners[1].port"),
    Case(
        "unknown-default-backend",
        post(put(("listeners", 0, "defaultBackend"), "nope")),
        400,
        "listeners[0].defaultBackend",
    ),
    Case("unknown-rule-backend", post(put((*RULE, "backend"), "nope")), 400, "listeners[1].rules[0].backend"),
    Case("duplicate-backend-name", post(put(("backends", 1, "name"), "app")), 400, "backends[1].name"),
    Case("rule-without-conditions", post(drop((*RULE, "pathPrefix"))), 400, "listeners[1].rules[0]"),
    # --- strings that would reach a proxy configuration --------------------------------
    Case(
        "path-prefix-quote",
        post(put((*RULE, "pathPrefix"), '/api"')),
        400,
        "listeners[1].rules[0].pathPrefix",
    ),
    Case(
        "path-prefix-semicolon",
        post(put((*RULE, "pathPrefix"), "/api;return 200")),
        400,
        "listeners[1].rules[0].pathPrefix",
    ),
    Case(
        "path-prefix-space",
        post(put((*RULE, "pathPrefix"), "/api /admin")),
        400,
        "listeners[1].rules[0].pathPrefix",
    ),
    Case(
        "path-prefix-brace",
        post(put((*RULE, "pathPrefix"), "/api}")),
        400,
        "listeners[1].rules[0].pathPrefix",
    ),
    Case(
        "path-prefix-newline",
        post(put((*RULE, "pathPrefix"), "/api/\n")),
        400,
        "listeners[1].rules[0].pathPrefix",
    ),
    Case(
        "path-prefix-relative",
        post(put((*RULE, "pathPrefix"), "api/")),
        400,
        "listeners[1].rules[0].pathPrefix",
    ),
    Case(
        "rule-host-semicolon",
        post(put((*RULE, "host"), "api.example.com;")),
        400,
        "listeners[1].rules[0].host",
    ),
    Case(
        "rule-host-newline",
        post(put((*RULE, "host"), "api.example.com\n")),
        400,
        "listeners[1].rules[0].host",
    ),
    Case(
        "target-host-injection",
        post(put((*TARGET, "host"), "10.0.0.1:80 backup")),
        400,
        "backends[0].targets[0].host",
    ),
    Case(
        "target-host-newline",
        post(put((*TARGET, "host"), "app.internal\n")),
        400,
        "backends[0].targets[0].host",
    ),
    Case("health-path-quote", post(put((*HEALTH, "path"), "/healthz'")), 400, "backends[0].healthCheck.path"),
    # --- subnets, capacity, WAF, entry, scaling, rollout, tags --------------------------
    Case(
        "seven-subnets",
        post(put(("subnetIds",), [f"subnet-0123456789abcdef{i}" for i in range(7)])),
        400,
        "subnetIds",
    ),
    Case("duplicate-subnet", post(put(("subnetIds", 1), lambda a: a.subnet_ids[0])), 400, "subnetIds[1]"),
    Case(
        "single-subnet-on-application",
        post(put(("subnetIds",), lambda a: a.subnet_ids[:1])),
        400,
        "subnetIds",
    ),
    Case("subnet-id-malformed", post(put(("subnetIds", 1), "subnet-xyz")), 400, "subnetIds[1]"),
    Case(
        "subnet-id-trailing-newline",
        post(put(("subnetIds", 0), lambda a: a.subnet_ids[0] + "\n")),
        400,
        "subnetIds[0]",
    ),
    Case("waf-on-classic", post(classic_without_rules, put(("waf",), {"enabled": True})), 400, "waf.enabled"),
    # Without a proxy, enabling the WAF picks NGINX; asking for HAProxy with it is refused.
    Case("waf-with-haproxy", post(put(("proxy",), "haproxy"), put(("waf",), {"enabled": True})), 400, "waf.enabled"),
    Case("waf-unknown-mode", post(put(("waf",), {"enabled": False, "mode": "deny"})), 400, "waf.mode"),
    Case("entry-unknown-mode", post(put(("entry",), {"mode": "anycast"})), 400, "entry.mode"),
    Case(
        "entry-ttl-in-pool-mode",
        post(put(("entry",), {"mode": "pool", "dnsTtlSeconds": 30})),
        400,
        "entry.dnsTtlSeconds",
    ),
    Case(
        "scaling-without-metrics",
        post(put(("scaling",), {"metrics": {"cpu": None, "memory": None, "activeConnections": None}})),
        400,
        "scaling.metrics",
    ),
    Case(
        "scaling-band-inverted",
        post(put(("scaling",), {"metrics": {"cpu": {"scaleOutAbove": 50, "scaleInBelow": 60}}})),
        400,
        "scaling.metrics.cpu.scaleInBelow",
    ),
    Case(
        "rollout-cannot-start",
        post(put(("rollout",), {"maxSurge": 0, "maxUnavailable": 0})),
        400,
        "rollout.maxSurge",
    ),
    Case(
        "too-many-rollout-alarms",
        post(put(("rollout",), {"alarmNames": [f"alarm-{i}" for i in range(11)]})),
        400,
        "rollout.alarmNames",
    ),
    Case("rollout-alarm-name-empty", post(put(("rollout",), {"alarmNames": [""]})), 400, "rollout.alarmNames[0]"),
    Case(
        "rollout-alarm-name-newline",
        post(put(("rollout",), {"alarmNames": ["api-5xx\n"]})),
        400,
        "rollout.alarmNames[0]",
    ),
    Case(
        "rollout-alarm-name-too-long",
        post(put(("rollout",), {"alarmNames": ["a" * 256]})),
        400,
        "rollout.alarmNames[0]",
    ),
    Case(
        "rollout-alarm-names-duplicate",
        post(put(("rollout",), {"alarmNames": ["api-5xx", "api-5xx"]})),
        400,
        "rollout.alarmNames[1]",
    ),
    Case(
        "follow-latest-image-not-bool",
        post(put(("rollout",), {"followLatestImage": "yes"})),
        400,
        "rollout.followLatestImage",
    ),
    Case(
        "follow-latest-image-with-image-id",
        post(put(("rollout",), {"followLatestImage": True}), put(("instance",), {"imageId": "ami-0123456789abcdef0"})),
        400,
        "rollout.followLatestImage",
    ),
    Case("tag-prefix-aws", post(put(("tags",), {"aws:owner": "me"})), 400, "tags.aws:owner"),
    Case("tag-prefix-lbcp", post(put(("tags",), {"lbcp:lb-id": UNKNOWN_ID})), 400, "tags.lbcp:lb-id"),
    Case("tag-prefix-aws-uppercase", post(put(("tags",), {"AWS:owner": "me"})), 400, "tags.AWS:owner"),
    Case("tag-key-with-semicolon", post(put(("tags",), {"cost;centre": "42"})), 400, "tags.cost;centre"),
    Case("tag-value-newline", post(put(("tags",), {"team": "web\n"})), 400, "tags.team"),
    Case("too-many-tags", post(put(("tags",), {f"k{i}": "v" for i in range(21)})), 400, "tags"),
    # --- well formed, but impossible in this account (422) -----------------------------
    Case("unknown-vpc", post(put(("vpcId",), UNKNOWN_VPC)), 422, "vpcId"),
    Case("unknown-subnet", post(put(("subnetIds", 1), UNKNOWN_SUBNET)), 422, "subnetIds[1]"),
    Case(
        "subnet-of-another-vpc",
        post(put(("subnetIds", 1), lambda a: a.other_vpc_subnet_id)),
        422,
        "subnetIds[1]",
    ),
    Case(
        "two-subnets-in-one-zone",
        post(put(("subnetIds",), lambda a: [*a.subnet_ids, a.spare_subnet_id])),
        422,
        "subnetIds[2]",
    ),
    Case(
        "unknown-certificate-id",
        post(
            put(
                ("listeners", 1, "certificateArn"),
                lambda a: a.certificate_arn.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000",
            )
        ),
        422,
        "listeners[1].certificateArn",
    ),
    Case(
        "certificate-of-another-account",
        post(put(("listeners", 1, "certificateArn"), certificate_in_account("999999999999"))),
        422,
        "listeners[1].certificateArn",
    ),
    Case(
        "certificate-not-issued",
        post(put(("listeners", 1, "certificateArn"), lambda a: a.pending_certificate_arn)),
        422,
        "listeners[1].certificateArn",
    ),
    Case(
        "certificate-of-another-region",
        post(put(("listeners", 1, "certificateArn"), certificate_in_region("eu-west-1"))),
        422,
        "listeners[1].certificateArn",
    ),
    Case("unknown-image", post(put(("instance",), {"imageId": "ami-0123456789abcdef0"})), 422, "instance.imageId"),
    Case(
        "image-of-another-architecture",
        post(put(("instance",), lambda a: {"type": "c7g.large", "imageId": a.image_id})),  # an x86_64 image
        422,
        "instance.imageId",
    ),
    Case("name-in-use", post(), 409, "name", setup="lb"),
    # --- PATCH -------------------------------------------------------------------------
    Case("patch-without-if-match", patch({"capacity": {"max": 8}}, if_match=None), 428, "If-Match", setup="lb"),
    Case("patch-empty-if-match", patch({"capacity": {"max": 8}}, if_match=""), 428, "If-Match", setup="lb"),
    Case(
        "patch-stale-if-match",
        patch({"capacity": {"max": 9}}, if_match='"1"'),
        412,
        "If-Match",
        setup="lb-patched",
        headers={"ETag": '"2"'},
    ),
    Case("patch-future-if-match", patch({"capacity": {"max": 9}}, if_match="99"), 412, "If-Match", setup="lb"),
    Case(
        "patch-garbage-if-match",
        patch({"capacity": {"max": 9}}, if_match="yesterday"),
        400,
        "If-Match",
        setup="lb",
    ),
    Case("patch-immutable-name", patch({"name": "api"}), 422, "name", setup="lb"),
    Case("patch-remove-name", patch({"name": None}), 422, "name", setup="lb"),
    Case("patch-immutable-type", patch({"type": "classic"}), 422, "type", setup="lb"),
    Case("patch-immutable-vpc", patch(lambda a: {"vpcId": a.other_vpc_id}), 422, "vpcId", setup="lb"),
    Case("patch-read-only-status", patch({"status": {"phase": "Ready"}}), 400, "status", setup="lb"),
    Case("patch-read-only-id", patch({"id": UNKNOWN_ID}), 400, "id", setup="lb"),
    Case("patch-read-only-generation", patch({"generation": 7}), 400, "generation", setup="lb"),
    Case("patch-min-over-max", patch({"capacity": {"min": 10}}), 400, "capacity.min", setup="lb"),
    Case("patch-remove-capacity", patch({"capacity": None}), 400, "capacity", setup="lb"),
    Case("patch-unknown-field", patch({"colour": "blue"}), 400, "colour", setup="lb"),
    Case(
        "patch-port-0",
        patch_listeners(lambda ls, a: ls[0].update(port=0)),
        400,
        "listeners[0].port",
        setup="lb",
    ),
    Case(
        "patch-pending-certificate",
        patch_listeners(lambda ls, a: ls[1].update(certificateArn=a.pending_certificate_arn)),
        422,
        "listeners[1].certificateArn",
        setup="lb",
    ),
    Case(
        "patch-subnet-of-another-vpc",
        patch(lambda a: {"subnetIds": [a.subnet_ids[0], a.other_vpc_subnet_id]}),
        422,
        "subnetIds[1]",
        setup="lb",
    ),
    Case(
        "patch-content-type-text-plain",
        patch({"capacity": {"max": 8}}, content_type="text/plain"),
        415,
        "Content-Type",
        setup="lb",
    ),
    Case(
        "patch-content-type-json-patch",
        patch(
            [{"op": "replace", "path": "/capacity/max", "value": 8}],
            content_type="application/json-patch+json",
        ),
        415,
        "Content-Type",
        setup="lb",
    ),
    Case("patch-body-array", patch([{"capacity": {"max": 8}}]), 400, "(request body)", setup="lb"),
    Case("patch-body-null", patch(raw=b"null"), 400, "(request body)", setup="lb"),
    Case("patch-malformed-json", patch(raw=b'{"capacity": {"max": 8}'), 400, "(request body)", setup="lb"),
    Case("patch-being-deleted", patch({"capacity": {"max": 8}}), 409, "id", setup="lb-deleting"),
    Case("patch-unknown-id", patch({"capacity": {"max": 8}}, if_match='"1"', lb=UNKNOWN_ID), 404, "id"),
    # --- DELETE ------------------------------------------------------------------------
    Case(
        "delete-stale-if-match",
        call("DELETE", lb_path(), **{"If-Match": '"1"'}),
        412,
        "If-Match",
        setup="lb-patched",
        headers={"ETag": '"2"'},
    ),
    Case(
        "delete-garbage-if-match",
        call("DELETE", lb_path(), **{"If-Match": "W/1.0"}),
        400,
        "If-Match",
        setup="lb",
    ),
    Case("delete-unknown-id", call("DELETE", f"{COLLECTION}/{UNKNOWN_ID}"), 404, "id"),
    # --- reads: query parameters, unknown resources, routing -----------------------------
    Case("list-limit-0", call("GET", COLLECTION, "limit=0"), 400, "limit"),
    Case("list-limit-1000", call("GET", COLLECTION, "limit=1000"), 400, "limit"),
    Case("list-limit-abc", call("GET", COLLECTION, "limit=abc"), 400, "limit"),
    Case("list-limit-negative", call("GET", COLLECTION, "limit=-1"), 400, "limit"),
    Case("list-garbage-next-token", call("GET", COLLECTION, "nextToken=not-a-token"), 400, "nextToken"),
    Case("list-next-token-too-long", call("GET", COLLECTION, "nextToken=" + "A" * 4096), 400, "nextToken"),
    Case(
        "list-forged-next-token",
        call(
            "GET",
            COLLECTION,
            "nextToken=" + forged_token({"gsi1pk": "IDEMPOTENCY", "gsi1sk": "x", "pk": "x", "sk": "x"}),
        ),
        400,
        "nextToken",
        setup="lb",
    ),
    Case(
        "events-garbage-next-token",
        call("GET", lb_path("/events"), "nextToken=%%%"),
        400,
        "nextToken",
        setup="lb",
    ),
    Case("events-limit-0", call("GET", lb_path("/events"), "limit=0"), 400, "limit", setup="lb"),
    Case("get-unknown-id", call("GET", f"{COLLECTION}/{UNKNOWN_ID}"), 404, "id"),
    Case("get-unknown-name", call("GET", f"{COLLECTION}/nothing-here"), 404, "id"),
    Case("events-unknown-id", call("GET", f"{COLLECTION}/{UNKNOWN_ID}/events"), 404, "id"),
    Case("get-quoted-name", call("GET", f'{COLLECTION}/"web"'), 404, "id", setup="lb"),
    Case("unknown-path", call("GET", "/v1/load-balancer"), 404, None),
    Case("unknown-version", call("GET", "/v2/load-balancers"), 404, None),
    Case("put-on-collection", call("PUT", COLLECTION), 405, None, headers={"Allow": "GET, POST"}),
    Case(
        "post-on-item",
        call("POST", lb_path()),
        405,
        None,
        setup="lb",
        headers={"Allow": "DELETE, GET, PATCH"},
    ),
    Case(
        "patch-on-collection",
        lambda ctx: Request("PATCH", COLLECTION, body={"capacity": {"max": 8}}, headers={"If-Match": "1"}),
        405,
        None,
        headers={"Allow": "GET, POST"},
    ),
    Case("delete-on-collection", call("DELETE", COLLECTION), 405, None, headers={"Allow": "GET, POST"}),
    # --- Idempotency-Key -------------------------------------------------------------
    Case("idempotency-key-with-spaces", post(headers={"Idempotency-Key": "my key"}), 400, "Idempotency-Key"),
    Case("idempotency-key-too-long", post(headers={"Idempotency-Key": "k" * 256}), 400, "Idempotency-Key"),
    Case("idempotency-key-non-ascii", post(headers={"Idempotency-Key": "clé-1"}), 400, "Idempotency-Key"),
    Case("idempotency-key-empty", post(headers={"Idempotency-Key": ""}), 400, "Idempotency-Key"),
    Case(
        "idempotency-key-reused-with-another-body",
        post(headers={"Idempotency-Key": IDEMPOTENCY_KEY}, name="web-two"),
        422,
        "Idempotency-Key",
        setup="lb-idempotent",
    ),
]


# --- the test ------------------------------------------------------------------------


def _send(api: Api, request: Request) -> ApiResponse:
    try:
        return api.request(
            request.method,
            request.path,
            request.body,
            raw=request.raw,
            headers=request.headers,
            query=request.query,
        )
    except Exception as exc:  # the Lambda itself failed: API Gateway would answer 502
        pytest.fail(f"the handler raised {exc!r} instead of answering (API Gateway would return 502)")


def _set_up(api: Api, ctx: Context, setup: Setup) -> None:
    if setup == "none":
        return
    headers = {"Idempotency-Key": IDEMPOTENCY_KEY} if setup == "lb-idempotent" else {}
    created = api.create(ctx.spec(), headers=headers)
    assert created.status == 201, created.body
    ctx.lb_id = created.json()["id"]
    ctx.generation = created.json()["generation"]
    if setup == "lb-deleting":
        deleted = api.request("DELETE", ctx.lb_path)
        assert deleted.status == 202, deleted.body
    if setup == "lb-patched":
        changed = api.request(
            "PATCH", ctx.lb_path, {"capacity": {"max": 8}}, headers={"If-Match": f'"{ctx.generation}"'}
        )
        assert changed.status == 200, changed.body
        ctx.generation = changed.json()["generation"]
        assert ctx.generation == 2


def assert_problem(response: ApiResponse, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with our members; returns its body."""
    assert response.status == status, f"expected {status}, got {response.status}: {response.body[:800]!r}"
    content_type = (response.header("Content-Type") or "").split(";")[0].strip()
    assert content_type == PROBLEM, f"Content-Type is {content_type!r}"
    problem = response.json()
    assert isinstance(problem, dict), problem
    assert isinstance(problem.get("type"), str)
    assert problem["type"].startswith("urn:lbcp:problem:"), problem["type"]
    assert isinstance(problem.get("title"), str)
    assert problem["title"]
    assert problem.get("status") == status
    assert isinstance(problem.get("detail"), str)
    assert problem["detail"].strip()
    errors = problem.get("errors")
    assert isinstance(errors, list), problem
    for error in errors:
        assert isinstance(error, dict), error
        for member in ("field", "in", "code", "message"):
            assert isinstance(error.get(member), str), f"{member} missing in {error}"
            assert error[member], f"{member} empty in {error}"
        assert error["in"] in ("body", "header", "query", "path"), error
        if error["in"] == "body":
            assert isinstance(error.get("pointer"), str), f"a body error needs a pointer: {error}"
            assert error["pointer"].startswith("#"), error
        else:
            assert "pointer" not in error, f"only body errors have a pointer: {error}"
    return problem


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_request_is_refused_precisely_and_writes_nothing(api: Api, cloud: Cloud, case: Case) -> None:
    ctx = Context(cloud.account)
    _set_up(api, ctx, case.setup)
    request = case.request(ctx)
    before = cloud.table_items()

    response = _send(api, request)

    problem = assert_problem(response, case.status)
    fields = [error["field"] for error in problem["errors"]]
    if case.field is not None:
        assert case.field in fields, f"errors[] should name {case.field!r}; it names {fields}: {problem}"
    for name, value in case.headers.items():
        assert response.header(name) == value, f"{name}: {response.header(name)!r}, expected {value!r}"
    assert cloud.table_items() == before, "a refused request changed the table"


def test_case_ids_are_unique_and_the_table_is_large_enough() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 45


def test_pointers_address_the_offending_value(api: Api, spec: dict[str, Any]) -> None:
    """A body error's pointer is the JSON pointer of its field, so a program can find the value."""
    spec["listeners"][1]["rules"][0]["pathPrefix"] = "/a b"
    spec["tags"] = {"a/b": "semi;colon"}
    problem = assert_problem(api.create(spec), 400)
    pointers = {error["field"]: error.get("pointer") for error in problem["errors"]}
    assert pointers.get("listeners[1].rules[0].pathPrefix") == "#/listeners/1/rules/0/pathPrefix"
    assert pointers.get("tags.a/b") == "#/tags/a~1b"
