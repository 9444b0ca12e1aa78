"""The local NLB stand-in's rules: when a (de)registration takes effect, and what HAProxy is told."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agent.platform import Platform
from lbcp_local.entry_routing import (
    EntryConfig,
    EntryDelays,
    EntryListener,
    EntryServer,
    HealthCheck,
    Target,
    TargetRouting,
    plan_servers,
    render_entry_config,
)

A80, B80, A443 = Target(80, "i-a"), Target(80, "i-b"), Target(443, "i-a")


def test_a_registration_takes_effect_only_after_the_registration_delay() -> None:
    routing = TargetRouting(EntryDelays(registration_seconds=10, deregistration_seconds=4))
    routing.observe([A80], now=100)
    assert routing.routed(109.9) == frozenset()
    routing.observe([A80], now=110)
    assert routing.routed(110) == {A80}


def test_a_deregistered_target_still_gets_new_connections_for_the_deregistration_delay() -> None:
    routing = TargetRouting(EntryDelays(registration_seconds=0, deregistration_seconds=4))
    routing.observe([A80, B80], now=0)
    routing.observe([B80], now=20)  # A80 deregistered at 20
    assert routing.routed(23.9) == {A80, B80}
    routing.observe([B80], now=24)
    assert routing.routed(24) == {B80}


def test_a_re_registration_starts_over() -> None:
    routing = TargetRouting(EntryDelays(registration_seconds=5, deregistration_seconds=2))
    routing.observe([A80], now=0)
    routing.observe([], now=10)
    routing.observe([], now=12)  # gone, and forgotten
    routing.observe([A80], now=13)
    assert routing.routed(17) == frozenset()
    assert routing.routed(18) == {A80}


def test_targets_of_a_removed_listener_are_forgotten() -> None:
    routing = TargetRouting(EntryDelays(0, 0))
    routing.observe([A80, A443], now=0)
    routing.forget_port(443)
    assert routing.routed(1) == {A80}


def test_negative_delays_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        EntryDelays(registration_seconds=-1)


CHECKS = {80: HealthCheck(interval_seconds=10, healthy=3, unhealthy=2)}


def test_a_new_target_is_added_with_the_target_groups_health_check_and_enabled() -> None:
    commands, after = plan_servers({}, {A80: "127.0.0.1:4001"}, CHECKS, now=0, deregistration_timeout_seconds=30)
    assert commands == [
        "add server tg_80/i-a 127.0.0.1:4001 check inter 10s rise 3 fall 2",
        "enable health tg_80/i-a",
        "enable server tg_80/i-a",
    ]
    assert after == {A80: EntryServer("127.0.0.1:4001")}


def test_a_target_taken_out_keeps_its_connections_until_the_deregistration_timeout() -> None:
    current = {A80: EntryServer("127.0.0.1:4001"), B80: EntryServer("127.0.0.1:4002")}
    commands, after = plan_servers(current, {B80: "127.0.0.1:4002"}, CHECKS, now=50, deregistration_timeout_seconds=30)
    # Maintenance: no new connection, existing ones go on.
    assert commands == ["set server tg_80/i-a state maint"]
    assert after[A80] == EntryServer("127.0.0.1:4001", ready=False, out_since=50)
    commands, after = plan_servers(after, {B80: "127.0.0.1:4002"}, CHECKS, now=79, deregistration_timeout_seconds=30)
    assert commands == [] and A80 in after
    commands, after = plan_servers(after, {B80: "127.0.0.1:4002"}, CHECKS, now=80, deregistration_timeout_seconds=30)
    assert commands == ["shutdown sessions server tg_80/i-a", "del server tg_80/i-a"]
    assert after == {B80: EntryServer("127.0.0.1:4002")}


def test_a_target_back_before_the_timeout_is_made_ready_again() -> None:
    current = {A80: EntryServer("127.0.0.1:4001", ready=False, out_since=10)}
    commands, after = plan_servers(current, {A80: "127.0.0.1:4001"}, CHECKS, now=12, deregistration_timeout_seconds=30)
    assert commands == ["set server tg_80/i-a state ready"]
    assert after == {A80: EntryServer("127.0.0.1:4001")}


def test_nothing_to_do_is_no_command() -> None:
    current = {A80: EntryServer("127.0.0.1:4001")}
    assert plan_servers(current, {A80: "127.0.0.1:4001"}, CHECKS, now=5, deregistration_timeout_seconds=30) == (
        [],
        current,
    )


def test_the_rendered_configuration_passes_haproxys_check(tmp_path: Path) -> None:
    config = EntryConfig(
        "lbcp-lb-0123",
        str(tmp_path),
        (EntryListener(80, 41080, HealthCheck()), EntryListener(443, 41443, HealthCheck(5, 2, 2))),
        deregistration_timeout_seconds=300,
    )
    path = tmp_path / "haproxy.cfg"
    path.write_text(render_entry_config(config))
    checked = subprocess.run(
        [Platform.detect().haproxy, "-c", "-f", str(path)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = path.read_text()
    assert "bind 127.0.0.1:41080" in text and "backend tg_443" in text and "retries 0" in text
