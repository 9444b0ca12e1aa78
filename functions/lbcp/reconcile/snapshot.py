"""Taking the snapshot: the observed world of some load balancers, from a fixed number of listings.

One place for it, so that the reconciler's tick and the plan preview
(``GET /v1/load-balancers/{id}/plan``) plan from the same observation. Reads only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from lbcp.models.resource import LoadBalancerRecord
from lbcp.reconcile.observed import EntryView, LoadBalancerView
from lbcp.reconcile.ports import ComputePort, EntryPort


def observe(
    compute: ComputePort, entry: EntryPort, records: Sequence[LoadBalancerRecord], verify: Iterable[str]
) -> dict[str, LoadBalancerView]:
    """Per load balancer, its instances, interfaces and entry; registrations only for those in ``verify``."""
    instances, interfaces = compute.observe()
    entries = entry.observe(records, verify)
    return {
        record.id: LoadBalancerView(
            instances=tuple(i for i in instances if i.load_balancer_id == record.id),
            network_interfaces=tuple(n for n in interfaces if n.load_balancer_id == record.id),
            entry=entries.get(record.id, EntryView(ready=False)),
        )
        for record in records
    }
