"""The load balancer spec: what a user declares.

Shape and per-field rules live here, in the types; rules that relate several
fields (a listener naming a backend, unique ports, min <= max) live in
``lbcp.logic.spec_rules`` so that each error can name the exact field.

Every model forbids unknown fields and validates strictly (no "80" for 80, no
"true" for true): a spec is a contract and silent coercion hides mistakes.
Optional sections carry production defaults, so a stored spec is always the
complete, explicit configuration the control plane acts on. A default on one
side of a cross-field rule follows the user's side of it instead
(``derive_default``): a 5 s health-check interval gets a 4 s timeout.

Strings that reach a proxy configuration (names, hosts, paths) are restricted
to characters that cannot break out of a HAProxy or NGINX directive.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Final, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

MAX_LBVMS_PER_LOAD_BALANCER = 100
MAX_SUBNETS = 6  # one per Availability Zone; no AWS region has more than six
MAX_LISTENERS = 10
MAX_BACKENDS = 20
MAX_TARGETS_PER_BACKEND = 100
MAX_RULES_PER_LISTENER = 50
MAX_TAGS = 20
MAX_ROLLOUT_ALARMS = 10

LB_ID_PATTERN = r"^lb-[0-9a-f]{17}$"


class SpecModel(BaseModel):
    """Base for every part of the spec: camelCase on the wire, strict, closed."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
        # The default (Rust) engine: its `$` matches only at the very end, while
        # Python's also matches before a final newline ("web\n" would pass).
    )


def derive_default(model: BaseModel, field: str, value: object) -> None:
    """Give ``field`` of a just-validated ``model`` the default ``value`` derived from the user's fields.

    Only when the user left the field out (it is not in ``model_fields_set``): a
    value the user sent is never replaced, and one that breaks a rule is refused
    by ``lbcp.logic.spec_rules``, naming that field. Without this, a fixed default
    on one side of a cross-field rule would refuse a spec for a field its user
    never sent. A stored spec is explicit, so it reads back unchanged.
    """
    if field not in model.model_fields_set:
        # Models are frozen; this runs inside validation, before anyone holds the model.
        object.__setattr__(model, field, value)


# --- scalar types -----------------------------------------------------------

DNS_LABEL_PATTERN = r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$"
VPC_ID_PATTERN = r"^vpc-[0-9a-f]{8,17}$"
SUBNET_ID_PATTERN = r"^subnet-[0-9a-f]{8,17}$"
IMAGE_ID_PATTERN = r"^ami-[0-9a-f]{8,17}$"
INSTANCE_TYPE_PATTERN = r"^[a-z][a-z0-9-]*\.[a-z0-9]+$"
CERTIFICATE_ARN_PATTERN = r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]{1,64}$"
PATH_PREFIX_PATTERN = r"^/[A-Za-z0-9._~%/-]*$"
TAG_KEY_PATTERN = r"^[\w .:/=+@-]+$"
TAG_VALUE_PATTERN = r"^[\w .:/=+@-]*$"
# CloudWatch accepts any name of 1 to 255 characters; control characters would only hide a typo.
ALARM_NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"

# What each pattern means, for error messages a person can act on.
PATTERN_HINTS = {
    DNS_LABEL_PATTERN: "must be lowercase letters, digits and hyphens, starting and ending with a letter or digit",
    VPC_ID_PATTERN: "must be a VPC id such as vpc-0123456789abcdef0",
    SUBNET_ID_PATTERN: "must be a subnet id such as subnet-0123456789abcdef0",
    IMAGE_ID_PATTERN: "must be an AMI id such as ami-0123456789abcdef0",
    INSTANCE_TYPE_PATTERN: "must be an EC2 instance type such as c6i.large",
    CERTIFICATE_ARN_PATTERN: "must be an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/ID)",
    PATH_PREFIX_PATTERN: "must start with '/' and contain only letters, digits, '.', '_', '~', '%', '/' and '-'",
    TAG_KEY_PATTERN: "may contain letters, digits, spaces and . : / = + @ - _ only",
    TAG_VALUE_PATTERN: "may contain letters, digits, spaces and . : / = + @ - _ only",
    ALARM_NAME_PATTERN: "must be a CloudWatch alarm name (no control characters)",
}

