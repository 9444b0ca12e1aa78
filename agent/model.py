"""One proxy-neutral model of what an LBVM serves, built from a load balancer's spec.

Both renderers (HAProxy and NGINX) read only this model, so routing order,
timeouts and health checks mean the same on either proxy, and every decision
about *what* to serve is made (and tested) once, here. The renderers decide
only *how* to say it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agent.platform import Platform
from lbcp.logic.spec_rules import L7_PROTOCOLS, TLS_PROTOCOLS
from lbcp.models.spec import Backend, HealthCheck, Listener, LoadBalancerSpec

Mode = Literal["http", "tcp"]
WafMode = Literal["detect", "block"]

CONNECT_TIMEOUT_SECONDS = 5


class RenderError(Exception):
    """A valid spec that this LBVM cannot serve as configured (said in words a person can act on)."""


@dataclass(frozen=True)
class RenderOptions:
    """How this LBVM runs its proxy: the machine-specific half of a configuration."""

    run_dir: Path  # sockets, pid file, temporary files
    log_dir: Path  # the proxy's access, error and WAF audit logs
    bind_address: str | None = None  # None: every IPv4 address
    stats_address: str = "127.0.0.1"
    stats_port: int = 8404
    proxy_user: str | None = None  # workers drop to this user when started as root
    platform: Platform = field(default_factory=Platform)
    max_connections: int = 20000
    drained: bool = False  # render without the public listeners (drain mode)
    # Where a listener's port is bound on this machine, when not on the port itself: LBVMs that share
    # one host (the local runtime) each bind the spec's ports elsewhere. Clients still see the spec's
    # port (X-Forwarded-Port), as they do behind the entry.
    listen_ports: Mapping[int, int] = field(default_factory=dict)

    def bind_port(self, listener_port: int) -> int:
        return self.listen_ports.get(listener_port, listener_port)


@dataclass(frozen=True)
class TlsFiles:
    """Where one certificate's material lives inside a release (written with mode 0600)."""

    certificate_arn: str
    name: str  # file stem, from the ARN's certificate id
    release_dir: Path

    @property
    def certificate(self) -> Path:  # leaf and chain (NGINX)
        return self.release_dir / "certs" / f"{self.name}.crt"

    @property
    def private_key(self) -> Path:  # key alone (NGINX)
        return self.release_dir / "certs" / f"{self.name}.key"

    @property
    def bundle(self) -> Path:  # leaf, chain and key in one file (HAProxy)
        return self.release_dir / "certs" / f"{self.name}.pem"


@dataclass(frozen=True)
class HostMatch:
    """``api.example.com`` matches exactly; ``*.example.com`` matches any name below example.com."""

    value: str  # lowercase; for a wildcard, the suffix with its leading dot (".example.com")
    wildcard: bool


@dataclass(frozen=True)
class Route:
    host: HostMatch | None
    path_prefix: str | None
    backend: str  # a BackendModel.id


@dataclass(frozen=True)
class Frontend:
    id: str
    port: int  # the spec's listener port: what clients connect to through the entry
    bind_port: int  # where this LBVM listens for it
    protocol: str  # the spec's listener protocol
    mode: Mode
    tls: TlsFiles | None
    idle_timeout: int
    routes: tuple[Route, ...]
    default_backend: str

    @property
    def half_closed_timeout(self) -> int:
        return half_closed_timeout(self.idle_timeout)

    @property
    def goaway_close_timeout(self) -> int:
        return min(self.idle_timeout, GOAWAY_CLOSE_SECONDS)


# On a reload or a drain, HAProxy's old process sends every HTTP/2 connection a GOAWAY
# (a graceful one: streams already sent still finish) but then keeps the connection open
# for `timeout client-fin`, falling back to `timeout client` (the idle timeout): every
# HTTP/2 client would hold the drain for a minute, until the lifetime bound cut it. With
# this bound a connection told to go away closes once idle this long, with a final GOAWAY
# naming the last stream served. Half-closed HTTP/1 requests are not cut by it: a
# waiting stream's own timeouts govern them (tests/agent/test_drain.py).
GOAWAY_CLOSE_SECONDS = 2


# An L4 connection one side has half-closed (sent its FIN) still carries the other
# side's answer, but one left half-open by a peer that went away must not hold a
# drain until its deadline: it lives at most this long without traffic.
HALF_CLOSED_TIMEOUT_SECONDS = 30


