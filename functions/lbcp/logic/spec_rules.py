"""Rules that relate several fields of a spec (pure).

``check_spec`` runs once a spec has the right shape, and returns every
violation at once, each naming the field a user has to change, rather than
stopping at the first: fixing a spec should not take one round trip per mistake.
"""

from __future__ import annotations

from collections.abc import Iterator

from lbcp.errors import FieldError
from lbcp.models.spec import DEFAULT_SCALING_POLICY, LoadBalancerSpec, MetricThresholds

PROTOCOLS_BY_TYPE: dict[str, frozenset[str]] = {
    # L7 only: routing rules and the WAF need the proxy to parse HTTP.
    "application": frozenset({"HTTP", "HTTPS"}),
    # L4 pass-through plus basic L7.
    "classic": frozenset({"HTTP", "HTTPS", "TCP", "TLS"}),
}
TLS_PROTOCOLS = frozenset({"HTTPS", "TLS"})
L7_PROTOCOLS = frozenset({"HTTP", "HTTPS"})
RESERVED_TAG_PREFIXES = ("aws:", "lbcp:")
_ARTICLE = {"application": "an", "classic": "a"}


def check_spec(spec: LoadBalancerSpec) -> list[FieldError]:
    return [
        *_subnets(spec),
        *_listeners(spec),
        *_backends(spec),
        *_capacity(spec),
        *_waf(spec),
        *_entry(spec),
        *_lifecycle(spec),
        *_scaling(spec),
        *_rollout(spec),
        *_tags(spec),
    ]


def _error(path: tuple[str | int, ...], message: str, code: str) -> FieldError:
    return FieldError(path=path, message=message, code=code)


def _subnets(spec: LoadBalancerSpec) -> Iterator[FieldError]:
    seen: dict[str, int] = {}
    for index, subnet_id in enumerate(spec.subnet_ids):
        if subnet_id in seen:
            yield _error(("subnetIds", index), f"duplicate of subnetIds[{seen[subnet_id]}]", "duplicate")
        seen.setdefault(subnet_id, index)
    if spec.type == "application" and len(seen) < 2:
        yield _error(
            ("subnetIds",),
            "an application load balancer needs subnets in at least two Availability Zones",
            "too_few_zones",
        )


def _listeners(spec: LoadBalancerSpec) -> Iterator[FieldError]:
    backend_names = {backend.name for backend in spec.backends}
    allowed = PROTOCOLS_BY_TYPE[spec.type]
    ports: dict[int, int] = {}
    for i, listener in enumerate(spec.listeners):
        here: tuple[str | int, ...] = ("listeners", i)
        if listener.port in ports:
            yield _error(
                (*here, "port"),
                f"port {listener.port} is already used by listeners[{ports[listener.port]}]",
                "duplicate",
            )
        ports.setdefault(listener.port, i)
        if listener.protocol not in allowed:
            yield _error(
                (*here, "protocol"),
                f"{listener.protocol} is not available on {_ARTICLE[spec.type]} {spec.type} load balancer "
                f"(allowed: {', '.join(sorted(allowed))})",
                "protocol_not_allowed",
            )
        if listener.protocol in TLS_PROTOCOLS and listener.certificate_arn is None:
            yield _error((*here, "certificateArn"), f"a {listener.protocol} listener needs a certificate", "missing")
        if listener.protocol not in TLS_PROTOCOLS and listener.certificate_arn is not None:
            yield _error(
                (*here, "certificateArn"),
                f"a {listener.protocol} listener does not terminate TLS; remove the certificate",
                "not_allowed",
            )
        if listener.default_backend not in backend_names:
            yield _error(
                (*here, "defaultBackend"),
                f"no backend is named {listener.default_backend!r}",
                "unknown_backend",
            )
        yield from _rules(spec, i, backend_names)


def _rules(spec: LoadBalancerSpec, i: int, backend_names: set[str]) -> Iterator[FieldError]:
    listener = spec.listeners[i]
    if not listener.rules:
        return
    if spec.type != "application" or listener.protocol not in L7_PROTOCOLS:
        yield _error(
            ("listeners", i, "rules"),
            "routing rules need an HTTP or HTTPS listener on an application load balancer",
            "not_allowed",
        )
        return
    conditions: dict[tuple[str | None, str | None], int] = {}
    for k, rule in enumerate(listener.rules):
        here: tuple[str | int, ...] = ("listeners", i, "rules", k)
        if rule.host is None and rule.path_prefix is None:
            yield _error(here, "a rule needs a host, a pathPrefix or both (use defaultBackend for the rest)", "empty")
        key = (rule.host, rule.path_prefix)
        if key in conditions:
            yield _error(here, f"never matches: rules[{conditions[key]}] has the same conditions", "shadowed")
        conditions.setdefault(key, k)
        if rule.backend not in backend_names:
            yield _error((*here, "backend"), f"no backend is named {rule.backend!r}", "unknown_backend")


