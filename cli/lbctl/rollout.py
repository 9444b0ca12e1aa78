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
    "new template is rejected until the spec asks for something else. A config change that needs no\n"
    "new instances is a config rollout (kind config): the new config version goes to the canary, then,\n"
    "after the bake, to every LBVM; on failure every LBVM is told the previous version again.\n\n"
    "  lbctl rollout status web      the current or last rollout of each kind: state, step, progress,\n"
    "                                why it waits; and a newer Amazon Linux 2023 image, if any\n"
    "  lbctl rollout pause web       hold it where it is (the fleet keeps serving; LBVMs already on a\n"
    "                                new config version keep it, nobody else is told it)\n"
    "  lbctl rollout resume web\n"
    "  lbctl rollout abort web       roll back now\n"
    "  lbctl rollout history web     past rollouts of both kinds with their outcome, newest first\n\n"
    "pause, resume and abort act on the rollout in progress; while a template and a config rollout\n"
    "both are, say which with --kind template|config. They are idempotent; with no rollout (of that\n"
    "kind) in progress, or both and no --kind, they exit 5 (HTTP 409)."
)

_KINDS = ("template", "config")
# The status fields that hold each kind's current or last rollout.
_STATUS_FIELDS = {"template": "rollout", "config": "configRollout"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["status", "pause", "resume", "abort", "history"])
    parser.add_argument("ref", metavar="REF")
    parser.add_argument("--limit", type=int, default=20, metavar="N", help="history: how many (default 20)")
    parser.add_argument(
        "--kind",
        choices=_KINDS,
        help="status: only this kind's rollout; pause, resume, abort: the rollout of this kind (needed only "
        "while both kinds are in progress)",
    )


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
                ["ID", "KIND", "STARTED", "STATE", "FROM", "TO", "PROGRESS", "OUTCOME"],
                [
                    [
                        item.get("id"),
                        _kind(item),
                        timestamp(item.get("startedAt")),
                        f"{item.get('state')}{' (rejected)' if item.get('rejected') else ''}",
                        _source(item),
                        _target(item),
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
        status = lb.get("status") or {}
        kinds = [args.kind] if args.kind else list(_KINDS)
        shown = {kind: status.get(_STATUS_FIELDS[kind]) for kind in kinds}
        newer = status.get("newerImage")
        if as_json:
            # One kind asked for: its rollout (or null); else both, under their status names.
            _print(shown[args.kind] if args.kind else {_STATUS_FIELDS[k]: v for k, v in shown.items()})
            return EXIT_OK
        blocks = [describe(rollout) for rollout in shown.values() if isinstance(rollout, dict)]
        _out("\n\n".join(blocks) if blocks else "No rollout.")
        if isinstance(newer, dict) and (args.kind or "template") == "template":
            _out(fields([("Newer image", newer.get("message"))]))
        return EXIT_OK
    rollout = client.json("POST", lb_path(args.ref, "rollout", args.action), query={"kind": args.kind})
    if as_json:
        _print(rollout)
        return EXIT_OK
    _out(describe(rollout))
    return EXIT_OK


def describe(rollout: dict[str, Any]) -> str:
    config = _kind(rollout) == "config"
    state = rollout.get("state") or NONE
    if rollout.get("step"):
        state += f" (step {rollout['step']})"
    if rollout.get("rejected"):
        state += f"; {_target(rollout)} is rejected"
    rows: list[tuple[str, Any]] = [
        ("Rollout", f"{rollout.get('id')} ({'config' if config else 'template'})"),
        ("State", state),
        ("From", _source(rollout)),
        ("To", _target(rollout)),
        ("Progress", rollout.get("progress")),
    ]
    if config:
        canaries = rollout.get("canaryLbvms") or []
        rows.append(("Canary", f"{rollout.get('canary')} ({', '.join(canaries) or NONE})"))
        if rollout.get("state") == "Paused" and rollout.get("pausedLbvms") is not None:
            held = rollout.get("pausedLbvms") or []
            rows.append(("Kept on it", ", ".join(held) or NONE))  # while paused: who keeps the new version
        rows.append(("Failed", ", ".join(rollout.get("failed") or []) or NONE))
    else:
        rows.append(("Canary", rollout.get("canary")))
        rows.append(("Launched", f"{len(rollout.get('launched') or [])} ({len(rollout.get('failed') or [])} failed)"))
    rows += [
        ("Waiting for", rollout.get("waitingFor") or NONE),
        ("Started", timestamp(rollout.get("startedAt"))),
        ("Finished", timestamp(rollout.get("finishedAt")) if rollout.get("finishedAt") else NONE),
        ("Message", rollout.get("message")),
    ]
    return fields(rows)


def _kind(rollout: dict[str, Any]) -> str:
    # A server from before config rollouts joined the history names no kind: its rollouts are templates'.
    return str(rollout.get("kind") or "template")


def _source(rollout: dict[str, Any]) -> str:
    if _kind(rollout) == "config":
        return _version(rollout.get("fromVersion"))
    return _template(rollout.get("fromTemplate"))


def _target(rollout: dict[str, Any]) -> str:
    if _kind(rollout) == "config":
        return _version(rollout.get("toVersion"))
    return _template(rollout.get("toTemplate"))


def _version(version: Any) -> str:
    return f"config version {version}" if version is not None else NONE


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
