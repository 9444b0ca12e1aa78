"""lbctl rollout status|pause|resume|abort|history: a load balancer's rollouts."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from lbctl.client import lb_path
from lbctl.errors import EXIT_OK
from lbctl.output import NONE, fields, table, timestamp

EPILOG = (
    "A rollout moves the fleet onto a new launch template (instance type, image, proxy): a canary\n"
    "first, a bake, then the rest within maxSurge/maxUnavailable; on failure it rolls back and the\n"
    "new template is rejected until the spec asks for something else.\n\n"
    "  lbctl rollout status web      the current or last rollout: state, step, progress, why it waits;\n"
    "                                and a newer Amazon Linux 2023 image than the fleet runs, if any\n"
    "  lbctl rollout pause web       hold it where it is (the fleet keeps serving)\n"
    "  lbctl rollout resume web\n"
    "  lbctl rollout abort web       roll back now\n"
    "  lbctl rollout history web     past rollouts with their outcome\n\n"
    "pause, resume and abort are idempotent; with no rollout in progress they exit 5 (HTTP 409)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["status", "pause", "resume", "abort", "history"])
    parser.add_argument("ref", metavar="REF")
    parser.add_argument("--limit", type=int, default=20, metavar="N", help="history: how many (default 20)")


def run(client: Any, args: argparse.Namespace, as_json: bool) -> int:
    if args.action == "history":
        page = client.json("GET", lb_path(args.ref, "rollouts"), query={"limit": args.limit})
        if as_json:
            _print(page)
            return EXIT_OK
        items = [item for item in page.get("items") or [] if isinstance(item, dict)]
        if not items:
            _out("No rollouts.")
            return EXIT_OK
        _out(
            table(
                ["ID", "STARTED", "STATE", "FROM", "TO", "PROGRESS", "OUTCOME"],
                [
                    [
                        item.get("id"),
                        timestamp(item.get("startedAt")),
                        f"{item.get('state')}{' (rejected)' if item.get('rejected') else ''}",
                        _template(item.get("fromTemplate")),
                        _template(item.get("toTemplate")),
                        item.get("progress"),
                        item.get("message"),
                    ]
                    for item in items
                ],
            )
        )
        return EXIT_OK
    if args.action == "status":
        lb = client.json("GET", lb_path(args.ref))
        rollout = (lb.get("status") or {}).get("rollout")
        newer = (lb.get("status") or {}).get("newerImage")
        if as_json:
            _print(rollout)
            return EXIT_OK
        if not rollout:
            _out("No rollout.")
        else:
            _out(describe(rollout))
        if isinstance(newer, dict):
            _out(fields([("Newer image", newer.get("message"))]))
        return EXIT_OK
    else:
        rollout = client.json("POST", lb_path(args.ref, "rollout", args.action))
        if as_json:
            _print(rollout)
            return EXIT_OK
    _out(describe(rollout))
    return EXIT_OK


def describe(rollout: dict[str, Any]) -> str:
    state = rollout.get("state") or NONE
    if rollout.get("step"):
        state += f" (step {rollout['step']})"
    if rollout.get("rejected"):
        state += f"; {_template(rollout.get('toTemplate'))} is rejected"
    return fields(
        [
            ("Rollout", rollout.get("id")),
            ("State", state),
            ("From", _template(rollout.get("fromTemplate"))),
            ("To", _template(rollout.get("toTemplate"))),
            ("Progress", rollout.get("progress")),
            ("Canary", rollout.get("canary")),
            ("Launched", f"{len(rollout.get('launched') or [])} ({len(rollout.get('failed') or [])} failed)"),
            ("Waiting for", rollout.get("waitingFor") or NONE),
            ("Started", timestamp(rollout.get("startedAt"))),
            ("Finished", timestamp(rollout.get("finishedAt")) if rollout.get("finishedAt") else NONE),
            ("Message", rollout.get("message")),
        ]
    )


def _template(template: Any) -> str:
    if not isinstance(template, dict):
        return NONE
    image = template.get("imageId") or "the latest Amazon Linux 2023"
    if not template.get("imageId") and template.get("latestImage"):
        image += f" ({template['latestImage']})"  # followed (rollout.followLatestImage): the AMI it resolved to
    return f"{template.get('instanceType')} from {image} running {template.get('proxy')}"


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _print(document: Any) -> None:
    _out(json.dumps(document, indent=2, ensure_ascii=False))
