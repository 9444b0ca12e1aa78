"""The LBVM agent's numbers, on this machine, against the real proxies on loopback.

1. Reload latency (signal to new workers serving) and failed requests during 20
   reloads under load, per proxy; load is 4 clients requesting back to back,
   with a fresh connection per request, and again with keep-alive connections.
2. The agent's own CPU and memory (``python -m agent run`` as a process,
   heartbeating every second, against a control plane on loopback), idle and
   while its proxy serves a loopback load.
3. Time from a new config version to traffic served with it: from the
   heartbeat reply that carries the version (and from its publication) to the
   first request answered by the new config.

    .venv/bin/python bench/agent_bench.py [--reloads 20] [--seconds 15] [--trials 10]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.certs import SelfSignedCertificateSource
from agent.dataplane import ProxyDataPlane
from agent.model import RenderOptions
from agent.platform import Platform
from agent.render import ProxyName
from lbcp_local.ports import free_port
from tests.agent.fakes import ControlPlaneServer, ScriptedControlPlane
from tests.agent.helpers import (
    LB_ID,
    Backends,
    LoadGenerator,
    agent_config,
    backend,
    get,
    port_of,
    spec_document,
)

CLK_TCK = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _document(proxy: str, port: int, target: int, version: int, waf: bool) -> dict[str, Any]:
    extra: dict[str, Any] = {"waf": {"enabled": True, "mode": "block"}} if waf else {}
    return spec_document(
        proxy=proxy,
        listeners=[{"protocol": "HTTP", "port": port, "defaultBackend": "app", "idleTimeoutSeconds": 30 + version}],
        backends=[backend("app", target)],
        **extra,
    )


# --- 1. reloads ------------------------------------------------------------------------


def reloads(proxy: ProxyName, waf: bool, count: int, keep_alive: bool, root: Path) -> dict[str, Any]:
    backends = Backends()
    app = backends.http("app")
    port = free_port()
    options = RenderOptions(
        run_dir=root / "run",
        log_dir=root / "log",
        bind_address="127.0.0.1",
        stats_port=free_port(),
        platform=Platform.detect(),
        proxy_user="root" if os.geteuid() == 0 else None,
    )
    dataplane = ProxyDataPlane(proxy, root / "state", options, SelfSignedCertificateSource())
    try:
        dataplane.apply(agent_config(_document(proxy, port, port_of(app), 1, waf), 1))
        latencies = []
        with LoadGenerator(port, clients=4, keep_alive=keep_alive) as load:
            time.sleep(0.5)
            for version in range(2, count + 2):
                result = dataplane.apply(agent_config(_document(proxy, port, port_of(app), version, waf), version))
                latencies.append(result.reload_seconds)
                time.sleep(0.1)
            time.sleep(0.5)
        return {
            "p50": percentile(latencies, 0.5),
            "p95": percentile(latencies, 0.95),
            "max": max(latencies),
            "requests": load.ok + len(load.failures),
            "failed": len(load.failures),
        }
    finally:
        dataplane.stop()
        backends.close()


# --- 2 and 3. the agent as a process -----------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def _rss_mib(pid: int) -> tuple[float, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def _usage(pid: int, seconds: float) -> tuple[float, float]:
    cpu, wall = _cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (_cpu_seconds(pid) - cpu) / (time.monotonic() - wall), _rss_mib(pid)[0]


def agent_process(proxy: ProxyName, seconds: float, trials: int, root: Path) -> dict[str, Any]:
    backends = Backends()
    targets = [port_of(backends.http(f"v{i}")) for i in range(2)]
    port = free_port()
    control = ControlPlaneServer(ScriptedControlPlane(interval=1))
    script = control.script
    script.publish(agent_config(_document(proxy, port, targets[0], 1, False), 1))
    command = [
        sys.executable, "-m", "agent", "run",
        "--lb-id", LB_ID, "--lbvm-id", "lbvm-bench", "--endpoint", control.url, "--proxy", proxy,
        "--region", "us-east-1", "--instance-id", "i-0123456789abcdef0", "--subnet-id", "subnet-0123456789abcdef0",
        "--unsigned", "--no-metrics", "--certificates", "self-signed", "--log-level", "WARNING",
        "--state-dir", str(root / "state"), "--run-dir", str(root / "run"), "--log-dir", str(root / "log"),
        "--bind-address", "127.0.0.1", "--stats-port", str(free_port()),
    ]  # fmt: skip
    if os.geteuid() == 0:
        command += ["--proxy-user", "root"]
    agent = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid_file = root / "run" / f"{proxy}.agent-pid"
    try:
        deadline = time.monotonic() + 30
        while not (script.heartbeats and script.heartbeats[-1].state == "ready"):
            if time.monotonic() > deadline:
                raise RuntimeError("the agent never became ready")
            time.sleep(0.05)
        time.sleep(2)
        idle_cpu, idle_rss = _usage(agent.pid, seconds)
        with LoadGenerator(port, clients=4) as load:
            busy_cpu, busy_rss = _usage(agent.pid, seconds)
        served = load.ok / seconds

        from_reply, from_publish = [], []
        for trial in range(trials):
            version = trial + 2
            target = targets[(version + 1) % 2]  # version 1 serves targets[0]
            published = time.monotonic()
            replies_before = len(control.replies)
            script.publish(agent_config(_document(proxy, port, target, version, False), version))
            while get(port).body.get("port") != target:
                time.sleep(0.002)
            served_at = time.monotonic()
            told = next(at for at, desired in control.replies[replies_before:] if desired == version)
            from_reply.append(served_at - told)
            from_publish.append(served_at - published)
            time.sleep(0.3)
        return {
            "idle_cpu": idle_cpu,
            "idle_rss": idle_rss,
            "busy_cpu": busy_cpu,
            "busy_rss": busy_rss,
            "peak_rss": _rss_mib(agent.pid)[1],
            "load_rps": served,
            "reply_p50": percentile(from_reply, 0.5),
            "reply_p95": percentile(from_reply, 0.95),
            "publish_p50": percentile(from_publish, 0.5),
            "publish_p95": percentile(from_publish, 0.95),
        }
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(10)
        if pid_file.exists():
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
        control.close()
        backends.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reloads", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lbcp-agent-bench-") as scratch:
        root = Path(scratch)
        print(f"1. {args.reloads} reloads under load (4 clients, loopback)")
        header = ("proxy", "connections", "p50 ms", "p95 ms", "max ms", "requests", "failed")
        print("   {:<12} {:<12} {:>7} {:>7} {:>7} {:>9} {:>7}".format(*header))
        cases: list[tuple[ProxyName, bool, bool]] = [
            ("haproxy", False, False), ("nginx", False, False), ("nginx", True, False),
            ("haproxy", False, True), ("nginx", False, True),
        ]  # fmt: skip
        for index, (proxy, waf, keep_alive) in enumerate(cases):
            row = reloads(proxy, waf, args.reloads, keep_alive, root / f"reload-{index}")
            name = proxy + ("+waf" if waf else "")
            print(
                f"   {name:<12} {'keep-alive' if keep_alive else 'new/request':<12} {row['p50'] * 1000:7.0f} "
                f"{row['p95'] * 1000:7.0f} {row['max'] * 1000:7.0f} {row['requests']:9d} {row['failed']:7d}"
            )
        print(f"\n2. the agent process (heartbeat every 1 s), {args.seconds:.0f} s each; 3. config version to traffic")
        for proxy in ("haproxy", "nginx"):
            row = agent_process(proxy, args.seconds, args.trials, root / f"agent-{proxy}")
            print(
                f"   {proxy}: idle CPU {row['idle_cpu']:.2f}% RSS {row['idle_rss']:.1f} MiB; "
                f"under load ({row['load_rps']:.0f} req/s through the proxy) "
                f"CPU {row['busy_cpu']:.2f}% RSS {row['busy_rss']:.1f} MiB; peak RSS {row['peak_rss']:.1f} MiB"
            )
            reply = f"{row['reply_p50'] * 1000:.0f} ms (p50) / {row['reply_p95'] * 1000:.0f} ms (p95)"
            publish = f"{row['publish_p50'] * 1000:.0f} / {row['publish_p95'] * 1000:.0f} ms"
            print(
                f"   {proxy}: new version served {reply} after the heartbeat reply that announced it; "
                f"{publish} after publication (includes waiting for the next heartbeat)"
            )


if __name__ == "__main__":
    main()
