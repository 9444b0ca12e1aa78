"""Planning work per load balancer at 10, 100, 1,000 and 10,000 load balancers (pure: no AWS, no moto).

What one reconcile tick does in memory once the listings are read: the
snapshot (``lbcp.reconcile.snapshot.observe``: every instance, interface and
entry handed to its load balancer) and one ``plan`` per load balancer, for
fleets in steady state (3 Routable LBVMs each over 2 subnets, registered,
heartbeats fresh, status converged: every plan is a no-op, as in a quiet
fleet). The listings come from in-memory ports, so this measures the
control plane's own CPU, not AWS latency (``reconcile_calls.py`` counts the
calls).

Two paths:

- the scheduled tick: observe and plan every load balancer;
- a spec change of one load balancer (the stream's tick, ``only={id}``):
  observe that one (its own instances and interfaces: the in-memory port
  filters as EC2's owner-tag filter does, here by a scan) and plan it. This is
  the control plane's part of the latency from a spec change to its first
  action. ``shard_scale.py`` measures the sharded tick and this path with the
  calls and pages each would make.

    .venv/bin/python bench/plan_scale.py [--sizes 10 100 1000 10000] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
for part in ("functions", "local", "."):
    sys.path.insert(0, str(ROOT / part))

from lbcp.models.lbvm import Lbvm  # noqa: E402
from lbcp.models.resource import LoadBalancerRecord  # noqa: E402
from lbcp.reconcile.observed import (  # noqa: E402
    EntryView,
    ObservedInstance,
    ObservedNetworkInterface,
)
from lbcp.reconcile.plan import plan  # noqa: E402
from lbcp.reconcile.ports import ComputePort, EntryPort  # noqa: E402
from lbcp.reconcile.snapshot import observe  # noqa: E402
from lbcp.service import initial_status  # noqa: E402
from lbcp.validation import parse_spec  # noqa: E402

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
SUBNETS = ("subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2")
AMI = "ami-0123456789abcdef0"
TEMPLATE = f"c6i.large from {AMI} running haproxy"


class Compute:
    def __init__(self, instances: list[ObservedInstance], interfaces: list[ObservedNetworkInterface]) -> None:
        self._instances, self._interfaces = instances, interfaces

    def observe(
        self, load_balancer_ids: Collection[str] | None = None
    ) -> tuple[list[ObservedInstance], list[ObservedNetworkInterface]]:
        if load_balancer_ids is None:
            return self._instances, self._interfaces
        wanted = set(load_balancer_ids)
        return (
            [i for i in self._instances if i.load_balancer_id in wanted],
            [n for n in self._interfaces if n.load_balancer_id in wanted],
        )


class Entry:
    def __init__(self, views: dict[str, EntryView]) -> None:
        self._views = views

    def observe(
        self, records: Sequence[LoadBalancerRecord], verify: Iterable[str], *, scoped: bool = False
    ) -> dict[str, EntryView]:
        return {record.id: self._views[record.id] for record in records}


def fleet(size: int) -> tuple[list[LoadBalancerRecord], dict[str, list[Lbvm]], ComputePort, EntryPort]:
    spec = parse_spec(
        {
            "name": "web",
            "type": "application",
            "vpcId": "vpc-0123456789abcdef0",
            "subnetIds": list(SUBNETS),
            "listeners": [{"protocol": "HTTP", "port": 80, "defaultBackend": "app"}],
            "backends": [{"name": "app", "targets": [{"host": "10.0.1.10", "port": 8080}]}],
            "capacity": {"min": 3, "max": 6},
            "instance": {"type": "c6i.large", "imageId": AMI},
        }
    )
    records: list[LoadBalancerRecord] = []
    lbvms: dict[str, list[Lbvm]] = {}
    instances: list[ObservedInstance] = []
    interfaces: list[ObservedNetworkInterface] = []
    views: dict[str, EntryView] = {}
    for index in range(size):
        lb_id = f"lb-{index:017x}"
        named = spec.model_copy(update={"name": f"web-{index:05d}"})
        records.append(
            LoadBalancerRecord(
                id=lb_id,
                generation=1,
                spec=named,
                status=initial_status(named),
                created_at=NOW - timedelta(days=1),
                updated_at=NOW - timedelta(days=1),
                desired_capacity=3,
            )
        )
        lbvms[lb_id] = []
        for slot in range(3):
            lbvm_id, instance_id = f"lbvm-{index:06x}{slot:06x}", f"i-{index:09x}{slot:08x}"
            subnet = SUBNETS[slot % 2]
            lbvms[lb_id].append(
                Lbvm(
                    lbvm_id=lbvm_id,
                    load_balancer_id=lb_id,
                    subnet_id=subnet,
                    availability_zone=f"us-east-1{'ab'[slot % 2]}",
                    state="Routable",
                    state_since=NOW - timedelta(hours=1),
                    version=4,
                    launched_generation=1,
                    launch_template=TEMPLATE,
                    launch_reason="bench",
                    created_at=NOW - timedelta(hours=1, minutes=2),
                    instance_id=instance_id,
                    private_ip=f"10.{index // 250 % 250}.{index % 250}.{slot + 10}",
                    last_heartbeat_at=NOW - timedelta(seconds=3),
                    applied_config_version=1,
                    agent_state="ready",
                )
            )
            instances.append(
                ObservedInstance(
                    instance_id=instance_id,
                    load_balancer_id=lb_id,
                    lbvm_id=lbvm_id,
                    state="running",
                    subnet_id=subnet,
                    private_ip=None,
                    launched_at=NOW - timedelta(hours=1),
                    image_id=AMI,
                )
            )
            interfaces.append(
                ObservedNetworkInterface(
                    network_interface_id=f"eni-{index:09x}{slot:08x}",
                    load_balancer_id=lb_id,
                    lbvm_id=lbvm_id,
                    status="in-use",
                    attached_instance_id=instance_id,
                )
            )
        views[lb_id] = EntryView(
            ready=True,
            dns_name=f"web-{index:05d}.lb.example",
            security_group_id=f"sg-{index:017x}",
            registered_instance_ids=frozenset(lbvm.instance_id or "" for lbvm in lbvms[lb_id]),
        )
    # ``observe`` calls only the ports' listings; nothing here acts.
    compute, entry = cast(ComputePort, Compute(instances, interfaces)), cast(EntryPort, Entry(views))
    # Converge the statuses, as the first tick would have written them: every later plan is a no-op.
    snapshot = observe(compute, entry, records, [r.id for r in records], whole_fleet=True)
    rng = random.Random(1)
    converged = []
    for record in records:
        decided = plan(record, lbvms[record.id], snapshot[record.id], NOW, rng=rng)
        assert not decided.jobs, decided.jobs
        converged.append(record.model_copy(update={"status": decided.status}))
    return converged, lbvms, compute, entry


def measure(size: int, repeat: int) -> dict[str, Any]:
    records, lbvms, compute, entry = fleet(size)
    rng = random.Random(2)
    observe_s, plan_s, one_s = [], [], []
    for _ in range(repeat):
        started = time.perf_counter()
        snapshot = observe(compute, entry, records, [r.id for r in records], whole_fleet=True)
        observed = time.perf_counter()
        for record in records:
            decided = plan(record, lbvms[record.id], snapshot[record.id], NOW, rng=rng)
            assert decided.is_noop(record.status)
        planned = time.perf_counter()
        observe_s.append(observed - started)
        plan_s.append(planned - observed)
        # A spec change of the last load balancer: its own tick, from the full listings.
        target = records[-1]
        started = time.perf_counter()
        view = observe(compute, entry, [target], [target.id])[target.id]
        plan(target, lbvms[target.id], view, NOW, rng=rng)
        one_s.append(time.perf_counter() - started)
    best_observe, best_plan, best_one = min(observe_s), min(plan_s), min(one_s)
    return {
        "loadBalancers": size,
        "observeSeconds": round(best_observe, 4),
        "planSeconds": round(best_plan, 4),
        "observeMicrosPerLb": round(best_observe / size * 1e6, 1),
        "planMicrosPerLb": round(best_plan / size * 1e6, 1),
        "specChangeMillis": round(best_one * 1e3, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [measure(size, args.repeat) for size in args.sizes]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'LBs':>6} {'observe s':>10} {'plan s':>8} {'observe µs/LB':>14} {'plan µs/LB':>11} {'spec change ms':>15}")
    for r in results:
        print(
            f"{r['loadBalancers']:>6} {r['observeSeconds']:>10} {r['planSeconds']:>8} "
            f"{r['observeMicrosPerLb']:>14} {r['planMicrosPerLb']:>11} {r['specChangeMillis']:>15}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
