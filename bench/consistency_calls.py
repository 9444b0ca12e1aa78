"""AWS calls per consistency-checker run at 1, 10 and 100 load balancers, and its cost per month.

For load balancers of 3 LBVMs each in pool mode (security group, NLB with 2
listeners, 2 target groups, DNS alias), against moto in-process: one settling
run, then one measured run, counting every AWS call by service and operation
(the reconcile bench's counter). The listings are paginated and per-NLB reads
are capped per run (``AwsInventory.detail_budget``), so the count grows with
pagination only (ELBv2 DescribeTags takes 20 ARNs per call: its page).

    .venv/bin/python bench/consistency_calls.py [--sizes 1 10 100]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for part in ("functions", "local", "."):
    sys.path.insert(0, str(ROOT / part))

from bench.reconcile_calls import PRICE, counting_client  # noqa: E402

RUNS_PER_MONTH = 30 * 24 * 4  # every 15 minutes
PRICE_ALARM_MONTH = 0.10  # standard-resolution alarm


def measure(size: int) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from lbcp.consistency.wiring import build_checker
    from lbcp.dal.lbvms import LbvmRepository
    from lbcp.dal.repository import LoadBalancerRepository
    from lbcp.dal.schema import create_table
    from lbcp.entry.adapter import EntryAdapter
    from lbcp.models.events import Event
    from lbcp.models.lbvm import Lbvm
    from lbcp.models.resource import LoadBalancerRecord
    from lbcp.service import initial_status
    from lbcp.settings import Settings
    from lbcp.validation import parse_spec
    from lbcp_local.seed import example_spec, seed_account

    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled",
    )  # fmt: skip
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        dynamodb, ec2 = session.client("dynamodb"), session.client("ec2")
        create_table(dynamodb, "bench")
        account = seed_account(ec2, session.client("acm"), "us-east-1")
        zone_id = (
            session.client("route53")
            .create_hosted_zone(Name="lb.bench.internal", CallerReference="b")["HostedZone"]["Id"]
            .split("/")[-1]
        )
        now = datetime.now(UTC)
        load_balancers, lbvms = LoadBalancerRepository(dynamodb, "bench"), LbvmRepository(dynamodb, "bench")
        entry = EntryAdapter(
            ec2=ec2, elbv2=session.client("elbv2"), route53=session.client("route53"), hosted_zone_id=zone_id,
            dns_domain="lb.bench.internal",
        )  # fmt: skip
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        for index in range(size):
            spec = parse_spec({**example_spec(account, name=f"lb-{index:03d}x"), "capacity": {"min": 3, "max": 6}})
            lb_id = f"lb-{index:017x}"
            load_balancers.create(
                LoadBalancerRecord(
                    id=lb_id, generation=1, spec=spec, status=initial_status(spec), created_at=now,
                    updated_at=now, desired_capacity=3,
                ),
                Event(time=now, type="Normal", reason="Created", message="bench"),
            )  # fmt: skip
            view = entry.ensure_entry(spec, lb_id)
            for slot in range(3):
                lbvm_id = f"lbvm-{index:06x}{slot:06x}"
                tags = [
                    {"Key": "lbcp:product", "Value": "lbcp"},
                    {"Key": "lbcp:load-balancer-id", "Value": lb_id},
                    {"Key": "lbcp:lbvm-id", "Value": lbvm_id},
                ]
                instance = ec2.run_instances(
                    ImageId=image, InstanceType="c6i.large", MinCount=1, MaxCount=1,
                    SubnetId=account.subnet_ids[slot % 2], SecurityGroupIds=[view.security_group_id or ""],
                    TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
                )["Instances"][0]  # fmt: skip
                lbvms.create(
                    Lbvm(
                        lbvm_id=lbvm_id, load_balancer_id=lb_id, subnet_id=account.subnet_ids[slot % 2],
                        state="Routable", state_since=now - timedelta(minutes=10), version=1,
                        launched_generation=1, launch_reason="bench", created_at=now - timedelta(minutes=11),
                        instance_id=instance["InstanceId"],
                    )
                )  # fmt: skip
        counts: Counter[tuple[str, str]] = Counter()
        settings = Settings(
            table_name="bench", event_retention_days=30, idempotency_ttl_seconds=86400,
            lifecycle_state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:lifecycle",
            drain_state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:drain",
            hosted_zone_id=zone_id, dns_domain="lb.bench.internal",
        )  # fmt: skip
        session.client("stepfunctions").create_state_machine(
            name="lifecycle", definition='{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}',
            roleArn="arn:aws:iam::123456789012:role/bench",
        )  # fmt: skip
        session.client("stepfunctions").create_state_machine(
            name="drain", definition='{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}',
            roleArn="arn:aws:iam::123456789012:role/bench",
        )  # fmt: skip
        checker = build_checker(settings, counting_client(session.client, counts), clock=lambda: now)
        checker.run()
        counts.clear()
        started = time.perf_counter()
        report = checker.run()
        elapsed = time.perf_counter() - started
        stored = len(
            dynamodb.get_item(TableName="bench", Key={"pk": {"S": "CONSISTENCY"}, "sk": {"S": "REPORT"}})["Item"][
                "report"
            ]["S"]
        )
    return {
        "loadBalancers": size,
        "findings": len(report.findings),
        "calls": sum(counts.values()),
        "callsByOperation": {f"{s}:{op}": n for (s, op), n in sorted(counts.items())},
        "runSeconds": round(elapsed, 3),
        "reportBytes": stored,
    }


def monthly_cost(run: dict[str, Any]) -> dict[str, float]:
    """US dollars per month for the whole account (not per load balancer): the checker is one function."""
    size = run["loadBalancers"]
    # Lambda: one invocation per run at 1 GB for the run's duration (moto's time; AWS's is of the same order).
    lambda_cost = RUNS_PER_MONTH * (PRICE["lambda_request"] + run["runSeconds"] * 1.0 * PRICE["lambda_gb_second_arm"])
    # DynamoDB: the two listings read ~2 KB per load balancer and ~1 KB per LBVM (eventually consistent,
    # half a unit per 4 KB), the report is read (consistent) and written once (1 unit per KB).
    read_units = (size * (2 + 3 * 1) / 4) * 0.5 + run["reportBytes"] / 4096 + 1
    write_units = max(1, run["reportBytes"] / 1024)
    dynamodb = RUNS_PER_MONTH * (read_units * PRICE["dynamodb_read_unit"] + write_units * PRICE["dynamodb_write_unit"])
    # CloudWatch: one PutMetricData per run, 4 custom metrics, 2 alarms. EC2, ELBv2, Route 53 and
    # Step Functions List/Describe calls are not billed.
    cloudwatch = (
        RUNS_PER_MONTH * PRICE["cloudwatch_put_request"] + 4 * PRICE["cloudwatch_metric_month"] + 2 * PRICE_ALARM_MONTH
    )
    total = lambda_cost + dynamodb + cloudwatch
    return {
        "lambda": round(lambda_cost, 3),
        "dynamodb": round(dynamodb, 3),
        "cloudwatch": round(cloudwatch, 3),
        "total": round(total, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [{**measure(size), "costPerMonth": None} for size in args.sizes]
    for result in results:
        result["costPerMonth"] = monthly_cost(result)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'LBs':>5} {'calls':>6} {'run s':>7} {'$/month':>8}  calls by operation")
    for result in results:
        detail = ", ".join(f"{op}={n}" for op, n in result["callsByOperation"].items())
        total = result["costPerMonth"]["total"]
        print(f"{result['loadBalancers']:>5} {result['calls']:>6} {result['runSeconds']:>7} {total:>8}  {detail}")
    print("cost per month (whole account, every 15 minutes):")
    for result in results:
        print(f"  {result['loadBalancers']:>4} LBs: {result['costPerMonth']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
