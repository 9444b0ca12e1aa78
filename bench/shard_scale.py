"""Sharded reconcile at 10, 100, 1,000 and 10,000 load balancers: calls, pages and CPU per shard (pure: no moto).

The real ``Reconciler``, dispatcher (``lbcp.reconcile.dispatch``) and planner over
in-memory ports that answer as the AWS adapters do and count the calls those
would make, pagination included:

- records: the GSI listing in pages of 100 (``Reconciler._all_records``), by key
  100 a BatchGetItem; streaks: one listing query (a healthy fleet has none), by
  key 100 a BatchGetItem; LBVMs: the keys-only index's keys in 1 MB pages (all of
  them, or the key range a shard's sorted ids span), then the records 100 a
  BatchGetItem, plus ``byKind``'s empty query, or one query per load balancer for five or fewer;
- EC2: DescribeInstances and DescribeNetworkInterfaces in pages of 1,000, by the
  product tag (every one) or by owner-tag values (200 a filter, server-side:
  the scoped listing costs what it returns);
- the entry (``EntryAdapter.observe_entries``): its account-wide listings of
  security groups (pages of 1,000), NLBs and target groups (pages of 400) and the
  zone's records (pages of 300), or for a tick of a few (``snapshot.scoped_entry``)
  three reads by name each, plus one DescribeTargetHealth per listener and
  one DescribeListeners per verified load balancer (``verify_budget`` a tick). The
  dispatcher observes the due load balancers' entries once and sends each shard's
  views in its message (``dispatch.shipped_entries``): shards read no entry;
- SendMessageBatch, 10 shards a call.

The fleet is ``plan_scale.fleet``: 3 Routable LBVMs over 2 subnets per load
balancer, one listener, converged (every plan a no-op). ``reconcile_calls.py``
counts the same ticks by the real adapters on moto up to 100 load balancers
(its spec has two listeners: one DescribeTargetHealth more per verified one). Printed per fleet size: the
dispatcher's calls and CPU, the shards, per shard its calls (max) and CPU
(max), all calls of a minute, and the spec-change path (``tick(only={id})``: the
rows it observed, its calls and its CPU), next to the same path before scoping
(the account-wide listings).

    .venv/bin/python bench/shard_scale.py [--sizes 10 100 1000 10000] [--shard-size 50] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
for part in ("functions", "local", "."):
    sys.path.insert(0, str(ROOT / part))

from bench.plan_scale import NOW, fleet  # noqa: E402
from lbcp.models.lbvm import Lbvm  # noqa: E402
from lbcp.models.resource import LoadBalancerRecord  # noqa: E402
from lbcp.reconcile.backoff import RetryStreak  # noqa: E402
from lbcp.reconcile.compute import FILTER_VALUES_LIMIT  # noqa: E402
from lbcp.reconcile.dispatch import SEND_BATCH, WorkMessage, dispatch, parse_work, shipped_entries  # noqa: E402
from lbcp.reconcile.executor import Executor  # noqa: E402
from lbcp.reconcile.observed import EntryView, ObservedInstance, ObservedNetworkInterface  # noqa: E402
from lbcp.reconcile.plan import plan  # noqa: E402
from lbcp.reconcile.ports import ComputePort, EntryPort  # noqa: E402
from lbcp.reconcile.run import Reconciler  # noqa: E402
from lbcp.reconcile.snapshot import observe  # noqa: E402

RECORD_PAGE = 100  # Reconciler._all_records
BATCH_GET = 100
DYNAMODB_PAGE_BYTES = 1024 * 1024
# A keys-only index entry of an LBVM: the table's and the index's keys (about 150 bytes, as lbcp.dal.lbvms says).
INDEX_KEY_BYTES = 150
EC2_PAGE = 1000
ELB_PAGE = 400
ROUTE53_PAGE = 300
SECURITY_GROUP_PAGE = 1000
ENTRY_OPERATIONS = ("elbv2:", "route53:", "ec2:DescribeSecurityGroups")


def pages(items: int, size: int) -> int:
    """A listing's calls: one page at least (an empty answer is a call too)."""
    return max(1, math.ceil(items / size))


@dataclass
class Calls:
    counts: Counter[str]
    rows: int = 0  # items the listings returned (what the tick had to look at)

    entry_rows: int = 0  # of those, the entry's account-wide listings

    def add(self, operation: str, calls: int, rows: int = 0) -> None:
        self.counts[operation] += calls
        self.rows += rows
        if operation.startswith(ENTRY_OPERATIONS):
            self.entry_rows += rows

    def reset(self) -> None:
        self.counts, self.rows, self.entry_rows = Counter(), 0, 0


