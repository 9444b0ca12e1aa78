"""The observed world (the snapshot): what really exists, found by owner tags.

Plain, immutable data: the compute and entry adapters fill it from AWS
once per tick for all load balancers; the planner only reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# EC2 instance states in which the instance still exists and costs money.
INSTANCE_ALIVE_STATES = frozenset({"pending", "running", "stopping", "stopped"})


@dataclass(frozen=True)
class ObservedInstance:
    instance_id: str
    load_balancer_id: str
    lbvm_id: str | None  # from the lbcp:lbvm-id tag
    state: str  # EC2 state name
    subnet_id: str | None
    private_ip: str | None
    launched_at: datetime | None
    image_id: str | None = None  # the AMI it runs (DescribeInstances lists it at no extra cost)

    @property
    def alive(self) -> bool:
        return self.state in INSTANCE_ALIVE_STATES


@dataclass(frozen=True)
class ObservedNetworkInterface:
    network_interface_id: str
    load_balancer_id: str
    lbvm_id: str | None
    status: str  # available | in-use | ...
    attached_instance_id: str | None


@dataclass(frozen=True)
class EntryView:
    """The load balancer's entry as observed.

    ``registered`` and ``dns_records`` are None when they were not verified in
    this tick (verification of registrations is spread over ticks so that the
    number of reads per tick does not grow with the number of load balancers).
    """

    ready: bool  # everything ensure_entry creates exists
    dns_name: str | None = None
    security_group_id: str | None = None  # the LBVMs' security group
    registered_instance_ids: frozenset[str] | None = None
    dns_record_ips: dict[str, str] | None = None  # lbvm id -> address, dns mode
    resources_left: int = 0  # entry resources still present (teardown progress)
    # What differs from the spec in what exists (a hand-added security group rule), in words.
    drift: tuple[str, ...] = ()


@dataclass(frozen=True)
class ObservedAlarm:
    """A CloudWatch alarm a rollout is gated on, as DescribeAlarms reports it."""

    name: str
    state: str  # OK | ALARM | INSUFFICIENT_DATA
    reason: str  # CloudWatch's StateReason
    since: datetime | None = None


@dataclass(frozen=True)
class LoadBalancerView:
    instances: tuple[ObservedInstance, ...] = ()
    network_interfaces: tuple[ObservedNetworkInterface, ...] = ()
    entry: EntryView = field(default_factory=lambda: EntryView(ready=False))
    # The public Amazon Linux 2023 parameter's value now, for the spec's architecture; None when the spec names
    # its image, or the parameter could not be read this tick.
    latest_image: str | None = None
    # The spec's rollout.alarmNames, read while a rollout is active; None when they were not read this tick.
    alarms: tuple[ObservedAlarm, ...] | None = None