def half_closed_timeout(idle_timeout: int) -> int:
    return min(idle_timeout, HALF_CLOSED_TIMEOUT_SECONDS)


@dataclass(frozen=True)
class Server:
    id: str
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class HealthCheckModel:
    protocol: str
    path: str
    interval: int
    timeout: int
    healthy_threshold: int
    unhealthy_threshold: int


@dataclass(frozen=True)
class BackendModel:
    """A spec backend as one proxy mode sees it: a backend used by L7 and L4 listeners appears twice."""

    id: str
    name: str
    mode: Mode
    servers: tuple[Server, ...]
    health: HealthCheckModel
    idle_timeout: int  # the longest idle timeout among the listeners that use it

    @property
    def half_closed_timeout(self) -> int:
        return half_closed_timeout(self.idle_timeout)


@dataclass(frozen=True)
class WafModel:
    mode: WafMode
    paranoia_level: int
    module: Path
    crs_rules_dir: Path


@dataclass(frozen=True)
class ProxyModel:
    load_balancer_id: str
    name: str
    type: str
    version: int
    release_dir: Path
    frontends: tuple[Frontend, ...]
    backends: tuple[BackendModel, ...]
    waf: WafModel | None
    options: RenderOptions
    # How long an old worker may keep connections after a reload or a drain began.
    max_connection_lifetime: int

    @property
    def has_l4(self) -> bool:
        return any(frontend.mode == "tcp" for frontend in self.frontends)

    @property
    def has_l7(self) -> bool:
        return any(frontend.mode == "http" for frontend in self.frontends)

    @property
    def certificates(self) -> tuple[TlsFiles, ...]:
        unique = {frontend.tls.name: frontend.tls for frontend in self.frontends if frontend.tls}
        return tuple(unique[name] for name in sorted(unique))


def frontend_id(port: int) -> str:
    return f"l_{port}"


def backend_id(name: str, mode: Mode) -> str:
    return f"b_{name}_{mode}"


def certificate_name(certificate_arn: str) -> str:
    # The spec's ARN pattern ends in "certificate/<[A-Za-z0-9-]{1,64}>": a safe file stem.
    return certificate_arn.rsplit("/", 1)[-1]


def build_model(
    spec: LoadBalancerSpec,
    *,
    load_balancer_id: str,
    version: int,
    release_dir: Path,
    options: RenderOptions,
) -> ProxyModel:
    """The model of one config version; raises RenderError when this LBVM cannot serve the spec."""
    frontends = tuple(_frontend(listener, release_dir, options) for listener in spec.listeners)
    _check_ports(frontends, options)
    waf = _waf(spec, options)
    max_lifetime = _max_connection_lifetime(spec, frontends)
    if options.drained:
        frontends = ()
    return ProxyModel(
        load_balancer_id=load_balancer_id,
        name=spec.name,
        type=spec.type,
        version=version,
        release_dir=release_dir,
        frontends=frontends,
        backends=_backends(spec, frontends),
        waf=waf if frontends else None,
        options=options,
        max_connection_lifetime=max_lifetime,
    )


def _frontend(listener: Listener, release_dir: Path, options: RenderOptions) -> Frontend:
    mode: Mode = "http" if listener.protocol in L7_PROTOCOLS else "tcp"
    tls = None
    if listener.protocol in TLS_PROTOCOLS:
        if listener.certificate_arn is None:  # the spec's rules refuse this; never serve TLS without one
            raise RenderError(f"the {listener.protocol} listener on port {listener.port} has no certificateArn")
        tls = TlsFiles(listener.certificate_arn, certificate_name(listener.certificate_arn), release_dir)
    routes = tuple(
        Route(
            host=_host_match(rule.host) if rule.host else None,
            path_prefix=rule.path_prefix,
            backend=backend_id(rule.backend, mode),
        )
        for rule in listener.rules
    )
    return Frontend(
        id=frontend_id(listener.port),
        port=listener.port,
        bind_port=options.bind_port(listener.port),
        protocol=listener.protocol,
        mode=mode,
        tls=tls,
        idle_timeout=listener.idle_timeout_seconds,
        routes=routes,
        default_backend=backend_id(listener.default_backend, mode),
    )