def _backends(spec: LoadBalancerSpec) -> Iterator[FieldError]:
    names: dict[str, int] = {}
    for i, backend in enumerate(spec.backends):
        here: tuple[str | int, ...] = ("backends", i)
        if backend.name in names:
            yield _error((*here, "name"), f"duplicate of backends[{names[backend.name]}].name", "duplicate")
        names.setdefault(backend.name, i)
        targets: dict[tuple[str, int], int] = {}
        for k, target in enumerate(backend.targets):
            key = (target.host, target.port)
            if key in targets:
                yield _error((*here, "targets", k), f"duplicate of targets[{targets[key]}]", "duplicate")
            targets.setdefault(key, k)
        check = backend.health_check
        if check.timeout_seconds >= check.interval_seconds:
            yield _error(
                (*here, "healthCheck", "timeoutSeconds"),
                f"{check.timeout_seconds} must be shorter than intervalSeconds ({check.interval_seconds})",
                "out_of_range",
            )
        if check.protocol == "TCP" and check.path is not None:
            yield _error((*here, "healthCheck", "path"), "a TCP health check has no path", "not_allowed")


def _capacity(spec: LoadBalancerSpec) -> Iterator[FieldError]:
    if spec.capacity.min > spec.capacity.max:
        yield _error(("capacity", "min"), f"must not exceed capacity.max ({spec.capacity.max})", "out_of_range")


def _waf(spec: LoadBalancerSpec) -> Iterator[FieldError]:
    if not spec.waf.enabled:
        return
    if spec.type != "application":
        yield _error(("waf", "enabled"), "the WAF inspects HTTP: it needs an application load balancer", "not_allowed")
    elif spec.proxy != "nginx":
        yield _error(
            ("waf", "enabled"),
            "the WAF (ModSecurity v3 with the OWASP Core Rule Set) runs on NGINX: set proxy to 'nginx'",
            "not_allowed",
        )


def _entry(spec: LoadBalancerSpec) -> Iterator[FieldError]:
    if spec.entry.mode == "pool" and spec.entry.dns_ttl_seconds is not None:
        yield _error(
            ("entry", "dnsTtlSeconds"),
            "only applies to dns mode (pool mode publishes an alias record, which has no TTL)",
            "not_allowed",
        )


def _lifecycle(spec: LoadBalancerSpec) -> Iterator[FieldError]:
    lifecycle = spec.lifecycle
    # One late heartbeat must not take an LBVM out of rotation.
    if lifecycle.unhealthy_timeout_seconds < 2 * lifecycle.heartbeat_interval_seconds:
        yield _error(
            ("lifecycle", "unhealthyTimeoutSeconds"),
            f"{lifecycle.unhealthy_timeout_seconds} must be at least twice heartbeatIntervalSeconds "
            f"({lifecycle.heartbeat_interval_seconds})",
            "out_of_range",
        )
    if lifecycle.pending_timeout_seconds < 2 * lifecycle.heartbeat_interval_seconds:
        yield _error(
            ("lifecycle", "pendingTimeoutSeconds"),
            f"must be at least twice heartbeatIntervalSeconds ({lifecycle.heartbeat_interval_seconds})",
            "out_of_range",
        )