DnsLabel = Annotated[
    str,
    StringConstraints(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN),
    Field(description="Lowercase letters, digits and hyphens; starts and ends with a letter or digit."),
]


def _not_an_id(name: str) -> str:
    # Names and ids share the `{id}` path segment, so a name must never look like an id.
    if re.fullmatch(LB_ID_PATTERN, name):
        raise ValueError("a name must not have the form of a load balancer id (lb- and 17 hex digits)")
    return name


LoadBalancerName = Annotated[DnsLabel, AfterValidator(_not_an_id)]
BackendName = DnsLabel
Port = Annotated[int, Field(ge=1, le=65535)]

VpcId = Annotated[str, StringConstraints(pattern=VPC_ID_PATTERN)]
SubnetId = Annotated[str, StringConstraints(pattern=SUBNET_ID_PATTERN)]
ImageId = Annotated[str, StringConstraints(pattern=IMAGE_ID_PATTERN)]
InstanceType = Annotated[
    str,
    StringConstraints(max_length=32, pattern=INSTANCE_TYPE_PATTERN),
    Field(description="An EC2 instance type, for example c6i.large."),
]
CertificateArn = Annotated[
    str,
    StringConstraints(max_length=2048, pattern=CERTIFICATE_ARN_PATTERN),
    Field(description="The ARN of an ACM certificate in the load balancer's region."),
]

_HOSTNAME_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME_RE = re.compile(rf"{_HOSTNAME_LABEL}(?:\.{_HOSTNAME_LABEL})*\.?")
_HOST_PATTERN_RE = re.compile(rf"(?:\*\.)?{_HOSTNAME_LABEL}(?:\.{_HOSTNAME_LABEL})*")


def _target_host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if len(value) > 253 or not _HOSTNAME_RE.fullmatch(value):
            raise ValueError("must be an IPv4 address, an IPv6 address or a DNS hostname") from None
        return value.lower()
    return value


def _host_pattern(value: str) -> str:
    if len(value) > 253 or not _HOST_PATTERN_RE.fullmatch(value):
        raise ValueError("must be a hostname such as api.example.com, optionally starting with '*.'")
    return value.lower()


TargetHost = Annotated[str, AfterValidator(_target_host)]
HostPattern = Annotated[str, AfterValidator(_host_pattern)]
PathPrefix = Annotated[
    str,
    # Unreserved URI characters, percent-escapes and slashes only: nothing that
    # could end or extend a proxy directive (no quotes, spaces, ';', '{', '#').
    StringConstraints(max_length=256, pattern=PATH_PREFIX_PATTERN),
    Field(description="A URL path prefix starting with '/'."),
]
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=TAG_KEY_PATTERN)]
TagValue = Annotated[str, StringConstraints(max_length=256, pattern=TAG_VALUE_PATTERN)]
AlarmName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255, pattern=ALARM_NAME_PATTERN),
    Field(description="The name of a CloudWatch alarm in the load balancer's account and region."),
]

LoadBalancerType = Literal["application", "classic"]
ListenerProtocol = Literal["HTTP", "HTTPS", "TCP", "TLS"]
HealthCheckProtocol = Literal["HTTP", "HTTPS", "TCP"]
ProxyEngine = Literal["haproxy", "nginx"]
EntryMode = Literal["pool", "dns"]
EntryScheme = Literal["internet-facing", "internal"]
WafMode = Literal["detect", "block"]
ScalingPolicyName = Literal["default", "vote", "target-tracking", "step", "noise-aware"]
# What ``default`` selects: chosen on the policy benchmark (bench/scaling_policies.py,
# README "Scaling"). Changing it changes every load balancer that says ``default``.
DEFAULT_SCALING_POLICY: Final = "noise-aware"
# aggregate: one LBVM-weighted average per metric over the subnets; per-zone: each
# subnet (one per Availability Zone) is evaluated on its own and the hottest decides.
ZoneEvaluation = Literal["aggregate", "per-zone"]
RolloutStrategy = Literal["rolling"]


# --- listeners and routing --------------------------------------------------


class RoutingRule(SpecModel):
    """An L7 routing rule: first match wins; either condition may be omitted, not both."""

    host: HostPattern | None = None
    path_prefix: PathPrefix | None = None
    backend: BackendName


