"""The plan preview: the real planner's plan in words, and desired against observed field by field (pure)."""

from __future__ import annotations

import random
from datetime import timedelta

from lbcp.models.inspection import PlanView
from lbcp.models.lbvm import Lbvm
from lbcp.models.resource import LoadBalancerRecord
from lbcp.models.rollout import template_of
from lbcp.reconcile.observed import EntryView, LoadBalancerView
from lbcp.reconcile.plan import plan
from lbcp.reconcile.preview import plan_view
from tests.fleet.test_planner import LB, NOW, SUBNET_A, SUBNET_B, lbvm, record, world


def _view(rec: LoadBalancerRecord, vms: list[Lbvm], observed: LoadBalancerView, seed: int = 7) -> PlanView:
    return plan_view(rec, vms, observed, plan(rec, vms, observed, NOW, rng=random.Random(seed)), NOW)


def _diff(view: PlanView) -> dict[str, tuple[str, str, bool]]:
    return {field.field: (field.desired, field.observed, field.in_sync) for field in view.diff}


def test_a_converged_load_balancer_previews_as_a_noop_with_every_field_in_sync() -> None:
    vms = [lbvm(1, subnet=SUBNET_A), lbvm(2, subnet=SUBNET_B)]
    registered = EntryView(
        ready=True, dns_name="web.x", registered_instance_ids=frozenset(v.instance_id or "" for v in vms)
    )
    rec = record(desired=2)
    rec = rec.model_copy(update={"status": plan(rec, vms, world(vms, registered), NOW, rng=random.Random(1)).status})

    view = _view(rec, vms, world(vms, registered))

    assert (view.noop, view.jobs, view.in_sync) == (True, [], True)
    assert view.template == template_of(rec.spec).description
    diff = _diff(view)
    assert diff["capacity"] == ("2", "2", True)
    assert diff[f"lbvms[{SUBNET_A}]"] == ("1", "1", True)
    assert diff["registrations"] == (
        ", ".join(sorted(v.instance_id or "" for v in vms)),
        ", ".join(sorted(v.instance_id or "" for v in vms)),
        True,
    )


def test_a_scale_in_says_the_victim_is_drawn_at_random_and_from_which_lbvms() -> None:
    vms = [lbvm(1, subnet=SUBNET_A), lbvm(2, subnet=SUBNET_A), lbvm(3, subnet=SUBNET_B)]
    view = _view(record(desired=2), vms, world(vms))

    [drain] = [job for job in view.jobs if job.action == "RequestDrain"]
    # Subnet A is the fullest: the victim is one of its two LBVMs, whichever the draw picks.
    assert drain.drawn_from == [vms[0].lbvm_id, vms[1].lbvm_id]
    assert drain.lbvm_id in drain.drawn_from
    assert "drawn at random from the 2 LBVMs of the fullest zone" in drain.reason
    assert _diff(view)["capacity"] == ("2", "3", False)
    assert _diff(view)[f"lbvms[{SUBNET_A}]"] == ("1", "2", False)


def test_missing_lbvms_outdated_configs_old_templates_and_stray_registrations_each_show_in_the_diff() -> None:
    old = lbvm(1, subnet=SUBNET_A, applied_config_version=0, launch_template="t3.micro from ami-0old running haproxy")
    stray = "i-00000000000000bad"
    entry = EntryView(ready=True, dns_name="web.x", registered_instance_ids=frozenset({old.instance_id or "", stray}))
    rec = record(desired=3)

    view = _view(rec, [old], world([old], entry))

    diff = _diff(view)
    assert diff["capacity"] == ("3", "1", False)
    assert diff[f"lbvms[{SUBNET_B}]"] == ("1-2", "0", False)
    assert diff[f"configVersion[{old.lbvm_id}]"] == ("1", "0", False)
    assert diff[f"launchTemplate[{old.lbvm_id}]"][1:] == ("t3.micro from ami-0old running haproxy", False)
    registrations = next(field for field in view.diff if field.field == "registrations")
    assert not registrations.in_sync and f"extra: {stray}" in (registrations.note or "")
    actions = [job.action for job in view.jobs]
    assert "Launch" in actions and "DeregisterTarget" in actions
    launch = next(job for job in view.jobs if job.action == "Launch")
    assert launch.template == view.template and launch.reason.startswith("launching an LBVM in")
    assert view.noop is False and view.in_sync is False


def test_an_incomplete_entry_and_entry_drift_show_as_entry_fields() -> None:
    assert _diff(_view(record(desired=1), [], LoadBalancerView()))["entry"] == ("complete", "incomplete", False)
    drifted = EntryView(ready=True, dns_name="web.x", drift=("port 22 is open to 0.0.0.0/0",))
    vms = [lbvm(1, age=timedelta(hours=2))]
    view = _view(record(desired=1), vms, world(vms, drifted))
    assert _diff(view)["entry.drift"] == ("as the spec says", "port 22 is open to 0.0.0.0/0", False)
    assert [job.action for job in view.jobs][:1] == ["RepairEntryDrift"]
    assert view.load_balancer_id == LB
