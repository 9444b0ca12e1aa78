"""Config rollouts as the reconciler stores them and an operator steers them, against emulated AWS (moto).

The real reconciler over the real repository: every change of ``status.configRollout`` is written to the
rollout history in the same transaction as the status, beside the template rollouts, and an operator's
pause and abort (the service's, as the API calls it) reach the planner through ``configRolloutControl``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from lbcp.adapters.account import AccountInspector
from lbcp.models.config_rollout import ConfigRolloutStatus, served_config_version
from lbcp.models.events import Event
from lbcp.service import LoadBalancerService
from lbcp.validation import parse_spec
from tests.conftest import Cloud
from tests.fleet.test_image_drift_aws import Tick, image, publish, world

__all__ = ["world"]  # the fixture, shared with the image drift tests

ROLLOUT = {"rollout": {"canary": 1, "bakeSeconds": 600, "progressDeadlineSeconds": 900}}


def no_inspector() -> AccountInspector:
    raise AssertionError("a rollout action inspects nothing in the account")


def patch_config(tick: Tick, lb_id: str, port: int) -> None:
    """A config-only PATCH, as the API writes it (a new generation and its config version)."""
    record = tick.record(lb_id)
    document = record.spec.model_dump(mode="json", by_alias=True)
    document["backends"][0]["targets"][0]["port"] = port
    spec = parse_spec(document)
    now = tick.clock[0]
    event = Event(time=now, type="Normal", reason="SpecUpdated", message="test", generation=record.generation + 1)
    tick.load_balancers.update_spec(lb_id, record.generation, spec, now, event, previous=record.spec)


def config_history(tick: Tick, lb_id: str) -> list[ConfigRolloutStatus]:
    items = tick.load_balancers.list_rollouts(lb_id, 20, None).items
    return [item for item in items if isinstance(item, ConfigRolloutStatus)]


def test_config_rollouts_are_stored_in_the_history_and_an_operator_pauses_and_aborts_them(
    cloud: Cloud, world: Callable[..., tuple[Tick, list[str]]]
) -> None:
    running = image(cloud, "al2023")
    publish(running)
    tick, [lb_id] = world(running, [ROLLOUT])
    tick.run()  # the planner's first word: everyone on version 1
    assert tick.record(lb_id).status.config is not None
    service = LoadBalancerService(tick.load_balancers, no_inspector, lambda: tick.clock[0])

    patch_config(tick, lb_id, 8081)
    tick.run()
    staged = tick.record(lb_id).status.config_rollout
    assert staged is not None and (staged.state, staged.step, staged.to_version) == ("Progressing", "Canary", 2)
    [stored] = config_history(tick, lb_id)
    assert stored == staged  # the history item is written with the status

    # Paused before the canary applied version 2: nobody is told it any more.
    paused = service.rollout_action(lb_id, "pause", "alice")
    assert paused.kind == "config" and paused.state == "Paused"
    tick.run()
    record = tick.record(lb_id)
    held = record.status.config_rollout
    assert held is not None and (held.state, held.paused_lbvms) == ("Paused", [])
    assert {served_config_version(record.status.config, held, 2, vm) for vm in staged.canary_lbvms} == {1}
    assert [r.state for r in config_history(tick, lb_id)] == ["Paused"]

    # Aborted: rolled back (nobody ran version 2), the version rejected; the history says so.
    service.rollout_action(lb_id, "abort", "alice")
    tick.clock[0] += timedelta(seconds=30)
    tick.run()
    ended = tick.record(lb_id).status.config_rollout
    assert ended is not None and (ended.state, ended.rejected) == ("RolledBack", True)
    assert "aborted by alice" in ended.message
    [item] = config_history(tick, lb_id)
    assert item == ended and item.finished_at is not None

    # A second config change: a second entry, newest first, with the first kept as it ended.
    patch_config(tick, lb_id, 8082)
    tick.run()
    history = config_history(tick, lb_id)
    assert [(r.to_version, r.state) for r in history] == [(3, "Progressing"), (2, "RolledBack")]
    reasons = {e.reason for e in tick.load_balancers.list_events(lb_id, 100, None).items}
    assert {"RolloutPauseRequested", "RolloutPaused", "RolloutAbortRequested", "RolledBack"} <= reasons