class Listener(SpecModel):
    protocol: ListenerProtocol
    port: Port
    certificate_arn: CertificateArn | None = Field(
        default=None, description="Required for HTTPS and TLS listeners, refused for the others."
    )
    default_backend: BackendName
    rules: list[RoutingRule] = Field(default_factory=list, max_length=MAX_RULES_PER_LISTENER)
    idle_timeout_seconds: int = Field(default=60, ge=1, le=4000)


# --- backends -----------------------------------------------------------------


class Target(SpecModel):
    host: TargetHost
    port: Port


# AWS's default for HTTP target groups.
HEALTH_CHECK_TIMEOUT_SECONDS: Final = 5


class HealthCheck(SpecModel):
    # Unset, the check follows the traffic: a backend behind an HTTP or HTTPS listener
    # is checked with HTTP, one behind a TCP or TLS listener with a TCP connect, since
    # an HTTP request would mark a target that does not speak HTTP down.
    protocol: HealthCheckProtocol | None = Field(
        default=None,
        description="Defaults to HTTP where an HTTP or HTTPS listener uses the backend (or when a path is "
        "given) and to TCP where a TCP or TLS listener uses it.",
    )
    path: PathPrefix | None = Field(default=None, description="HTTP(S) only; defaults to '/'.")
    interval_seconds: int = Field(default=10, ge=2, le=300)
    timeout_seconds: int = Field(
        default=HEALTH_CHECK_TIMEOUT_SECONDS,
        ge=1,
        le=120,
        description=f"Shorter than intervalSeconds. Defaults to {HEALTH_CHECK_TIMEOUT_SECONDS}, "
        "or to intervalSeconds - 1 when that is shorter.",
    )
    healthy_threshold: int = Field(default=3, ge=1, le=10)
    unhealthy_threshold: int = Field(default=3, ge=1, le=10)

    @model_validator(mode="after")
    def _timeout_fits_the_interval(self) -> Self:
        # An answer must be due before the next check starts.
        derive_default(self, "timeout_seconds", min(HEALTH_CHECK_TIMEOUT_SECONDS, self.interval_seconds - 1))
        return self


class Backend(SpecModel):
    name: BackendName
    targets: list[Target] = Field(min_length=1, max_length=MAX_TARGETS_PER_BACKEND)
    health_check: HealthCheck = Field(default_factory=HealthCheck)


# --- fleet --------------------------------------------------------------------


class Capacity(SpecModel):
    min: int = Field(ge=1, le=MAX_LBVMS_PER_LOAD_BALANCER)
    max: int = Field(ge=1, le=MAX_LBVMS_PER_LOAD_BALANCER)


class Instance(SpecModel):
    type: InstanceType = "c6i.large"
    image_id: ImageId | None = Field(
        default=None, description="Defaults to the latest Amazon Linux 2023 image at launch time."
    )


class Entry(SpecModel):
    mode: EntryMode = "pool"
    scheme: EntryScheme = "internet-facing"
    dns_ttl_seconds: int | None = Field(
        default=None, ge=5, le=3600, description="dns mode only: TTL of each LBVM record (default 30)."
    )


class Waf(SpecModel):
    enabled: bool = False
    mode: WafMode = Field(default="detect", description="detect logs matches; block answers 403.")
    paranoia_level: int = Field(default=1, ge=1, le=4, description="OWASP CRS paranoia level.")


UNHEALTHY_TIMEOUT_SECONDS: Final = 30
# Three heartbeats per unhealthy timeout: one lost heartbeat is tolerated, and config
# changes and drain requests reach an agent within one interval (its reply carries them).
HEARTBEAT_INTERVAL_SECONDS: Final = 10


