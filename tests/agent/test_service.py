"""``python -m agent run``, the service entry point, against a control plane on loopback and a real HAProxy."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from lbcp_local.ports import free_port
from tests.agent.fakes import ControlPlaneServer, ScriptedControlPlane
from tests.agent.helpers import (
    LB_ID,
    Backends,
    agent_config,
    backend,
    get,
    port_of,
    spec_document,
    wait_until,
)

pytestmark = pytest.mark.proxies


@pytest.fixture
def control() -> Iterator[ControlPlaneServer]:
    server = ControlPlaneServer(ScriptedControlPlane(interval=1))
    yield server
    server.close()


def test_the_service_serves_follows_versions_survives_its_own_restart_and_drains(
    control: ControlPlaneServer, backends: Backends, tmp_path: Path
) -> None:
    blue, green = backends.http("blue"), backends.http("green")
    port = free_port()
    script = control.script

    def publish(target: int, version: int) -> None:
        document = spec_document(
            listeners=[{"protocol": "HTTP", "port": port, "defaultBackend": "app"}], backends=[backend("app", target)]
        )
        script.publish(agent_config(document, version))

    publish(port_of(blue), 1)
    command = [
        sys.executable, "-m", "agent", "run",
        "--lb-id", LB_ID, "--lbvm-id", "lbvm-test", "--agent-endpoint", control.url, "--proxy", "haproxy",
        "--region", "us-east-1", "--instance-id", "i-0123456789abcdef0", "--subnet-id", "subnet-0123456789abcdef0",
        "--unsigned", "--no-metrics", "--certificates", "self-signed",
        "--state-dir", str(tmp_path / "state"), "--run-dir", str(tmp_path / "run"), "--log-dir", str(tmp_path / "log"),
        "--bind-address", "127.0.0.1", "--stats-port", str(free_port()),
    ]  # fmt: skip
    if os.geteuid() == 0:
        command += ["--proxy-user", "root"]
    log = (tmp_path / "agent.log").open("w")
    agents = [subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)]
    pid_file = tmp_path / "run" / "haproxy.agent-pid"
    try:

        def reported(state: str, version: int | None) -> bool:
            last = script.heartbeats[-1] if script.heartbeats else None
            return last is not None and (last.state, last.applied_config_version) == (state, version)

        assert wait_until(lambda: reported("ready", 1), timeout=15), (tmp_path / "agent.log").read_text()
        assert get(port).body["backend"] == "blue"
        first = script.heartbeats[0]
        assert (first.state, first.sequence, first.instance_id) == ("starting", 1, "i-0123456789abcdef0")

        publish(port_of(green), 2)
        assert wait_until(lambda: reported("ready", 2), timeout=10)
        assert get(port).body["backend"] == "green"

        # SIGTERM stops the agent, not the proxy; the next agent adopts the running proxy.
        proxy_pid = int(pid_file.read_text())
        agents[0].send_signal(signal.SIGTERM)
        assert agents[0].wait(10) == 0
        assert get(port).status == 200
        boot = script.heartbeats[-1].boot_id
        agents.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
        assert wait_until(lambda: script.heartbeats[-1].boot_id != boot, timeout=10)
        assert (script.heartbeats[-1].state, script.heartbeats[-1].applied_config_version) == ("ready", 2)
        assert int(pid_file.read_text()) == proxy_pid  # adopted, not restarted

        script.drain, script.drain_deadline = True, script.heartbeats[-1].sent_at + timedelta(seconds=60)
        assert wait_until(lambda: reported("drained", 2), timeout=10)
        assert script.heartbeats[-1].active_connections == 0
    finally:
        for agent in agents:
            if agent.poll() is None:
                agent.kill()
                agent.wait(5)
        log.close()
        if pid_file.exists():  # the proxy outlives its agent by design: end it here
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)