def _scaling(spec: LoadBalancerSpec) -> Iterator[FieldError]:
    metrics = spec.scaling.metrics
    by_name: dict[str, tuple[MetricThresholds | None, bool]] = {
        "cpu": (metrics.cpu, True),
        "memory": (metrics.memory, True),
        "activeConnections": (metrics.active_connections, False),
    }
    if all(thresholds is None for thresholds, _ in by_name.values()):
        yield _error(("scaling", "metrics"), "at least one metric must drive scaling", "empty")
    for name, (thresholds, is_percent) in by_name.items():
        if thresholds is None:
            continue
        here: tuple[str | int, ...] = ("scaling", "metrics", name)
        if thresholds.scale_in_below >= thresholds.scale_out_above:
            yield _error(
                (*here, "scaleInBelow"),
                f"must be below scaleOutAbove ({thresholds.scale_out_above:g}) so that a band separates them",
                "out_of_range",
            )
        if is_percent:
            for field, value in (
                ("scaleOutAbove", thresholds.scale_out_above),
                ("target", thresholds.target),
                ("peak", thresholds.peak),
            ):
                if value is not None and value > 100:
                    yield _error((*here, field), "is a percentage: at most 100", "out_of_range")
    enabled = [thresholds for thresholds, _ in by_name.values() if thresholds is not None]
    # What "default" selects decides which setting it needs (DEFAULT_SCALING_POLICY).
    policy = DEFAULT_SCALING_POLICY if spec.scaling.policy == "default" else spec.scaling.policy
    if enabled and policy == "target-tracking" and all(thresholds.target is None for thresholds in enabled):
        yield _error(
            ("scaling", "metrics"),
            f"the {spec.scaling.policy} policy needs a target on at least one metric",
            "missing",
        )
    if enabled and policy == "noise-aware" and all(thresholds.peak is None for thresholds in enabled):
        yield _error(
            ("scaling", "metrics"),
            f"the {spec.scaling.policy} policy needs a peak on at least one metric",
            "missing",
        )
    yield from _scaling_steps(spec)
    zones = len(set(spec.subnet_ids))
    if spec.scaling.min_per_zone * zones > spec.capacity.max:
        yield _error(
            ("scaling", "minPerZone"),
            f"{spec.scaling.min_per_zone} per subnet over {zones} subnet(s) exceeds capacity.max ({spec.capacity.max})",
            "out_of_range",
        )


def _scaling_steps(spec: LoadBalancerSpec) -> Iterator[FieldError]:
    steps = spec.scaling.steps
    if steps and steps[0].above_by_percent != 0:
        # Otherwise a breach smaller than the first step would add nothing at all.
        yield _error(("scaling", "steps", 0, "aboveByPercent"), "the first step must start at 0", "out_of_range")
    for k in range(1, len(steps)):
        here: tuple[str | int, ...] = ("scaling", "steps", k)
        if steps[k].above_by_percent <= steps[k - 1].above_by_percent:
            yield _error(
                (*here, "aboveByPercent"),
                f"must be above steps[{k - 1}].aboveByPercent ({steps[k - 1].above_by_percent:g})",
                "out_of_range",
            )
        if steps[k].add < steps[k - 1].add:
            yield _error(
                (*here, "add"), f"a larger breach must not add fewer LBVMs than steps[{k - 1}]", "out_of_range"
            )


def _rollout(spec: LoadBalancerSpec) -> Iterator[FieldError]:
    if spec.rollout.max_surge in (0, "0%") and spec.rollout.max_unavailable in (0, "0%"):
        yield _error(
            ("rollout", "maxSurge"),
            "maxSurge and maxUnavailable cannot both be 0: a rollout could never start",
            "out_of_range",
        )
    if spec.rollout.progress_deadline_seconds <= spec.lifecycle.pending_timeout_seconds:
        yield _error(
            ("rollout", "progressDeadlineSeconds"),
            f"must be longer than lifecycle.pendingTimeoutSeconds ({spec.lifecycle.pending_timeout_seconds}): "
            "a canary that boots in time would fail the rollout",
            "out_of_range",
        )
    seen: dict[str, int] = {}
    for index, name in enumerate(spec.rollout.alarm_names):
        if name in seen:
            yield _error(("rollout", "alarmNames", index), f"duplicate of alarmNames[{seen[name]}]", "duplicate")
        seen.setdefault(name, index)
    if spec.rollout.follow_latest_image and spec.instance.image_id is not None:
        yield _error(
            ("rollout", "followLatestImage"),
            f"follows the latest Amazon Linux 2023 image, but instance.imageId names {spec.instance.image_id}: "
            "unset one of them",
            "not_allowed",
        )


def _tags(spec: LoadBalancerSpec) -> Iterator[FieldError]:
    for key in spec.tags:
        if key.lower().startswith(RESERVED_TAG_PREFIXES):
            yield _error(("tags", key), "tag keys starting with 'aws:' or 'lbcp:' are reserved", "reserved")