class Lifecycle(SpecModel):
    pending_timeout_seconds: int = Field(
        default=600, ge=5, le=7200, description="How long a new LBVM may take to send its first heartbeat."
    )
    unhealthy_timeout_seconds: int = Field(
        default=UNHEALTHY_TIMEOUT_SECONDS,
        ge=2,
        le=3600,
        description="Heartbeat silence after which an LBVM is taken out of rotation; at least twice "
        f"heartbeatIntervalSeconds. Defaults to {UNHEALTHY_TIMEOUT_SECONDS}, or to twice "
        "heartbeatIntervalSeconds when that is longer.",
    )
    heartbeat_interval_seconds: int = Field(
        default=HEARTBEAT_INTERVAL_SECONDS,
        ge=1,
        le=60,
        description="How often the agent reports, and so how soon a config change or a drain request reaches it.",
    )
    recovery_timeout_seconds: int = Field(
        default=120,
        ge=0,
        le=3600,
        description="How long an Unroutable LBVM may take to come back before it is terminated "
        "(a replacement is launched at once either way).",
    )

    @model_validator(mode="after")
    def _silence_spans_two_heartbeats(self) -> Self:
        # One late heartbeat must not take an LBVM out of rotation.
        derive_default(
            self, "unhealthy_timeout_seconds", max(UNHEALTHY_TIMEOUT_SECONDS, 2 * self.heartbeat_interval_seconds)
        )
        return self


class Drain(SpecModel):
    connection_threshold: int = Field(
        default=1, ge=0, le=1_000_000, description="Draining ends when active connections fall below this."
    )
    timeout_seconds: int = Field(default=300, ge=0, le=3600, description="Draining ends after this at the latest.")
    # An NLB keeps sending some new connections to a target for a while after
    # DeregisterTargets returns: an LBVM that stopped listening at once would
    # refuse them. So it serves as before for this long, then drains.
    deregistration_grace_seconds: int = Field(
        default=30,
        ge=0,
        le=900,
        description="How long an LBVM keeps accepting new connections after it leaves the entry, while the "
        "entry stops sending them (an NLB takes a while); the drain (connections < connectionThreshold or "
        "timeoutSeconds) starts after it.",
    )
    # Clients of long-lived protocols reconnect, so closing them early keeps drains
    # and the old proxy workers of a reload short; TCP has no such contract.
    max_connection_lifetime_seconds: int = Field(
        default=120,
        ge=1,
        le=3600,
        description="How long an HTTP or HTTPS connection (keep-alive, WebSocket, HTTP/2) may outlive a drain "
        "or a config reload before the proxy closes it; capped by timeoutSeconds. TCP and TLS connections may "
        "run until timeoutSeconds.",
    )


class MetricThresholds(SpecModel):
    scale_out_above: float = Field(gt=0)
    scale_in_below: float = Field(ge=0)
    target: float | None = Field(default=None, gt=0, description="Per-LBVM target for target tracking.")
    peak: float | None = Field(
        default=None,
        gt=0,
        description="Noise-aware policy: the most per LBVM, a hard ceiling it sizes the fleet under "
        "(null leaves the metric out of its decisions).",
    )
    weight: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description=(
            "Priority of this metric: target-tracking and step scaling multiply its load by the weight "
            "(1 = full say, 0 = reported but never drives); the vote policy lets a weight of 0 abstain."
        ),
    )


def _cpu_defaults() -> MetricThresholds:
    # Target 70%: the target-tracking policy (the default before noise-aware) sizes the fleet for it. On the
    # policy benchmark (README "Scaling") it leaves headroom for the ~5 minutes a
    # scale-out takes to serve, at fewer instance hours than the seed policy.
    # Peak 90%: the noise-aware (default) policy keeps demand's high quantile under it.
    return MetricThresholds.model_validate({"scaleOutAbove": 80.0, "scaleInBelow": 40.0, "target": 70.0, "peak": 90.0})


def _memory_defaults() -> MetricThresholds:
    return MetricThresholds.model_validate({"scaleOutAbove": 80.0, "scaleInBelow": 40.0, "target": 60.0, "peak": 80.0})


def _connection_defaults() -> MetricThresholds:
    return MetricThresholds.model_validate(
        {"scaleOutAbove": 2000.0, "scaleInBelow": 500.0, "target": 1500.0, "peak": 1500.0}
    )


class ScalingMetrics(SpecModel):
    """Thresholds per metric; null leaves a metric out of scaling decisions."""

    cpu: MetricThresholds | None = Field(default_factory=_cpu_defaults, description="Percent.")
    memory: MetricThresholds | None = Field(default_factory=_memory_defaults, description="Percent.")
    active_connections: MetricThresholds | None = Field(
        default_factory=_connection_defaults, description="Connections per LBVM."
    )


