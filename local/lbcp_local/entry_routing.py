"""What the local stand-in for an NLB routes, and the HAProxy configuration that does it (pure).

A real NLB does not act the instant the control plane calls it, and the
gaps are where clients get hurt:

- A registered target gets new connections only after a while (the NLB
  propagates the registration and health-checks the target first).
- A deregistered target keeps getting *new* connections for a while after
  ``DeregisterTargets`` returns (propagation again), so an LBVM that stops
  listening as soon as it is deregistered refuses clients.
- Connections it already has stay open until one side closes them (or the
  target group's deregistration timeout passes).

``TargetRouting`` replays the registrations the emulator reports with those
delays; ``render_entry_config`` is the TCP-mode HAProxy configuration of the
listeners and ``plan_servers`` the runtime API commands that route to what is
routed: a target taken out is put in maintenance, which keeps the
connections it has (the third point) until the deregistration timeout.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# The NLB's idle timeout for TCP flows.
NLB_IDLE_TIMEOUT_SECONDS = 350


@dataclass(frozen=True)
class EntryDelays:
    """How long the stand-in NLB takes to act on a registration change.

    The defaults are short so that ``make local`` stays quick, but not zero,
    so that a control plane that assumes an instant entry is caught. A real
    NLB takes tens of seconds to start routing to a new target (health checks
    included) and may send new connections to a deregistered one for several
    seconds after DeregisterTargets returns.
    """

    registration_seconds: float = 5.0
    deregistration_seconds: float = 3.0

    def __post_init__(self) -> None:
        if self.registration_seconds < 0 or self.deregistration_seconds < 0:
            raise ValueError("entry delays cannot be negative")


@dataclass(frozen=True)
class Target:
    """An instance registered in the target group of one listener port."""

    listener_port: int
    instance_id: str


@dataclass
class _Registration:
    registered_at: float
    deregistered_at: float | None = None


@dataclass
class TargetRouting:
    """The targets an NLB sends new connections to, given when each was (de)registered.

    ``observe`` is fed what the emulator reports as registered, with the time
    it was read; the first time a target is seen counts as its registration,
    the first time it is missing as its deregistration.
    """

    delays: EntryDelays = field(default_factory=EntryDelays)
    _registrations: dict[Target, _Registration] = field(default_factory=dict)

    def observe(self, registered: Iterable[Target], now: float) -> None:
        current = set(registered)
        for target in current:
            known = self._registrations.get(target)
            if known is None or known.deregistered_at is not None:
                # A re-registration starts over, as the NLB's does ("initial" again).
                self._registrations[target] = _Registration(registered_at=now)
        for target, known in list(self._registrations.items()):
            if target in current:
                continue
            if known.deregistered_at is None:
                known.deregistered_at = now
            elif now >= known.deregistered_at + self.delays.deregistration_seconds:
                del self._registrations[target]  # no longer routed: nothing left to remember

    def routed(self, now: float) -> frozenset[Target]:
        """The targets that get new connections at ``now``."""
        return frozenset(
            target
            for target, known in self._registrations.items()
            if now >= known.registered_at + self.delays.registration_seconds
            and (known.deregistered_at is None or now < known.deregistered_at + self.delays.deregistration_seconds)
        )

    def forget_port(self, listener_port: int) -> None:
        for target in [target for target in self._registrations if target.listener_port == listener_port]:
            del self._registrations[target]


@dataclass(frozen=True)
class HealthCheck:
    """The target group's TCP health check: a target is out after ``unhealthy`` failed checks in a row."""

    interval_seconds: int = 10
    healthy: int = 3
    unhealthy: int = 3


@dataclass(frozen=True)
class EntryListener:
    listener_port: int  # the NLB listener's port (what the spec says)
    bind_port: int  # where the stand-in listens for it on loopback
    health_check: HealthCheck = field(default_factory=HealthCheck)


