"""Taking the snapshot: the observed world of some load balancers, from a fixed number of listings.

One place for it, so that the reconciler's tick and the plan preview
(``GET /v1/load-balancers/{id}/plan``) plan from the same observation. Reads only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from lbcp.instance_types import architecture
from lbcp.models.resource import LoadBalancerRecord
from lbcp.reconcile.observed import (
    EntryView,
    LoadBalancerView,
    ObservedAlarm,
    ObservedInstance,
    ObservedNetworkInterface,
)
from lbcp.reconcile.ports import ComputePort, EntryPort


def gated(record: LoadBalancerRecord) -> bool:
    """A rollout that its alarms can fail: active, not on its way back, on a load balancer in service."""
    rollout = record.status.rollout
    return (
        bool(record.spec.rollout.alarm_names)
        and rollout is not None
        and rollout.active
        and rollout.step != "Rollback"
        and record.deletion_requested_at is None
    )


# Up to this many load balancers, a tick for some of them reads their entries by name (about three
# calls each: the NLB, its target groups, the DNS name's records) rather than listing the account's
# security groups, NLBs, target groups and zone records (pages that grow with the fleet: about 100
# calls at 10,000 load balancers). A spec change or an instance event (one, or a few in a stream
# batch) stays flat; a work-queue shard (50) lists, which costs fewer calls until the fleet passes
# about 16,000. None of a load balancer being deleted: its finalizer needs the listing's every leftover.
SCOPED_ENTRY_MAX = 5


def scoped_entry(records: Sequence[LoadBalancerRecord]) -> bool:
    """Whether these load balancers' entries are read by name (``SCOPED_ENTRY_MAX``) rather than listed."""
    return len(records) <= SCOPED_ENTRY_MAX and all(record.deletion_requested_at is None for record in records)


def observe(
    compute: ComputePort,
    entry: EntryPort,
    records: Sequence[LoadBalancerRecord],
    verify: Iterable[str],
    *,
    latest_images: Mapping[str, str] | None = None,
    alarms: Mapping[str, ObservedAlarm] | None = None,
    whole_fleet: bool = False,
    entries: Mapping[str, EntryView] | None = None,
) -> dict[str, LoadBalancerView]:
    """Per load balancer, its instances, interfaces and entry; registrations only for those in ``verify``.

    ``latest_images`` (by architecture) and ``alarms`` (by name; None: they could not be read)
    are read by the caller, which holds those ports; a view without them judges neither.
    ``whole_fleet``: ``records`` are every load balancer (a full tick), so EC2 is listed by the
    product tag alone; otherwise only what carries these load balancers' owner tags is listed,
    and the entries of a few (``scoped_entry``) are read by name, so that observing a few
    costs the same whatever the fleet's size. ``entries``: views observed already (the work-queue
    dispatcher's); only the load balancers without one are observed here.
    """
    instances, interfaces = compute.observe(None if whole_fleet else [record.id for record in records])
    given = entries or {}
    unseen = [record for record in records if record.id not in given]
    observed = entry.observe(unseen, verify, scoped=not whole_fleet and scoped_entry(unseen)) if unseen else {}
    entry_views = {**given, **observed}
    latest = latest_images or {}
    # Handed out in one pass each (not one scan per load balancer: that grew as n^2, a minute at 10,000).
    # Only to the load balancers asked about (a listing by the product tag has every one of them).
    wanted = {record.id for record in records}
    instances_of: dict[str, list[ObservedInstance]] = defaultdict(list)
    for instance in instances:
        if instance.load_balancer_id in wanted:
            instances_of[instance.load_balancer_id].append(instance)
    interfaces_of: dict[str, list[ObservedNetworkInterface]] = defaultdict(list)
    for interface in interfaces:
        if interface.load_balancer_id in wanted:
            interfaces_of[interface.load_balancer_id].append(interface)
    return {
        record.id: LoadBalancerView(
            instances=tuple(instances_of.get(record.id, ())),
            network_interfaces=tuple(interfaces_of.get(record.id, ())),
            entry=entry_views.get(record.id, EntryView(ready=False)),
            latest_image=latest.get(architecture(record.spec.instance.type))
            if record.spec.instance.image_id is None
            else None,
            alarms=None
            if alarms is None or not gated(record)
            else tuple(alarms[name] for name in record.spec.rollout.alarm_names if name in alarms),
        )
        for record in records
    }