class StepAdjustment(SpecModel):
    """Step scaling: a breach at least ``aboveByPercent`` past scaleOutAbove adds ``add`` LBVMs."""

    above_by_percent: float = Field(ge=0, le=1000, description="How far past scaleOutAbove, in percent of it.")
    add: int = Field(ge=1, le=MAX_LBVMS_PER_LOAD_BALANCER)


def _step_defaults() -> list[StepAdjustment]:
    return [
        StepAdjustment.model_validate({"aboveByPercent": above, "add": add})
        for above, add in ((0.0, 1), (10.0, 2), (20.0, 3))
    ]


class Scaling(SpecModel):
    policy: ScalingPolicyName = "default"
    cooldown_seconds: int = Field(default=600, ge=0, le=3600)
    scale_in_stabilization_seconds: int = Field(default=300, ge=0, le=3600)
    metrics: ScalingMetrics = Field(default_factory=ScalingMetrics)
    tolerance: float = Field(
        default=0.1,
        ge=0,
        le=0.5,
        description="Target tracking: no change while load is within this fraction of the target.",
    )
    steps: list[StepAdjustment] = Field(
        default_factory=_step_defaults,
        min_length=1,
        max_length=10,
        description="Step scaling: the LBVMs each size of breach adds, by increasing aboveByPercent.",
    )
    noise_window_seconds: int = Field(
        default=1800,
        ge=300,
        le=3600,
        description="Noise-aware policy: scale-in judges the distribution of demand over this window.",
    )
    noise_sigmas: float = Field(
        default=2.25,
        ge=0,
        le=5,
        description="Noise-aware policy: scale in only when mean + noiseSigmas x standard deviation of demand "
        "over the noise window fits in fewer LBVMs.",
    )
    smoothing_minutes: int = Field(
        default=4,
        ge=1,
        le=15,
        description="Noise-aware policy: scale-out judges the mean demand of this many latest minutes.",
    )
    burst_percent: float = Field(
        default=30.0,
        ge=0,
        le=1000,
        description="Noise-aware policy: the latest minute's demand this far above capacity scales out at once, "
        "without smoothing.",
    )
    scale_out_tolerance: float = Field(
        default=0.05,
        ge=0,
        le=0.5,
        description="Noise-aware policy: no scale-out while smoothed demand is within this fraction above capacity.",
    )
    scale_out_headroom: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Noise-aware policy: a scale-out sizes for demand plus this fraction.",
    )
    zone_evaluation: ZoneEvaluation = "aggregate"
    min_per_zone: int = Field(
        default=0,
        ge=0,
        le=MAX_LBVMS_PER_LOAD_BALANCER,
        description="Safeguard: scale-in never leaves fewer LBVMs than this per subnet.",
    )


PERCENTAGE_PATTERN = r"^(100|[1-9]?[0-9])%$"


def _count_or_percentage(value: object) -> int | str:
    # One validator rather than a union, so that an error names the field itself
    # (a union reports one error per branch, under tags nobody sent).
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_LBVMS_PER_LOAD_BALANCER:
        return value
    if isinstance(value, str) and re.fullmatch(PERCENTAGE_PATTERN, value):
        return value
    raise ValueError(
        f"must be a number of LBVMs (0 to {MAX_LBVMS_PER_LOAD_BALANCER}) or a percentage of the desired capacity "
        'such as "25%"'
    )


# A number of LBVMs, or a percentage of the desired capacity ("25%"), as in a Deployment.
CountOrPercentage = Annotated[
    int | str,
    PlainValidator(_count_or_percentage),
    WithJsonSchema(
        {
            "oneOf": [
                {"type": "integer", "minimum": 0, "maximum": MAX_LBVMS_PER_LOAD_BALANCER},
                {"type": "string", "pattern": PERCENTAGE_PATTERN},
            ]
        }
    ),
]


PROGRESS_DEADLINE_SECONDS: Final = 1200