@dataclass(frozen=True)
class EntryConfig:
    """What needs a configuration file: the listeners. Targets change through the runtime API."""

    name: str  # the NLB's name, for the reader of the file
    run_dir: str
    listeners: tuple[EntryListener, ...]
    # The target group's deregistration timeout: how long a connection may outlive its target's deregistration.
    deregistration_timeout_seconds: int = 300
    bind_address: str = "127.0.0.1"


def backend_name(listener_port: int) -> str:
    return f"tg_{listener_port}"


def render_entry_config(config: EntryConfig) -> str:
    lines = [
        f"# The local stand-in for NLB {config.name}: written by lbcp_local.entry, replaced when its listeners change.",
        "# Targets are added and taken out through the runtime API, without a reload.",
        "global",
        # expose-fd listeners: a reload hands the listening sockets over, so no connection is refused.
        f'    stats socket "{config.run_dir}/haproxy.sock" mode 600 level admin expose-fd listeners',
        # After a reload (listeners changed) the old worker keeps its connections this long.
        f"    hard-stop-after {config.deregistration_timeout_seconds}s",
        "    log stderr format raw local0 notice",
        "",
        "defaults",
        "    mode tcp",
        "    log global",
        # An NLB does not retry a connection on another target: neither does its stand-in.
        "    retries 0",
        "    timeout connect 5s",
        f"    timeout client {NLB_IDLE_TIMEOUT_SECONDS}s",
        f"    timeout server {NLB_IDLE_TIMEOUT_SECONDS}s",
    ]
    for listener in config.listeners:
        lines += [
            "",
            f"frontend nlb_{listener.listener_port}",
            f"    bind {config.bind_address}:{listener.bind_port}",
            f"    default_backend {backend_name(listener.listener_port)}",
            "",
            f"backend {backend_name(listener.listener_port)}",
            # NLB hashes each flow onto a target: for new connections, as good as a rotation.
            "    balance roundrobin",
        ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class EntryServer:
    """A target as the stand-in's HAProxy holds it."""

    address: str
    ready: bool = True
    out_since: float | None = None  # when it stopped getting new connections


def plan_servers(
    current: Mapping[Target, EntryServer],
    wanted: Mapping[Target, str],
    checks: Mapping[int, HealthCheck],
    now: float,
    deregistration_timeout_seconds: float,
) -> tuple[list[str], dict[Target, EntryServer]]:
    """The runtime API commands that make HAProxy route to ``wanted`` (target -> address), and its state after.

    A target no longer wanted is put in maintenance: no new connection, and
    the ones it has go on until a side closes them. Only when the
    deregistration timeout has passed are they cut and the server removed,
    as an NLB with connection termination does.
    """
    commands: list[str] = []
    after: dict[Target, EntryServer] = {}
    for target, address in sorted(wanted.items(), key=lambda item: (item[0].listener_port, item[0].instance_id)):
        server = f"{backend_name(target.listener_port)}/{target.instance_id}"
        known = current.get(target)
        if known is None or known.address != address:
            if known is not None:
                commands += [
                    f"set server {server} state maint",
                    f"shutdown sessions server {server}",
                    f"del server {server}",
                ]
            check = checks.get(target.listener_port, HealthCheck())
            commands += [
                f"add server {server} {address} check inter {check.interval_seconds}s "
                f"rise {check.healthy} fall {check.unhealthy}",
                f"enable health {server}",
                f"enable server {server}",
            ]
        elif not known.ready:
            commands.append(f"set server {server} state ready")
        after[target] = EntryServer(address)
    for target, known in sorted(current.items(), key=lambda item: (item[0].listener_port, item[0].instance_id)):
        if target in wanted:
            continue
        server = f"{backend_name(target.listener_port)}/{target.instance_id}"
        if known.ready:
            commands.append(f"set server {server} state maint")
            after[target] = EntryServer(known.address, ready=False, out_since=now)
        elif known.out_since is not None and now - known.out_since >= deregistration_timeout_seconds:
            commands += [f"shutdown sessions server {server}", f"del server {server}"]
        else:
            after[target] = known
    return commands, after