@dataclass(frozen=True)
class Page:
    items: list[LoadBalancerRecord]
    next_token: str | None


class LoadBalancers:
    def __init__(self, records: list[LoadBalancerRecord], calls: Calls) -> None:
        self._records = sorted(records, key=lambda r: r.id)
        self._by_id = {r.id: r for r in records}
        self._calls = calls

    def get(self, lb_id: str) -> LoadBalancerRecord | None:
        self._calls.add("dynamodb:GetItem", 1, 1)
        return self._by_id.get(lb_id)

    def list(self, limit: int, token: str | None) -> Page:
        start = int(token or 0)
        items = self._records[start : start + limit]
        self._calls.add("dynamodb:Query(records)", 1, len(items))
        following = start + limit
        return Page(items, str(following) if following < len(self._records) else None)

    def get_many(self, lb_ids: Collection[str]) -> Sequence[LoadBalancerRecord]:
        found = [self._by_id[i] for i in sorted(set(lb_ids)) if i in self._by_id]
        self._calls.add("dynamodb:BatchGetItem(records)", math.ceil(len(set(lb_ids)) / BATCH_GET), len(found))
        return found


class Lbvms:
    """``LbvmRepository``'s calls: the keys-only index's key pages (of the ids' key range, when given), then
    the records 100 a call, and ``byKind``'s query for records not moved yet (one empty page)."""

    def __init__(self, lbvms: dict[str, list[Lbvm]], calls: Calls) -> None:
        self._lbvms = lbvms
        self._calls = calls
        self._ordered = sorted(lbvms)

    def list_all(self, load_balancer_ids: Collection[str] | None = None) -> Iterator[Lbvm]:
        spanned = (
            self._ordered
            if load_balancer_ids is None
            else [i for i in self._ordered if min(load_balancer_ids) <= i <= max(load_balancer_ids)]
        )
        keys = sum(len(self._lbvms[i]) for i in spanned)
        wanted = self._ordered if load_balancer_ids is None else sorted(set(load_balancer_ids) & set(self._lbvms))
        found = [lbvm for i in wanted for lbvm in self._lbvms[i]]
        self._calls.add("dynamodb:Query(lbvm keys)", pages(keys, DYNAMODB_PAGE_BYTES // INDEX_KEY_BYTES), keys)
        self._calls.add("dynamodb:BatchGetItem(lbvms)", math.ceil(len(found) / BATCH_GET), len(found))
        self._calls.add("dynamodb:Query(lbvms, byKind)", 1)
        return iter(found)

    def list_for(self, load_balancer_id: str) -> list[Lbvm]:
        found = self._lbvms.get(load_balancer_id, [])
        self._calls.add("dynamodb:Query(lbvms of one)", 1, len(found))
        return list(found)


class Retries:
    """A healthy fleet: no streaks."""

    def __init__(self, calls: Calls) -> None:
        self._calls = calls

    def list_all(self) -> Iterator[RetryStreak]:
        self._calls.add("dynamodb:Query(streaks)", 1)
        return iter(())

    def get_many(self, load_balancer_ids: Collection[str]) -> dict[str, RetryStreak]:
        self._calls.add("dynamodb:BatchGetItem(streaks)", math.ceil(len(set(load_balancer_ids)) / BATCH_GET))
        return {}


class Compute:
    def __init__(self, inner: Any, calls: Calls) -> None:
        self._instances, self._interfaces = inner.observe()
        self._by_lb_instances: dict[str, list[ObservedInstance]] = defaultdict(list)
        self._by_lb_interfaces: dict[str, list[ObservedNetworkInterface]] = defaultdict(list)
        for instance in self._instances:
            self._by_lb_instances[instance.load_balancer_id].append(instance)
        for interface in self._interfaces:
            self._by_lb_interfaces[interface.load_balancer_id].append(interface)
        self._calls = calls

    def observe(
        self, load_balancer_ids: Collection[str] | None = None
    ) -> tuple[list[ObservedInstance], list[ObservedNetworkInterface]]:
        if load_balancer_ids is None:
            self._calls.add("ec2:DescribeInstances", pages(len(self._instances), EC2_PAGE), len(self._instances))
            self._calls.add(
                "ec2:DescribeNetworkInterfaces", pages(len(self._interfaces), EC2_PAGE), len(self._interfaces)
            )
            return list(self._instances), list(self._interfaces)
        ordered = sorted(set(load_balancer_ids))
        instances: list[ObservedInstance] = []
        interfaces: list[ObservedNetworkInterface] = []
        # Filtered server-side: each chunk of 200 ids costs the pages of what it matches.
        for start in range(0, len(ordered), FILTER_VALUES_LIMIT):
            chunk = ordered[start : start + FILTER_VALUES_LIMIT]
            found_instances = [i for lb_id in chunk for i in self._by_lb_instances.get(lb_id, [])]
            found_interfaces = [n for lb_id in chunk for n in self._by_lb_interfaces.get(lb_id, [])]
            self._calls.add("ec2:DescribeInstances", pages(len(found_instances), EC2_PAGE), len(found_instances))
            self._calls.add(
                "ec2:DescribeNetworkInterfaces", pages(len(found_interfaces), EC2_PAGE), len(found_interfaces)
            )
            instances += found_instances
            interfaces += found_interfaces
        return instances, interfaces


class Entry:
    """``EntryAdapter.observe_entries``' calls: account-wide listings, then the verified ones' target health."""

    def __init__(self, inner: Any, fleet_size: int, calls: Calls) -> None:
        self._inner = inner
        self._fleet = fleet_size
        self._calls = calls

    def observe(
        self, records: Sequence[LoadBalancerRecord], verify: Iterable[str], *, scoped: bool = False
    ) -> dict[str, EntryView]:
        if not records:
            return {}
        listeners = 1  # plan_scale's spec: one listener, one target group per load balancer
        if scoped:
            # By name: the security groups by owner tag (200 a filter), then per load balancer its NLB,
            # the target groups behind it and its name's records.
            k = len(records)
            self._calls.add("ec2:DescribeSecurityGroups", math.ceil(k / FILTER_VALUES_LIMIT), k)
            self._calls.add("elbv2:DescribeLoadBalancers", k, k)
            self._calls.add("elbv2:DescribeTargetGroups", k, k * listeners)
            self._calls.add("route53:ListResourceRecordSets", k, k)
        else:
            n = self._fleet
            self._calls.add("ec2:DescribeSecurityGroups", pages(n, SECURITY_GROUP_PAGE), n)
            self._calls.add("elbv2:DescribeLoadBalancers", pages(n, ELB_PAGE), n)
            self._calls.add("elbv2:DescribeTargetGroups", pages(n * listeners, ELB_PAGE), n * listeners)
            self._calls.add("route53:ListResourceRecordSets", pages(n, ROUTE53_PAGE), n)  # one alias per one
        verified = set(verify) & {r.id for r in records}
        if verified:
            self._calls.add("elbv2:DescribeTargetHealth", len(verified) * listeners, len(verified) * 3)
            self._calls.add("elbv2:DescribeListeners", len(verified), len(verified) * listeners)
        return cast(dict[str, EntryView], self._inner.observe(records, verify, scoped=scoped))


class Queue:
    def __init__(self, calls: Calls) -> None:
        self.messages: list[WorkMessage] = []
        self._calls = calls

    def send(self, messages: Sequence[WorkMessage]) -> list[str]:
        self._calls.add("sqs:SendMessageBatch", math.ceil(len(messages) / SEND_BATCH))
        self.messages += messages
        return []


class NoExecutor:
    """A converged fleet plans no jobs: the executor is never called (it would raise here)."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the executor was called ({name}) in a converged fleet")


@dataclass
class Ports:
    load_balancers: LoadBalancers
    lbvms: Lbvms
    compute: Compute
    entry: Entry
    retries: Retries


def reconciler(size: int, calls: Calls) -> tuple[Reconciler, Ports]:
    records, lbvms, compute, entry = fleet(size)
    ports = Ports(
        LoadBalancers(records, calls),
        Lbvms(lbvms, calls),
        Compute(compute, calls),
        Entry(entry, size, calls),
        Retries(calls),
    )
    subject = Reconciler(
        load_balancers=cast(Any, ports.load_balancers),
        lbvms=cast(Any, ports.lbvms),
        compute=cast(ComputePort, ports.compute),
        entry=cast(EntryPort, ports.entry),
        executor=cast(Executor, NoExecutor()),
        leases=cast(Any, NoExecutor()),
        clock=lambda: NOW,
        retries=cast(Any, ports.retries),
        tick_period=timedelta(minutes=1),
    )
    return subject, ports


def unscoped_spec_change(subject: Reconciler, ports: Ports, target: str) -> None:
    """What ``tick(only={target})`` read before it was scoped: every record, streak and LBVM, EC2 by product tag."""
    records = [r for r in subject.list_records() if r.id == target]
    streaks = subject.streaks()
    lbvms = [lbvm for lbvm in ports.lbvms.list_all() if lbvm.load_balancer_id == target]
    view = observe(cast(ComputePort, ports.compute), cast(EntryPort, ports.entry), records, [target], whole_fleet=True)
    plan(records[0], lbvms, view[target], NOW, rng=random.Random(1), retry=streaks.get(target))


def _cpu(action: Any) -> tuple[Any, float]:
    started = time.process_time()
    result = action()
    return result, (time.process_time() - started) * 1000


def _entry_calls(counts: dict[str, int]) -> int:
    return sum(n for op, n in counts.items() if op.startswith(ENTRY_OPERATIONS))


def _total(counts: Counter[str]) -> int:
    return sum(counts.values())


def measure(size: int, shard_size: int) -> dict[str, Any]:
    calls = Calls(Counter())
    subject, ports = reconciler(size, calls)
    # The bench holds the whole fleet in one process (a worker holds one shard): keep the collector from
    # walking it during the measured ticks, or a shard's CPU would include a full collection of 10,000 records.
    gc.collect()
    gc.freeze()
    queue = Queue(calls)
    report, dispatch_ms = _cpu(lambda: dispatch(subject, cast(Any, queue), shard_size=shard_size))
    dispatch_calls = _total(calls.counts)
    shard_calls: list[Counter[str]] = []
    shard_ms: list[float] = []
    for message in queue.messages:
        calls.reset()
        ids = parse_work(message.body)
        entries = shipped_entries(message.body, now=NOW, period=subject.tick_period)
        assert entries is not None and set(entries) == ids  # every shard carries its views
        tick, ms = _cpu(lambda ids=ids, entries=entries: subject.tick(ids, entries=entries))
        assert tick.load_balancers == len(ids) and not tick.acted and not tick.failures
        shard_calls.append(calls.counts)
        shard_ms.append(ms)
    worst = max(shard_calls, key=_total)
    entry_calls = _entry_calls(worst)
    # A spec change of the last load balancer: the stream's tick, scoped.
    target = sorted(parse_work(queue.messages[-1].body))[-1]
    calls.reset()
    _, spec_ms = _cpu(lambda: subject.tick({target}, urgent={target}))
    spec_calls, spec_rows, spec_entry_rows = dict(calls.counts), calls.rows, calls.entry_rows
    calls.reset()
    _, full_ms = _cpu(lambda: unscoped_spec_change(subject, ports, target))
    gc.unfreeze()
    return {
        "loadBalancers": size,
        "shards": report.shards,
        "dispatchCalls": dispatch_calls,
        "dispatchMs": round(dispatch_ms, 1),
        "callsPerShardMax": _total(worst),
        "entryCallsPerShardMax": entry_calls,
        "callsAllShards": sum(_total(c) for c in shard_calls),
        "cpuMsPerShardMax": round(max(shard_ms), 1),
        "cpuMsPerShardMedian": round(statistics.median(shard_ms), 1),
        "cpuMsAllShards": round(sum(shard_ms), 1),
        "specChangeRows": spec_rows - spec_entry_rows,
        "specChangeEntryRows": spec_entry_rows,
        "specChangeCalls": sum(spec_calls.values()),
        "specChangeEntryCalls": _entry_calls(spec_calls),
        "specChangeMs": round(spec_ms, 2),
        "unscopedRows": calls.rows - calls.entry_rows,
        "unscopedCalls": _total(calls.counts),
        "unscopedMs": round(full_ms, 1),
        "worstShardCalls": dict(sorted(worst.items())),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--shard-size", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [measure(size, args.shard_size) for size in args.sizes]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    columns = (
        ("LBs", "loadBalancers"),
        ("shards", "shards"),
        ("dispatch calls", "dispatchCalls"),
        ("dispatch ms", "dispatchMs"),
        ("calls/shard", "callsPerShardMax"),
        ("(entry)", "entryCallsPerShardMax"),
        ("calls, all shards", "callsAllShards"),
        ("cpu ms/shard max", "cpuMsPerShardMax"),
        ("median", "cpuMsPerShardMedian"),
        ("spec rows", "specChangeRows"),
        ("(+entry rows)", "specChangeEntryRows"),
        ("spec calls", "specChangeCalls"),
        ("(entry)", "specChangeEntryCalls"),
        ("spec ms", "specChangeMs"),
        ("unscoped rows", "unscopedRows"),
        ("unscoped calls", "unscopedCalls"),
        ("unscoped ms", "unscopedMs"),
    )
    print(" | ".join(title for title, _ in columns))
    for r in results:
        print(" | ".join(f"{r[key]:>{len(title)}}" for title, key in columns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