class Rollout(SpecModel):
    strategy: RolloutStrategy = "rolling"
    max_surge: CountOrPercentage = Field(
        default=1,
        description="How many LBVMs a rollout may add above the desired capacity: a count, or a percentage of "
        "the desired capacity (rounded up). Not both this and maxUnavailable 0.",
    )
    max_unavailable: CountOrPercentage = Field(
        default=0,
        description="How many of the desired LBVMs may be out of service during a rollout: a count, or a "
        "percentage of the desired capacity (rounded down).",
    )
    canary: CountOrPercentage = Field(
        default=1,
        description="How many LBVMs go onto a new template first: a count, or a percentage of the desired "
        "capacity (rounded up). They must pass the health gate and stay healthy for bakeSeconds before the "
        "rest follow. 0: no canary step.",
    )
    bake_seconds: int = Field(
        default=300,
        ge=0,
        le=86400,
        description="How long the canary LBVMs must stay healthy before the rest of the fleet is rolled.",
    )
    progress_deadline_seconds: int = Field(
        default=PROGRESS_DEADLINE_SECONDS,
        ge=30,
        le=86400,
        description="A rollout step that makes no progress for this long fails the rollout, which rolls back. "
        f"Longer than lifecycle.pendingTimeoutSeconds. Defaults to {PROGRESS_DEADLINE_SECONDS}, or to twice "
        "lifecycle.pendingTimeoutSeconds when that is longer.",
    )
    max_failed_launches: int = Field(
        default=2,
        ge=1,
        le=MAX_LBVMS_PER_LOAD_BALANCER,
        description="Launches of the new template that never pass the health gate (or stop passing it) before "
        "the rollout fails and rolls back. A rollout onto a template that never gets healthy launches it at "
        "most canary + maxFailedLaunches - 1 times.",
    )
    follow_latest_image: bool = Field(
        default=False,
        description="With instance.imageId unset: when AWS publishes a newer Amazon Linux 2023 image, roll the "
        "fleet onto it (an ordinary rollout: canary, bake, rollback; a rolled-back image is not tried again, a "
        "later one is). Off by default: a new image is then only reported (status.newerImage and an event), "
        "because following it replaces every LBVM of every load balancer on the default image whenever AWS "
        "publishes one, without anyone asking for it. Instances launched meanwhile (scale-out, replacements) "
        "still get the image current at their launch.",
    )
    alarm_names: list[AlarmName] = Field(
        default_factory=list,
        max_length=MAX_ROLLOUT_ALARMS,
        description="CloudWatch alarms that fail a rollout (which then rolls back) when any of them is in ALARM "
        "while the rollout is in its canary, bake or roll step, as an Auto Scaling instance refresh does. Read "
        "once per reconcile tick while a rollout is active; a paused rollout is judged when it resumes.",
    )


# --- the spec -------------------------------------------------------------------


class LoadBalancerSpec(SpecModel):
    """A load balancer as declared by its owner."""

    name: LoadBalancerName
    type: LoadBalancerType
    vpc_id: VpcId
    subnet_ids: list[SubnetId] = Field(min_length=1, max_length=MAX_SUBNETS)
    listeners: list[Listener] = Field(min_length=1, max_length=MAX_LISTENERS)
    backends: list[Backend] = Field(min_length=1, max_length=MAX_BACKENDS)
    capacity: Capacity
    proxy: ProxyEngine = Field(default="haproxy", description="Defaults to nginx when the WAF is enabled.")
    instance: Instance = Field(default_factory=Instance)
    entry: Entry = Field(default_factory=Entry)
    waf: Waf = Field(default_factory=Waf)
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)
    drain: Drain = Field(default_factory=Drain)
    scaling: Scaling = Field(default_factory=Scaling)
    rollout: Rollout = Field(default_factory=Rollout)
    tags: dict[TagKey, TagValue] = Field(default_factory=dict, max_length=MAX_TAGS)

    @model_validator(mode="after")
    def _deadline_outlasts_a_boot(self) -> Self:
        # A canary that boots within its pending timeout must not fail the rollout.
        derive_default(
            self.rollout,
            "progress_deadline_seconds",
            max(PROGRESS_DEADLINE_SECONDS, 2 * self.lifecycle.pending_timeout_seconds),
        )
        return self

    @model_validator(mode="after")
    def _waf_picks_its_proxy(self) -> Self:
        # ModSecurity runs on NGINX only: enabling the WAF says which proxy to run.
        if self.waf.enabled:
            derive_default(self, "proxy", "nginx")
        return self


# Fields fixed at creation: the name is the DNS identity, the type decides the
# proxy mode, and a load balancer cannot move between VPCs.
IMMUTABLE_FIELDS: tuple[str, ...] = ("name", "type", "vpcId")
