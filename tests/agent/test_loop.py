"""The agent loop over the simulated data plane, on a fake clock: heartbeats, configs, drains, backoff."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

from agent.clock import Backoff
from agent.identity import Identity
from agent.loop import Agent, AgentSettings
from agent.metrics import FixedSampler, SystemSampler
from agent.simulated import SimulatedDataPlane
from lbcp.models.agent import MAX_HEARTBEAT_SAMPLES, MetricsSample
from tests.agent.fakes import FakeClock, ScriptedControlPlane
from tests.agent.helpers import LB_ID, agent_config, backend, spec_document

IDENTITY = Identity(LB_ID, "lbvm-7", "i-0123456789abcdef0", "subnet-0123456789abcdef0")


def _document(port: int = 80, **extra: Any) -> dict[str, Any]:
    return spec_document(
        listeners=[{"protocol": "HTTP", "port": port, "defaultBackend": "app"}],
        backends=[backend("app", 9000)],
        **extra,
    )


def _agent(
    dataplane: SimulatedDataPlane | None = None, **kwargs: Any
) -> tuple[Agent, ScriptedControlPlane, SimulatedDataPlane, FakeClock]:
    control, clock = ScriptedControlPlane(), FakeClock()
    dataplane = dataplane or SimulatedDataPlane()
    agent = Agent(IDENTITY, control, dataplane, clock=clock, rng=random.Random(7), **kwargs)
    return agent, control, dataplane, clock


def test_first_heartbeat_says_starting_then_the_desired_config_is_applied_and_reported_at_once() -> None:
    agent, control, dataplane, _ = _agent()
    control.publish(agent_config(_document(), version=3))

    delay = agent.step()
    first = control.heartbeats[0]
    assert (first.state, first.applied_config_version, first.sequence) == ("starting", None, 1)
    assert (first.instance_id, first.lbvm_id, first.load_balancer_id) == (
        IDENTITY.instance_id,
        IDENTITY.lbvm_id,
        LB_ID,
    )
    assert dataplane.applied == [3]
    assert delay == 0.0  # the change is reported without waiting an interval

    delay = agent.step()
    assert (control.last.state, control.last.applied_config_version, control.last.sequence) == ("ready", 3, 2)
    assert control.last.boot_id == first.boot_id
    assert 4.5 <= delay <= 5.5  # the reply's interval, jittered by 10%
    assert control.config_fetches == 1  # nothing new: nothing fetched


def test_heartbeats_carry_the_proxy_connection_count_and_follow_the_replied_interval() -> None:
    agent, control, _, _ = _agent(SimulatedDataPlane(connections=42))
    control.publish(agent_config(_document(), version=1))
    control.interval = 20
    agent.step()
    delay = agent.step()
    assert control.last.active_connections == 42
    assert 18 <= delay <= 22


def test_failures_back_off_exponentially_with_jitter_and_reset_after_success() -> None:
    agent, control, _, _ = _agent(settings=AgentSettings(heartbeat_interval_seconds=2, backoff_cap_seconds=30))
    control.publish(agent_config(_document(), version=1))
    control.failing = 6
    delays = [agent.step() for _ in range(6)]
    ceilings = [min(30, 2 * 2**n) for n in range(1, 7)]  # 4, 8, 16, 30, 30, 30
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert delays[2] > delays[0]
    assert [h.sequence for h in control.heartbeats] == [1, 2, 3, 4, 5, 6]  # every try is a new heartbeat
    agent.step()
    assert agent.backoff.failures == 0


def test_jitter_spreads_a_fleet_that_failed_together() -> None:
    delays = {Backoff(base=5, cap=60, rng=random.Random(seed)).next_delay() for seed in range(20)}
    assert len(delays) == 20 and min(delays) >= 5 and max(delays) <= 10


def test_a_refused_config_keeps_the_last_good_one_serving_reports_the_error_and_is_not_hammered() -> None:
    agent, control, dataplane, clock = _agent(SimulatedDataPlane(reject_versions={2}))
    control.publish(agent_config(_document(), version=1))
    agent.step()
    control.publish(agent_config(_document(port=81), version=2))
    agent.step()
    agent.step()
    assert control.last.state == "ready"  # version 1 still serves: this LBVM stays in rotation
    assert control.last.applied_config_version == 1
    assert control.last.error is not None and "config version 2 not applied (validate)" in control.last.error
    fetches = control.config_fetches
    agent.step()
    assert control.config_fetches == fetches  # not retried within the retry period
    clock.advance(61)
    agent.step()
    assert control.config_fetches == fetches + 1  # retried after it

    control.publish(agent_config(_document(port=82), version=3))  # a newer version is tried at once
    agent.step()
    agent.step()
    last = control.last
    assert (last.applied_config_version, last.error, dataplane.applied) == (3, None, [1, 3])


def test_a_first_config_that_cannot_be_served_reports_failed() -> None:
    agent, control, _, _ = _agent()
    control.publish(agent_config(_document(port=8404), version=1))  # the agent's own stats port
    agent.step()
    agent.step()
    assert control.last.state == "failed"
    assert control.last.applied_config_version is None
    assert control.last.error is not None and "stats port" in control.last.error


def test_drain_reports_draining_then_drained_when_connections_reach_zero() -> None:
    agent, control, dataplane, clock = _agent(SimulatedDataPlane(connections=30, drain_step=10))
    control.publish(agent_config(_document(), version=1))
    agent.step()
    control.drain = True
    control.drain_deadline = clock.now() + timedelta(seconds=300)
    agent.step()
    assert dataplane.draining and dataplane.drain_count == 1
    states = []
    for _ in range(4):
        agent.step()
        states.append((control.last.state, control.last.active_connections))
    assert states == [("draining", 20), ("draining", 10), ("drained", 0), ("drained", 0)]
    assert dataplane.drain_count == 1  # drain mode is entered once
    assert dataplane.serving()  # nothing forced: the connections ended by themselves


def test_the_drain_deadline_stops_the_proxy_whatever_is_left() -> None:
    agent, control, dataplane, clock = _agent(SimulatedDataPlane(connections=5))
    control.publish(agent_config(_document(), version=1))
    agent.step()
    control.drain = True
    control.drain_deadline = clock.now() + timedelta(seconds=12)
    agent.step()
    agent.step()
    assert control.last.state == "draining"
    clock.advance(13)
    agent.step()
    assert not dataplane.serving()
    agent.step()
    assert (control.last.state, control.last.active_connections) == ("drained", 0)


def test_a_drain_without_a_deadline_uses_the_specs_drain_timeout() -> None:
    agent, control, _, clock = _agent(SimulatedDataPlane(connections=1))
    control.publish(agent_config(_document(drain={"timeoutSeconds": 45}), version=1))
    agent.step()
    control.drain = True
    agent.step()
    assert agent.drain_deadline == clock.now() + timedelta(seconds=45)


def test_a_lifted_drain_serves_again_and_new_versions_wait_for_it() -> None:
    agent, control, dataplane, _ = _agent()
    control.publish(agent_config(_document(), version=1))
    agent.step()
    control.drain = True
    agent.step()
    control.publish(agent_config(_document(port=81), version=2))
    agent.step()
    assert dataplane.applied == [1]  # no config change while draining
    control.drain = False
    agent.step()
    agent.step()
    assert not dataplane.draining and dataplane.applied == [1, 2]
    assert control.last.state == "ready"


def test_a_proxy_that_died_is_restarted_on_the_last_good_config() -> None:
    agent, control, dataplane, _ = _agent()
    control.publish(agent_config(_document(), version=1))
    agent.step()
    dataplane.stop()
    agent.step()
    assert dataplane.serving() and control.last.state == "ready"


def test_the_loop_survives_a_round_that_raises_and_stops_when_asked() -> None:
    class Exploding(SimulatedDataPlane):
        calls = 0

        def active_connections(self) -> int:
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("boom")
            return super().active_connections()

    agent, control, _, clock = _agent(Exploding())
    control.publish(agent_config(_document(), version=1))
    agent.run(lambda: len(control.heartbeats) >= 4)
    assert len(control.heartbeats) == 4
    assert len(clock.slept) >= 4  # including a backoff after the round that raised


def test_a_metrics_sample_rides_on_the_heartbeat_once_per_period_and_never_while_draining(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    _write_proc(proc, busy=100, idle=900, total_kb=1000, available_kb=750)
    agent, control, _, clock = _agent(
        SimulatedDataPlane(connections=12), sampler=SystemSampler(root=proc), settings=AgentSettings()
    )
    control.publish(agent_config(_document(), version=1))
    agent.step()
    agent.step()
    assert [h.metrics for h in control.heartbeats] == [[], []]  # not before a full period
    _write_proc(proc, busy=400, idle=1000, total_kb=1000, available_kb=750)  # 300 busy of 400 ticks
    clock.advance(60)
    agent.step()
    assert control.last.metrics == [MetricsSample(period_end=clock.now(), cpu=75.0, memory=25.0, active_connections=12)]
    # On the wire: camelCase, as the control plane reads it.
    assert json.loads(control.last.model_dump_json(by_alias=True))["metrics"] == [
        {"periodEnd": "2026-01-01T00:01:00Z", "cpu": 75.0, "memory": 25.0, "activeConnections": 12}
    ]
    clock.advance(5)
    agent.step()  # within the next period: answered, so no sample, and no key at all
    assert control.last.metrics == []
    assert "metrics" not in json.loads(control.last.model_dump_json(by_alias=True))

    control.drain = True  # out of rotation: no more samples for the scaler's averages
    agent.step()
    clock.advance(120)
    agent.step()
    assert [len(h.metrics) for h in control.heartbeats] == [0, 0, 1, 0, 0, 0]


def test_a_sample_whose_heartbeat_failed_rides_on_the_next_and_only_the_newest_few_are_kept(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    _write_proc(proc, busy=1, idle=1, total_kb=10, available_kb=5)
    agent, control, _, clock = _agent(sampler=SystemSampler(root=proc))
    control.publish(agent_config(_document(), version=1))
    agent.step()
    clock.advance(60)
    control.failing = 1
    agent.step()
    [sample] = control.last.metrics
    agent.step()  # the retry carries it again, and is answered
    assert control.last.metrics == [sample]
    agent.step()
    assert control.last.metrics == []  # answered: not sent a third time

    # The control plane unreachable for ten periods: the newest MAX_HEARTBEAT_SAMPLES wait, oldest first.
    control.failing = 10
    ends = []
    for _ in range(10):
        clock.advance(60)
        agent.step()
        ends.append(clock.now())
    assert [s.period_end for s in control.last.metrics] == ends[-MAX_HEARTBEAT_SAMPLES:]
    agent.step()
    assert [s.period_end for s in control.last.metrics] == ends[-MAX_HEARTBEAT_SAMPLES:]
    assert control.last.state == "ready"
    agent.step()
    assert control.last.metrics == []


def test_a_failing_sampler_never_stops_heartbeats() -> None:
    class Broken(FixedSampler):
        def cpu_percent(self) -> float:
            raise OSError("/proc unreadable")

    agent, control, _, clock = _agent(sampler=Broken())
    control.publish(agent_config(_document(), version=1))
    clock.advance(61)
    agent.step()
    agent.step()
    assert control.last.state == "ready"
    assert [h.metrics for h in control.heartbeats] == [[], []]


def _write_proc(proc: Path, *, busy: int, idle: int, total_kb: int, available_kb: int) -> None:
    # user nice system idle iowait irq softirq steal guest guest_nice
    (proc / "stat").write_text(f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 {busy} 0 0 {idle} 0 0 0 0 0 0\n")
    (proc / "meminfo").write_text(
        f"MemTotal:       {total_kb} kB\nMemFree:        1 kB\nMemAvailable:   {available_kb} kB\n"
    )


def test_the_serving_config_is_reapplied_periodically_so_renewed_certificates_reach_the_proxy() -> None:
    agent, control, dataplane, clock = _agent(settings=AgentSettings(refresh_seconds=3600))
    control.publish(agent_config(_document(), version=1))
    agent.step()
    agent.step()
    assert dataplane.apply_calls == [1]
    clock.advance(3601)
    agent.step()
    assert dataplane.apply_calls == [1, 1]  # the same version again: a no-op unless its certificates changed
    assert dataplane.applied == [1]


def test_a_version_told_to_preload_is_checked_and_reported_without_being_served() -> None:
    agent, control, dataplane, _ = _agent()
    control.publish(agent_config(_document(), version=1))
    agent.step()
    control.configs[2] = agent_config(_document(port=8080), version=2)
    control.preload = 2
    agent.step()
    assert dataplane.preload_calls == [2] and dataplane.applied == [1]
    agent.step()
    beat = control.last
    assert beat.capabilities == ["preload"]
    assert beat.applied_config_version == 1 and beat.preload is not None
    assert (beat.preload.version, beat.preload.error) == (2, None)
    agent.step()
    assert dataplane.preload_calls == [2]  # ready once: not checked again every heartbeat
    # Then told to run it: it switches, and nothing is left to preload.
    control.desired, control.preload = 2, None
    agent.step()
    agent.step()
    assert dataplane.applied == [1, 2]
    assert (control.last.applied_config_version, control.last.preload) == (2, None)


def test_a_version_that_fails_its_preload_is_reported_and_retried_only_after_a_while() -> None:
    agent, control, dataplane, clock = _agent(SimulatedDataPlane(reject_versions={2}))
    control.publish(agent_config(_document(), version=1))
    agent.step()
    control.configs[2] = agent_config(_document(port=8080), version=2)
    control.preload = 2
    agent.step()
    agent.step()
    beat = control.last
    assert beat.state == "ready" and beat.applied_config_version == 1 and beat.preload is not None
    assert beat.preload.version == 2 and beat.preload.error is not None
    assert "config version 2 cannot be preloaded" in beat.preload.error
    assert beat.error is None  # what serves is fine: only the next version is not
    assert dataplane.preload_calls == [2]
    clock.advance(AgentSettings().retry_failed_config_seconds + 1)
    agent.step()
    assert dataplane.preload_calls == [2, 2]