def _host_match(pattern: str) -> HostMatch:
    pattern = pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        return HostMatch(pattern[1:], wildcard=True)
    return HostMatch(pattern, wildcard=False)


def _check_ports(frontends: tuple[Frontend, ...], options: RenderOptions) -> None:
    for frontend in frontends:
        if frontend.bind_port == options.stats_port:
            raise RenderError(
                f"listener port {frontend.port} would listen on {frontend.bind_port}, the agent's stats port on "
                "this LBVM; choose another listener port (or run the agent with another --stats-port)"
            )
    bound = [frontend.bind_port for frontend in frontends]
    if len(set(bound)) != len(bound):
        raise RenderError(f"two listeners would listen on the same port of this LBVM: {sorted(bound)}")


def _waf(spec: LoadBalancerSpec, options: RenderOptions) -> WafModel | None:
    if not spec.waf.enabled:
        return None
    # The spec already refuses the WAF on HAProxy and on classic LBs (spec_rules._waf);
    # what is left to check is this machine.
    platform = options.platform
    if platform.modsecurity_module is None:
        raise RenderError(
            "waf.enabled needs ModSecurity for NGINX, which is not installed on this LBVM "
            "(Debian/Ubuntu: libnginx-mod-http-modsecurity; Amazon Linux 2023: the lbcp WAF bundle)"
        )
    if platform.crs_rules_dir is None:
        raise RenderError(
            "waf.enabled needs the OWASP Core Rule Set, which is not installed on this LBVM "
            "(Debian/Ubuntu: modsecurity-crs; Amazon Linux 2023: the lbcp WAF bundle)"
        )
    return WafModel(
        mode=spec.waf.mode,
        paranoia_level=spec.waf.paranoia_level,
        module=platform.modsecurity_module,
        crs_rules_dir=platform.crs_rules_dir,
    )


def _max_connection_lifetime(spec: LoadBalancerSpec, frontends: tuple[Frontend, ...]) -> int:
    # Both proxies bound the life of an old worker with one global setting
    # (HAProxy hard-stop-after, NGINX worker_shutdown_timeout). L4 connections
    # may run until the drain deadline, so any L4 listener sets it to the drain
    # timeout; an L7-only load balancer bounds long-lived connections sooner.
    drain_timeout = max(1, spec.drain.timeout_seconds)
    if any(frontend.mode == "tcp" for frontend in frontends):
        return drain_timeout
    return max(1, min(spec.drain.max_connection_lifetime_seconds, drain_timeout))


def _backends(spec: LoadBalancerSpec, frontends: tuple[Frontend, ...]) -> tuple[BackendModel, ...]:
    # Only what the listeners use, once per proxy mode: HAProxy needs a backend's
    # mode to match its frontend's, NGINX keeps http and stream upstreams apart.
    idle: dict[str, int] = {}
    for frontend in frontends:
        for used in (frontend.default_backend, *(route.backend for route in frontend.routes)):
            idle[used] = max(idle.get(used, 0), frontend.idle_timeout)
    result = []
    for backend in spec.backends:
        for mode in ("http", "tcp"):
            identifier = backend_id(backend.name, mode)
            if identifier in idle:
                result.append(_backend(backend, mode, identifier, idle[identifier]))
    return tuple(result)


def _backend(backend: Backend, mode: Mode, identifier: str, idle_timeout: int) -> BackendModel:
    return BackendModel(
        id=identifier,
        name=backend.name,
        mode=mode,
        # A server is named after its address: HAProxy carries a server's saved state
        # (health, and its address) across reloads by name, so a name must never
        # move to another target.
        servers=tuple(Server(f"{target.host}:{target.port}", target.host, target.port) for target in backend.targets),
        health=_health(backend.health_check, mode),
        idle_timeout=idle_timeout,
    )


def _health(check: HealthCheck, mode: Mode) -> HealthCheckModel:
    # An unset protocol follows the proxy mode the backend is used in (a path given
    # alone still means HTTP): see HealthCheck.protocol.
    protocol = check.protocol or ("HTTP" if mode == "http" or check.path is not None else "TCP")
    return HealthCheckModel(
        protocol=protocol,
        path=check.path or "/",
        interval=check.interval_seconds,
        timeout=check.timeout_seconds,
        healthy_threshold=check.healthy_threshold,
        unhealthy_threshold=check.unhealthy_threshold,
    )
