"""``lbctl gc report`` and ``lbctl gc sweep``: the consistency checker's findings and the removal of orphans.

``gc report`` shows the last report (``--refresh`` runs the checker first).
``gc sweep`` is a dry run: it runs the checker and lists what a sweep would
remove, in order. ``gc sweep --apply`` then removes them one by one: each is
re-checked against the live records by the control plane just before its
deletion (and refused if anything claims it), and every outcome is written to
the audit log (``gc audit``).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

from lbctl.errors import EXIT_OK
from lbctl.output import age, table, timestamp

REPORT_PATH = "/v1/consistency"
SWEEP_PATH = "/v1/consistency/sweep"
AUDIT_PATH = "/v1/consistency/audit"

EPILOG = """kinds:
  orphan  carries our owner tags, no record claims it (gc sweep removes these)
  drift   differs from its load balancer's spec (the reconciler repairs it)
  leak    a record with nothing behind it
  stuck   an execution or a deletion running far longer than it can

examples:
  lbctl gc report                 # the last report (the checker runs every 15 minutes)
  lbctl gc report --refresh --json
  lbctl gc sweep                  # what a sweep would remove (nothing is changed)
  lbctl gc sweep --apply          # remove them, one by one, each re-checked first
  lbctl gc audit                  # every deletion and refusal, newest first"""


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def render_report(report: dict[str, Any]) -> str:
    if report.get("generatedAt") is None:
        return (
            "The consistency checker has not run yet (it runs every 15 minutes; lbctl gc report --refresh runs it now)."
        )
    counts = report.get("counts") or {}
    summary = ", ".join(f"{counts.get(kind, 0)} {kind}" for kind in ("orphan", "drift", "leak", "stuck"))
    head = (
        f"Report of {timestamp(report['generatedAt'])} ({age(report['generatedAt'])} ago): {summary} "
        f"({report.get('loadBalancers', 0)} load balancers, {report.get('awsCalls', 0)} AWS calls)"
    )
    findings = [f for f in report.get("findings") or [] if isinstance(f, dict)]
    if not findings:
        return head + "\nNo findings."
    rows = [
        [f.get("kind"), f.get("resourceType"), f.get("resourceId"), f.get("loadBalancerId"),
         f"{age(f.get('firstSeen'))} ({f.get('sightings')}x)", f.get("message")]
        for f in findings
    ]  # fmt: skip
    text = head + "\n" + table(["KIND", "TYPE", "RESOURCE", "LOAD BALANCER", "SEEN", "WHY"], rows)
    if report.get("truncated"):
        text += "\n(more findings than a report keeps: the first ones are shown)"
    return text


def cmd_report(ctx: Any, print_json: Callable[[Any], None]) -> int:
    if ctx.args.refresh:
        report = ctx.client.json("POST", SWEEP_PATH, json_body={"apply": False})["report"]
    else:
        report = ctx.client.json("GET", REPORT_PATH)
    if ctx.json:
        print_json(report)
    else:
        _out(render_report(report))
    return EXIT_OK


def cmd_sweep(ctx: Any, print_json: Callable[[Any], None]) -> int:
    plan = ctx.client.json("POST", SWEEP_PATH, json_body={"apply": False})
    candidates = [c for c in plan.get("candidates") or [] if isinstance(c, dict)]
    if not ctx.args.apply:
        if ctx.json:
            print_json(plan)
            return EXIT_OK
        if not candidates:
            _out("Nothing to sweep: no orphans, no stuck executions.")
            return EXIT_OK
        stops = sum(1 for c in candidates if c.get("action") == "stop")
        removals = len(candidates) - stops
        parts = [f"remove {removals} orphan{'s' if removals != 1 else ''}"] if removals else []
        parts += [f"stop {stops} stuck execution{'s' if stops != 1 else ''}"] if stops else []
        _out(f"A sweep would {' and '.join(parts)} (nothing changed; --apply does it):")
        _out(table(
            ["ACTION", "TYPE", "RESOURCE", "LOAD BALANCER", "WHY"],
            [[c.get("action"), c.get("resourceType"), c.get("resourceId"), c.get("loadBalancerId"), c.get("reason")]
             for c in candidates],
        ))  # fmt: skip
        return EXIT_OK
    results: list[dict[str, Any]] = []
    for candidate in candidates:
        result = ctx.client.json(
            "POST",
            SWEEP_PATH,
            json_body={"apply": True, "resourceType": candidate["resourceType"], "resourceId": candidate["resourceId"]},
            retry="connect",
        )
        results.append(result)
        if not ctx.json:
            what = f"{result.get('resourceType')} {result.get('resourceId')}"
            _out(f"{result.get('outcome'):<8} {what}: {result.get('reason')}")
    if ctx.json:
        print_json({"results": results})
    else:
        outcomes = Counter(str(r.get("outcome")) for r in results)
        _out("Swept: " + (", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) or "nothing to sweep") + ".")
    return EXIT_OK


def cmd_audit(ctx: Any, print_json: Callable[[Any], None]) -> int:
    page = ctx.client.json("GET", AUDIT_PATH, query={"limit": ctx.args.limit})
    if ctx.json:
        print_json(page)
        return EXIT_OK
    items = [e for e in page.get("items") or [] if isinstance(e, dict)]
    if not items:
        _out("The audit log is empty.")
        return EXIT_OK
    _out(table(
        ["TIME", "ACTION", "TYPE", "RESOURCE", "LOAD BALANCER", "ACTOR", "REASON"],
        [[timestamp(e.get("time")), e.get("action"), e.get("resourceType"), e.get("resourceId"),
          e.get("loadBalancerId"), e.get("actor"), e.get("reason")] for e in items],
    ))  # fmt: skip
    return EXIT_OK


def add_arguments(
    gc: argparse.ArgumentParser, common: argparse.ArgumentParser, print_json: Callable[[Any], None]
) -> None:
    commands = gc.add_subparsers(dest="gc_command", metavar="SUBCOMMAND", required=True)

    def sub(name: str, handler: Callable[[Any, Callable[[Any], None]], int], summary: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, parents=[common], help=summary, description=summary)
        parser.set_defaults(handler=lambda ctx: handler(ctx, print_json))
        return parser

    report = sub("report", cmd_report, "Show the consistency checker's last report.")
    report.add_argument("--refresh", action="store_true", help="run the checker now first")
    sweep = sub("sweep", cmd_sweep, "List the orphans a sweep would remove; remove them with --apply.")
    sweep.add_argument("--apply", action="store_true", help="remove them, one by one, each re-checked first")
    audit = sub("audit", cmd_audit, "Show the garbage collector's audit log, newest first.")
    audit.add_argument(
        "--limit", type=int, default=50, choices=range(1, 101), metavar="N", help="1 to 100 (default 50)"
    )
