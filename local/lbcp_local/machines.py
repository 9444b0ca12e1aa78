"""What boots on an emulated instance: the LBVM's data plane and the sampler of its load.

``ProxyMachine`` is an LBVM as it runs in AWS, on loopback: the real HAProxy
(or NGINX with ModSecurity when the spec says so) in a state directory of its
own, each of the spec's listener ports bound to a free loopback port of its
own (several LBVMs share this host), its connection count read from the
proxy and its CPU the proxy's own CPU time. ``SimulatedMachine`` has no
process: a connection count and a CPU figure that the caller sets (for tests
that do not need real proxies, and machines without them).

Powering a machine off ends its proxy at once, as a VM's death would: no
graceful stop, every connection cut.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from agent.certs import CachingCertificateSource, CertificateSource, SelfSignedCertificateSource
from agent.dataplane import DataPlane, ProxyDataPlane
from agent.metrics import FixedSampler, ProcessSampler, Sampler
from agent.model import RenderOptions
from agent.platform import Platform
from agent.proxy.base import FrontendCounters, ProxyDriver, driver_for
from agent.proxy.process import ProxyFailed, ProxyProcess
from agent.render import ProxyName
from agent.simulated import SimulatedDataPlane
from lbcp.models.agent import BackendHealth
from lbcp_local.ports import LOOPBACK, free_port

DataPlaneKind = Literal["proxy", "simulated"]
# An LBVM's size here, for the CPU it reports: its proxy's CPU time over one core.
LOCAL_LBVM_CORES = 1.0


class Machine(Protocol):
    @property
    def dataplane(self) -> DataPlane: ...

    @property
    def sampler(self) -> Sampler: ...

    def listen_addresses(self) -> dict[int, str]:
        """Where a client reaches each listener of this LBVM directly: spec port -> ``host:port``."""
        ...

    def power_off(self) -> None: ...


class LoopbackPorts(Mapping[int, int]):
    """Spec listener port -> the free loopback port this LBVM binds for it, chosen the first time it is asked.

    A PATCH may add a listener long after the LBVM booted: its port is found then.
    """

    def __init__(self, on_new_port: Callable[[Mapping[int, int]], None] = lambda ports: None) -> None:
        self._ports: dict[int, int] = {}
        self._lock = threading.Lock()
        self._on_new_port = on_new_port

    def __getitem__(self, listener_port: int) -> int:
        with self._lock:
            if listener_port not in self._ports:
                self._ports[listener_port] = free_port()
                self._on_new_port(dict(self._ports))
            return self._ports[listener_port]

    def __iter__(self) -> Iterator[int]:
        return iter(dict(self._ports))

    def __len__(self) -> int:
        return len(self._ports)


@dataclass
class SimulatedMachine:
    proxy: str
    dataplane: SimulatedDataPlane = field(init=False)
    sampler: FixedSampler = field(default_factory=lambda: FixedSampler(cpu=5.0, memory=31.0))

    def __post_init__(self) -> None:
        # While draining, clients finish and leave: 25 connections fewer per heartbeat.
        self.dataplane = SimulatedDataPlane(self.proxy, drain_step=25)

    def set_load(self, connections: int, cpu_percent: float) -> None:
        self.dataplane.set_connections(connections)
        self.sampler.cpu = cpu_percent
        self.sampler.memory = 30.0 + 0.2 * cpu_percent

    def listen_addresses(self) -> dict[int, str]:
        return {}

    def power_off(self) -> None:
        self.dataplane.stop()


class PoweredDriver:
    """A proxy driver on a machine that can lose its power: once off, nothing it started runs, nor starts again.

    Every process it started is killed at power-off, even one whose start was
    returning at that moment (the data plane has not recorded it yet).
    """

    def __init__(self, inner: ProxyDriver) -> None:
        self._inner = inner
        self.name = inner.name
        self._lock = threading.Lock()
        self._on = True
        self._started: list[ProxyProcess] = []

    def prepare_paths(self) -> None:
        self._inner.prepare_paths()

    def validate(self, config: Path) -> None:
        self._inner.validate(config)

    def start(self, config: Path) -> ProxyProcess:
        with self._lock:
            if not self._on:
                raise ProxyFailed("the machine is powered off")
            process = self._inner.start(config)
            self._started.append(process)
            return process

    def reload(self, process: ProxyProcess) -> None:
        self._inner.reload(process)

    def frontend_counters(self, process: ProxyProcess) -> FrontendCounters:
        return self._inner.frontend_counters(process)

    def backend_health(self, process: ProxyProcess) -> list[BackendHealth] | None:
        return self._inner.backend_health(process)

    def adopt(self) -> ProxyProcess | None:
        return None  # a machine that just booted runs nothing yet

    def power_off(self) -> None:
        with self._lock:
            self._on = False
            for process in self._started:
                process.kill()


class ProxyMachine:
    def __init__(
        self,
        proxy: ProxyName,
        state_dir: Path,
        certificates: CertificateSource,
        platform: Platform,
    ) -> None:
        self.state_dir = state_dir
        self.listen_ports = LoopbackPorts(self._record_ports)
        # A short directory of its own for the proxy's sockets: HAProxy takes socket paths of at
        # most 97 characters, and a state directory can be deeper than that.
        self.run_dir = Path(tempfile.mkdtemp(prefix="lbcp-lbvm-"))
        options = RenderOptions(
            run_dir=self.run_dir,
            log_dir=state_dir / "log",
            bind_address=LOOPBACK,
            stats_port=free_port(),
            # As root, the workers would drop to nobody and lose access to the state directory.
            proxy_user="root" if os.geteuid() == 0 else None,
            platform=platform,
            listen_ports=self.listen_ports,
        )
        self._power = PoweredDriver(driver_for(proxy, options))
        self._dataplane = ProxyDataPlane(proxy, state_dir / "proxy", options, certificates, driver=self._power)
        self._sampler = ProcessSampler(self._dataplane.process_ids, cores=LOCAL_LBVM_CORES)

    @property
    def dataplane(self) -> ProxyDataPlane:
        return self._dataplane

    @property
    def sampler(self) -> ProcessSampler:
        return self._sampler

    def listen_addresses(self) -> dict[int, str]:
        return {port: f"{LOOPBACK}:{bound}" for port, bound in self.listen_ports.items()}

    def _record_ports(self, ports: Mapping[int, int]) -> None:
        # On disk too, for whoever looks from outside the runtime: where to reach this LBVM directly.
        self.state_dir.mkdir(parents=True, exist_ok=True)
        addresses = {str(port): f"{LOOPBACK}:{bound}" for port, bound in ports.items()}
        (self.state_dir / "listen.json").write_text(json.dumps(addresses) + "\n")

    def power_off(self) -> None:
        self._power.power_off()
        shutil.rmtree(self.run_dir, ignore_errors=True)


@dataclass
class MachineFactory:
    """Makes the machine an instance boots, from its load balancer's spec."""

    kind: DataPlaneKind
    state_dir: Path
    certificates: CertificateSource = field(
        default_factory=lambda: CachingCertificateSource(SelfSignedCertificateSource())
    )
    platform: Platform = field(default_factory=Platform.detect)

    def boot(self, instance_id: str, user_data: str) -> Machine:
        proxy = proxy_of(user_data)
        if self.kind == "simulated":
            return SimulatedMachine(proxy)
        return ProxyMachine(proxy, self.state_dir / instance_id, self.certificates, self.platform)


_PROXY_ARGUMENT = re.compile(r"--proxy (haproxy|nginx)\b")
_AGENT_ENDPOINT_ARGUMENT = re.compile(r"--agent-endpoint (\S+)")


def proxy_of(user_data: str) -> ProxyName:
    """The proxy the instance's user data starts the agent with (lbcp.bootstrap writes ``--proxy NAME``)."""
    found = _PROXY_ARGUMENT.search(user_data)
    if found is None:
        raise ValueError("the instance's user data does not start the lbcp agent with --proxy")
    return "nginx" if found.group(1) == "nginx" else "haproxy"


def agent_endpoint_of(user_data: str) -> str:
    """Where the instance's user data points its agent (lbcp.bootstrap writes ``--agent-endpoint URL``)."""
    found = _AGENT_ENDPOINT_ARGUMENT.search(user_data)
    if found is None:
        raise ValueError("the instance's user data does not start the lbcp agent with --agent-endpoint")
    return found.group(1)
