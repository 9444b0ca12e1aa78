"""AWS API calls per reconcile tick, and the control plane's cost per load balancer per month.

For 1, 10 and 100 load balancers of 3 Routable LBVMs each, in steady state
(entry built, LBVMs registered, heartbeats fresh, status written), against
moto in-process: one settling tick, then one measured tick, counting every
AWS call the reconciler makes by service and operation. Writes at steady
state must be 0. Then the scoped ticks by the same adapters: a work-queue
shard (the first 50 load balancers, with the entry views its message carries)
and one load balancer (a spec change's tick), by operation (``shard_scale.py`` models them up to 10,000).

The cost model prices the counted calls and one measured steady hour of the
other paths (``steady_hour.py``: heartbeats, the metrics samples they carry,
the scaler) with AWS list prices (us-east-1, November 2026; constants below),
per load balancer of 3 LBVMs. DynamoDB is priced by the units the items'
sizes cost (``capacity_units.py``), index writes included.

    .venv/bin/python bench/reconcile_calls.py [--sizes 1 10 100]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for part in ("functions", "local", "."):
    sys.path.insert(0, str(ROOT / part))

from bench import steady_hour  # noqa: E402
from bench.steady_hour import SteadyHour  # noqa: E402
from lbcp.reconcile.dispatch import DEFAULT_SHARD_SIZE  # noqa: E402

READ_PREFIXES = ("Describe", "List", "Get", "Query", "Scan", "BatchGet")
MINUTES_PER_MONTH = 30 * 24 * 60

# --- AWS list prices, us-east-1 ----------------------------------------------------------
PRICE = {
    "lambda_request": 0.20 / 1e6,  # per invocation
    "lambda_gb_second_arm": 0.0000133334,  # per GB-second, arm64
    "apigw_http_request": 1.00 / 1e6,  # HTTP API, first 300M/month
    "dynamodb_write_unit": 1.25 / 1e6,  # on-demand, per write request unit (1 KB)
    "dynamodb_read_unit": 0.25 / 1e6,  # on-demand, per read request unit (4 KB strongly consistent)
    "cloudwatch_put_request": 0.01 / 1000,  # PutMetricData requests
    "cloudwatch_metric_month": 0.30,  # per custom metric per month (first 10,000)
    "cloudwatch_get_metric_data": 0.01 / 1000,  # per metric requested by GetMetricData
    "sfn_transition": 0.025 / 1000,  # standard workflows
    "sqs_fifo_request": 0.50 / 1e6,  # per request (64 KB chunk), FIFO queues
}


def counting_client(factory: Callable[[str], Any], counts: Counter[tuple[str, str]]) -> Callable[[str], Any]:
    def make(service: str) -> Any:
        client = factory(service)

        def count(**kwargs: Any) -> None:
            model = kwargs["model"]
            counts[(service, model.name)] += 1

        client.meta.events.register("before-call.*.*", count)
        return client

    return make


def scoped_calls(reconciler: Any, counts: Counter[tuple[str, str]]) -> dict[str, Any]:
    """The calls of a work-queue shard's tick (the first 50, as the dispatcher groups them, with the entry
    views the dispatcher sends it) and of one load balancer's (a spec change), by the real adapters;
    ``counts`` is left as it was."""
    kept = Counter(counts)
    records = reconciler.list_records()
    ids = sorted(record.id for record in records)
    shipped = reconciler.observe_entries(records, every=ids, now=reconciler.now())  # the dispatcher's, not counted
    scoped: dict[str, Any] = {}
    for label, only in (("shard", ids[:DEFAULT_SHARD_SIZE]), ("one", ids[-1:])):
        counts.clear()
        started = time.perf_counter()
        reconciler.tick(set(only), entries=shipped if label == "shard" else None)
        scoped[f"{label}Seconds"] = round(time.perf_counter() - started, 3)
        scoped[label] = {f"{s}:{op}": n for (s, op), n in sorted(counts.items())}
    counts.clear()
    counts.update(kept)
    return scoped


def steady_state(size: int) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from lbcp.dal.lbvms import LbvmRepository
    from lbcp.dal.repository import LoadBalancerRepository
    from lbcp.dal.schema import create_table
    from lbcp.entry.adapter import EntryAdapter
    from lbcp.models.lbvm import Lbvm
    from lbcp.models.resource import LoadBalancerRecord
    from lbcp.reconcile.wiring import build_reconciler
    from lbcp.service import initial_status
    from lbcp.settings import Settings
    from lbcp.validation import parse_spec
    from lbcp_local.seed import example_spec, seed_account

    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled",
    )
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        dynamodb, ec2 = session.client("dynamodb"), session.client("ec2")
        create_table(dynamodb, "bench")
        account = seed_account(ec2, session.client("acm"), "us-east-1")
        zone = session.client("route53").create_hosted_zone(Name="lb.bench.internal", CallerReference="bench")
        zone_id = zone["HostedZone"]["Id"].split("/")[-1]
        now = datetime.now(UTC)
        load_balancers = LoadBalancerRepository(dynamodb, "bench")
        lbvms = LbvmRepository(dynamodb, "bench")
        entry = EntryAdapter(
            ec2=ec2,
            elbv2=session.client("elbv2"),
            route53=session.client("route53"),
            hosted_zone_id=zone_id,
            dns_domain="lb.bench.internal",
        )
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        for index in range(size):
            spec = parse_spec({**example_spec(account, name=f"lb-{index:03d}x"), "capacity": {"min": 3, "max": 6}})
            lb_id = f"lb-{index:017x}"
            record = LoadBalancerRecord(
                id=lb_id,
                generation=1,
                spec=spec,
                status=initial_status(spec),
                created_at=now,
                updated_at=now,
                desired_capacity=3,
            )
            from lbcp.models.events import Event

            load_balancers.create(record, Event(time=now, type="Normal", reason="Created", message="bench"))
            view = entry.ensure_entry(spec, lb_id)
            for slot in range(3):
                subnet = account.subnet_ids[slot % 2]
                lbvm_id = f"lbvm-{index:06x}{slot:06x}"
                tags = [
                    {"Key": "lbcp:product", "Value": "lbcp"},
                    {"Key": "lbcp:load-balancer-id", "Value": lb_id},
                    {"Key": "lbcp:lbvm-id", "Value": lbvm_id},
                ]
                instance = ec2.run_instances(
                    ImageId=image,
                    InstanceType="c6i.large",
                    MinCount=1,
                    MaxCount=1,
                    SubnetId=subnet,
                    SecurityGroupIds=[view.security_group_id or ""],
                    TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
                )["Instances"][0]
                lbvms.create(
                    Lbvm(
                        lbvm_id=lbvm_id,
                        load_balancer_id=lb_id,
                        subnet_id=subnet,
                        availability_zone=account.availability_zones[slot % 2],
                        state="Routable",
                        state_since=now - timedelta(minutes=10),
                        version=1,
                        launched_generation=1,
                        launch_reason="bench",
                        created_at=now - timedelta(minutes=11),
                        execution_arn=f"arn:aws:states:us-east-1:123456789012:execution:lifecycle:{lbvm_id}",
                        instance_id=instance["InstanceId"],
                        private_ip=instance["PrivateIpAddress"],
                        last_heartbeat_at=now,
                        applied_config_version=1,
                        agent_state="ready",
                    )
                )
                entry.register_lbvm(
                    spec,
                    lb_id,
                    lbvm_id=lbvm_id,
                    instance_id=instance["InstanceId"],
                    private_ip=instance["PrivateIpAddress"],
                )
        counts: Counter[tuple[str, str]] = Counter()
        settings = Settings(
            table_name="bench",
            event_retention_days=30,
            idempotency_ttl_seconds=86400,
            lifecycle_state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:lifecycle",
            drain_state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:drain",
            tasks_function_arn="arn:aws:lambda:us-east-1:123456789012:function:tasks",
            hosted_zone_id=zone_id,
            dns_domain="lb.bench.internal",
            agent_endpoint="https://api.example",
        )
        reconciler = build_reconciler(
            settings, counting_client(session.client, counts), clock=lambda: now, rng=random.Random(1)
        )
        settle = reconciler.tick()
        counts.clear()
        started = time.perf_counter()
        measured = reconciler.tick()
        elapsed = time.perf_counter() - started
        scoped = scoped_calls(reconciler, counts)
    reads = {f"{s}:{op}": n for (s, op), n in sorted(counts.items()) if op.startswith(READ_PREFIXES)}
    writes = {f"{s}:{op}": n for (s, op), n in sorted(counts.items()) if not op.startswith(READ_PREFIXES)}
    return {
        "loadBalancers": size,
        "settlingTickActedOn": len(settle.acted),
        "reads": sum(reads.values()),
        "writes": sum(writes.values()),
        "readCalls": reads,
        "writeCalls": writes,
        "acted": len(measured.acted),
        "tickSeconds": round(elapsed, 3),
        "shardSize": min(size, DEFAULT_SHARD_SIZE),
        "shardCalls": scoped["shard"],
        "shardSeconds": scoped["shardSeconds"],
        "oneCalls": scoped["one"],
    }


# The agent endpoint's function: billed duration of one heartbeat (measured on Lambda: 15-25 ms
# warm) at its memory size (stacks/functions.py DEFAULT_MEMORY_MB).
HEARTBEAT_BILLED_SECONDS = 0.020
AGENT_FUNCTION_GB = 0.5
# One EMF line per LBVM sample (the heartbeat handler's, about 380 bytes) into CloudWatch Logs.
EMF_LINE_BYTES = 400
LOG_INGESTION_PER_GB = 0.50
# Custom series the agents' samples make: cpu, memory, active connections by LoadBalancerId.
AGENT_SERIES_PER_LOAD_BALANCER = 3
HOURS_PER_MONTH = MINUTES_PER_MONTH / 60
# The worker's SQS event source long-polls (20 s) the queue with a few pollers while it is empty: an
# assumption of 5 pollers, 3 polls a minute each (Lambda does not publish its poller count).
WORK_QUEUE_IDLE_POLLS_PER_MINUTE = 15


def monthly_cost_per_load_balancer(tick: dict[str, Any], hour: SteadyHour) -> dict[str, float]:
    """Steady state, per load balancer of 3 LBVMs over 2 subnets, in US dollars per month.

    ``hour`` is one measured steady hour (``steady_hour.py``: the real heartbeat handler and scaler on
    moto, every DynamoDB unit sized from the items): heartbeats reach the agent endpoint, a Lambda
    function URL (no API Gateway fee); SendTaskHeartbeat, which keeps liveness, is not billed.
    """
    month = HOURS_PER_MONTH
    beats = hour.heartbeats * month
    heartbeat = (
        beats * (PRICE["lambda_request"] + HEARTBEAT_BILLED_SECONDS * AGENT_FUNCTION_GB * PRICE["lambda_gb_second_arm"])
        + hour.heartbeat_read_units * month * PRICE["dynamodb_read_unit"]
        + (hour.heartbeat_write_units + hour.heartbeat_index_write_units) * month * PRICE["dynamodb_write_unit"]
    )
    # The samples ride on heartbeats and leave the handler as EMF: no PutMetricData request.
    metrics = (
        AGENT_SERIES_PER_LOAD_BALANCER * PRICE["cloudwatch_metric_month"]
        + hour.emf_samples * month * EMF_LINE_BYTES / 1e9 * LOG_INGESTION_PER_GB
    )
    # The scaler reads the samples from the LBVM records and its memory item; no GetMetricData.
    scaler = (
        hour.scaler_read_units * month * PRICE["dynamodb_read_unit"]
        + hour.scaler_write_units * month * PRICE["dynamodb_write_unit"]
    )
    # Reconciler, as deployed with its work queue: the reads shared by all load balancers (DynamoDB
    # queries eventually consistent: ~4 KB per LB and per 4 LBVMs -> ~1.5 read units per LB;
    # EC2/ELB/Route53 reads are free); each minute the dispatcher's invocation (billed as the measured
    # full tick: it lists and observes the same, and plans nothing) and one worker invocation per shard
    # (its measured scoped tick) at 1 GB; SQS: the sends (10 shards a call), then per shard one
    # receive and one delete, plus the event source's long polls of the empty queue (assumed here:
    # WORK_QUEUE_IDLE_POLLS_PER_MINUTE, not measured).
    per_minute = MINUTES_PER_MONTH
    size = tick["loadBalancers"]
    shards = math.ceil(size / DEFAULT_SHARD_SIZE)
    invocations = (1 + shards) * PRICE["lambda_request"] + (
        tick["tickSeconds"] + shards * tick["shardSeconds"]
    ) * 1.0 * PRICE["lambda_gb_second_arm"]
    queue = (math.ceil(shards / 10) + 2 * shards + WORK_QUEUE_IDLE_POLLS_PER_MINUTE) * PRICE["sqs_fifo_request"]
    reconcile = (
        per_minute * (1.5 * PRICE["dynamodb_read_unit"] * 0.5 + (invocations + queue) / size)
        + tick["writes"] * per_minute * PRICE["dynamodb_write_unit"] / size
    )
    return {
        "heartbeats": round(heartbeat, 2),
        "agentMetrics": round(metrics, 2),
        "scaler": round(scaler, 2),
        "reconciler": round(reconcile, 4),
        "total": round(heartbeat + metrics + scaler + reconcile, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [steady_state(size) for size in args.sizes]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'LBs':>5} {'reads':>6} {'writes':>7} {'tick s':>7}  reads by operation")
    for result in results:
        detail = ", ".join(f"{name} {count}" for name, count in result["readCalls"].items())
        size, reads, writes = result["loadBalancers"], result["reads"], result["writes"]
        print(f"{size:>5} {reads:>6} {writes:>7} {result['tickSeconds']:>7}  {detail}")
        if result["writes"]:
            print(f"      writes: {result['writeCalls']}")
    print("\nscoped ticks (the work queue's shard, and one load balancer's spec change): calls by operation")
    for result in results:
        for label, key in ((f"shard of {result['shardSize']}", "shardCalls"), ("one", "oneCalls")):
            calls = result[key]
            detail = ", ".join(f"{name} {count}" for name, count in calls.items())
            print(f"{result['loadBalancers']:>5} {label:>12} {sum(calls.values()):>5}  {detail}")
    hour = steady_hour.measure()
    print(
        f"\none load balancer's steady hour (3 LBVMs, heartbeat every {hour.heartbeat_interval_seconds} s): "
        f"{hour.heartbeats} heartbeats, {hour.heartbeat_read_units:g} read + "
        f"{hour.heartbeat_write_units + hour.heartbeat_index_write_units:g} write units "
        f"({hour.heartbeat_index_write_units:g} in indexes); "
        f"{hour.scaler_runs} scaler runs, {hour.scaler_read_units:g} read + {hour.scaler_write_units:g} write units"
    )
    cost = monthly_cost_per_load_balancer(results[-1], hour)
    print(
        f"\ncontrol-plane cost per load balancer (3 LBVMs, 2 subnets) per month at steady state, "
        f"at {results[-1]['loadBalancers']} load balancers:"
    )
    for name, value in cost.items():
        print(f"  {name:<13} ${value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
