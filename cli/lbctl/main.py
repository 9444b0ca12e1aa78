"""lbctl: manage load balancers through the lbcp control plane API.

Commands: create, get, list, patch, delete, events, describe (one screen: conditions, LBVMs,
scaling, rollouts, events), why (a causal answer about capacity, the phase or an LBVM), plan
(what the reconciler would do now, and why), lbvm (one LBVM's detail and history), rollout
(``lbctl COMMAND --help``),
gc (the consistency report and garbage collection of orphans), and simulate
(offline: what a scaling policy would have done on a load trace).
A load balancer REF is its id (``lb-...``) or its name.

The endpoint is ``--endpoint``, else ``$LBCTL_ENDPOINT``, else the local runtime
at ``http://127.0.0.1:${LOCAL_API_PORT:-8080}``. Requests are SigV4-signed for
``execute-api`` with your AWS credentials unless the endpoint is on loopback
(``--sign`` / ``--no-sign`` override). ``--json`` prints the API's JSON for scripts.

Exit codes:
  0  success
  1  unexpected error: the API could not be reached, answered HTTP 5xx or
     another unexpected status (such as 403 from IAM), or --wait timed out
  2  usage error: bad arguments, an unreadable or invalid local file, no AWS
     credentials or region to sign with (nothing was changed)
  3  the API rejected the request as invalid (HTTP 400, 413, 415, 422, 428)
  4  not found (HTTP 404)
  5  conflict (HTTP 409: name in use, being deleted, no rollout in progress; HTTP 412: stale --if-match)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from lbctl import __version__
from lbctl.argtypes import non_negative_int, positive_float
from lbctl.client import ApiClient, Signer, is_loopback, lb_path, normalize_endpoint
from lbctl.describe import EPILOG as DESCRIBE_EPILOG
from lbctl.describe import add_arguments as add_describe_arguments
from lbctl.describe import run as run_describe
from lbctl.documents import leaf_paths, load_document, merge_patch_from_assignments
from lbctl.errors import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    ApiError,
    LbctlError,
    UsageError,
    WaitTimeout,
)
from lbctl.explain import LBVM_EPILOG, PLAN_EPILOG, add_lbvm_arguments, add_plan_arguments, run_lbvm, run_plan
from lbctl.gc import EPILOG as GC_EPILOG
from lbctl.gc import add_arguments as add_gc_arguments
from lbctl.output import NONE, age, cell, compact_json, fields, table, timestamp
from lbctl.rollout import EPILOG as ROLLOUT_EPILOG
from lbctl.rollout import add_arguments as add_rollout_arguments
from lbctl.rollout import run as run_rollout
from lbctl.simulate import EPILOG as SIMULATE_EPILOG
from lbctl.simulate import add_arguments as add_simulate_arguments
from lbctl.simulate import cmd_simulate as run_simulation
from lbctl.why import EPILOG as WHY_EPILOG
from lbctl.why import add_arguments as add_why_arguments
from lbctl.why import run as run_why

EXIT_CODES_HELP = __doc__.split("Exit codes:", 1)[1].rstrip() if __doc__ else ""
LIST_PATH = "/v1/load-balancers"
# Resource fields the API owns; everything else in a load balancer is its spec.
METADATA_FIELDS = frozenset(
    {"id", "generation", "createdAt", "updatedAt", "createdBy", "deletionRequestedAt", "status"}
)
_IF_MATCH_RE = re.compile(r'^(?:"?\d{1,18}"?|\*)$')


# --- plumbing -------------------------------------------------------------------------


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _print_json(document: Any) -> None:
    _out(json.dumps(document, indent=2, ensure_ascii=False))


class Context:
    """Parsed global options; the API client is built on first use, after local input was checked."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json: bool = bool(args.json)
        endpoint = args.endpoint or os.environ.get("LBCTL_ENDPOINT") or _local_endpoint()
        self.endpoint = normalize_endpoint(endpoint)
        self.sign: bool = args.sign if args.sign is not None else not is_loopback(self.endpoint)

    @cached_property
    def client(self) -> ApiClient:
        signer = Signer(self.args.region, self.args.profile, self.endpoint) if self.sign else None
        return ApiClient(
            self.endpoint, timeout=self.args.timeout, signer=signer, max_retries=self.args.retries, log=_err
        )


def _local_endpoint() -> str:
    return f"http://127.0.0.1:{os.environ.get('LOCAL_API_PORT') or '8080'}"


def _limit(text: str) -> int:
    value = non_negative_int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be 1 to 100: {text!r}")
    return value


def _if_match(text: str) -> str:
    value = text.strip()
    if not _IF_MATCH_RE.fullmatch(value):
        raise argparse.ArgumentTypeError(f"must be a generation such as 3 (the ETag), or *: {text!r}")
    return value if value == "*" else f'"{value.strip(chr(34))}"'


def _label(lb: dict[str, Any]) -> str:
    return f"{lb.get('name', '?')} ({lb.get('id', '?')})"


def _spec_of(lb: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in lb.items() if key not in METADATA_FIELDS}


# --- create ---------------------------------------------------------------------------


def cmd_create(ctx: Context) -> int:
    args = ctx.args
    document = load_document(args.file)
    key = args.idempotency_key or str(uuid.uuid4())
    response = ctx.client.request("POST", LIST_PATH, json_body=document, headers={"Idempotency-Key": key}, retry="safe")
    lb = response.json()
    if ctx.json:
        _print_json(lb)
        return EXIT_OK
    status = lb.get("status") or {}
    if response.headers.get("Idempotent-Replayed", "").lower() == "true":
        _out(
            f"Load balancer {_label(lb)} was created by an earlier request with this Idempotency-Key; "
            f"this is that request's answer (for its current state: lbctl get {lb.get('id')})."
        )
    else:
        _out(f"Created load balancer {_label(lb)}.")
    _out(
        fields(
            [
                ("ID", lb.get("id")),
                ("Name", lb.get("name")),
                ("Generation", lb.get("generation")),
                ("Phase", status.get("phase")),
            ],
            indent="  ",
        )
    )
    _out(f"Follow it with: lbctl get {lb.get('name')}   lbctl events {lb.get('name')}")
    return EXIT_OK


# --- get ------------------------------------------------------------------------------


def cmd_get(ctx: Context) -> int:
    lb = ctx.client.json("GET", lb_path(ctx.args.ref))
    if ctx.json:
        _print_json(lb)
    else:
        _out(render_load_balancer(lb))
    return EXIT_OK


def render_load_balancer(lb: dict[str, Any], now: datetime | None = None) -> str:
    status = lb.get("status") or {}
    capacity = lb.get("capacity") or {}
    entry = lb.get("entry") or {}
    entry_status = status.get("entry") or {}
    waf = lb.get("waf") or {}
    created = f"{timestamp(lb.get('createdAt'))} ({age(lb.get('createdAt'), now)} ago)"
    if lb.get("createdBy"):
        created += f" by {lb['createdBy']}"
    pairs: list[tuple[str, Any]] = [
        ("Name", lb.get("name")),
        ("ID", lb.get("id")),
        ("Type", lb.get("type")),
        ("Generation", lb.get("generation")),
        ("Phase", status.get("phase")),
        ("Observed generation", status.get("observedGeneration")),
        (
            "Desired capacity",
            f"{cell(status.get('desiredCapacity'))} (min {cell(capacity.get('min'))}, max {cell(capacity.get('max'))})",
        ),
        ("DNS name", entry_status.get("dnsName")),
        ("Entry", ", ".join(cell(entry.get(key)) for key in ("mode", "scheme"))),
        ("VPC", lb.get("vpcId")),
        ("Subnets", ", ".join(str(s) for s in lb.get("subnetIds") or [])),
        ("Proxy", lb.get("proxy")),
        ("WAF", f"enabled ({waf.get('mode')})" if waf.get("enabled") else "disabled"),
        ("Created", created),
        ("Updated", timestamp(lb.get("updatedAt"))),
    ]
    if lb.get("deletionRequestedAt"):
        pairs.append(("Deletion requested", timestamp(lb["deletionRequestedAt"])))
    if status.get("message"):
        pairs.append(("Message", status["message"]))
    sections = [fields(pairs)]

    listeners = [item for item in lb.get("listeners") or [] if isinstance(item, dict)]
    sections.append(
        "Listeners:\n"
        + table(
            ["PROTOCOL", "PORT", "DEFAULT BACKEND", "RULES", "IDLE TIMEOUT", "CERTIFICATE"],
            [
                [
                    item.get("protocol"),
                    item.get("port"),
                    item.get("defaultBackend"),
                    len(item.get("rules") or []),
                    f"{item['idleTimeoutSeconds']}s" if item.get("idleTimeoutSeconds") else None,
                    item.get("certificateArn"),
                ]
                for item in listeners
            ],
            indent="  ",
        )
    )
    rules = [
        [
            f"{item.get('protocol')}:{item.get('port')}",
            index,
            rule.get("host"),
            rule.get("pathPrefix"),
            rule.get("backend"),
        ]
        for item in listeners
        for index, rule in enumerate(item.get("rules") or [])
    ]
    if rules:
        sections.append(
            "Routing rules (first match wins):\n"
            + table(["LISTENER", "#", "HOST", "PATH PREFIX", "BACKEND"], rules, indent="  ")
        )

    backends = [item for item in lb.get("backends") or [] if isinstance(item, dict)]
    sections.append(
        "Backends:\n"
        + table(
            ["NAME", "TARGETS", "HEALTH CHECK"],
            [
                [item.get("name"), _targets(item.get("targets")), _health_check(item.get("healthCheck"))]
                for item in backends
            ],
            indent="  ",
        )
    )

    lbvms = [item for item in status.get("lbvms") or [] if isinstance(item, dict)]
    if lbvms:
        states = Counter(str(item.get("state")) for item in lbvms)
        summary = ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
        sections.append(
            f"LBVMs ({summary}):\n"
            + table(
                ["LBVM", "INSTANCE", "SUBNET", "ZONE", "STATE", "SINCE", "HEARTBEAT", "NOTE"],
                [
                    [
                        item.get("lbvmId"),
                        item.get("instanceId"),
                        item.get("subnetId"),
                        item.get("availabilityZone"),
                        item.get("state"),
                        age(item.get("since"), now) if item.get("since") else None,
                        f"{age(item['lastHeartbeatAt'], now)} ago" if item.get("lastHeartbeatAt") else None,
                        # Why it is leaving, or what its agent last complained of (lbctl lbvm REF ID: the rest).
                        f"drain: {item['drainReason']}" if item.get("drainReason") else item.get("agentError"),
                    ]
                    for item in lbvms
                ],
                indent="  ",
            )
        )
    else:
        sections.append("LBVMs:\n  (none yet)")
    return "\n\n".join(sections)


def _targets(targets: Any, shown: int = 4) -> str:
    items = [f"{t.get('host')}:{t.get('port')}" for t in targets or [] if isinstance(t, dict)]
    text = ", ".join(items[:shown])
    return text + (f" (+{len(items) - shown} more)" if len(items) > shown else "")


def _health_check(check: Any) -> str:
    if not isinstance(check, dict):
        return NONE
    # Unset, the protocol follows the listener (HTTP at L7, TCP at L4); a path alone means HTTP.
    protocol = check.get("protocol") or ("HTTP" if check.get("path") else "auto")
    path = f" {check.get('path') or '/'}" if protocol in ("HTTP", "HTTPS") else ""
    return f"{protocol}{path} every {cell(check.get('intervalSeconds'))}s"


# --- list -----------------------------------------------------------------------------


def cmd_list(ctx: Context) -> int:
    args = ctx.args
    query: dict[str, Any] = {"limit": args.limit, "nextToken": args.next_token}
    page = ctx.client.json("GET", LIST_PATH, query=query)
    items: list[dict[str, Any]] = list(page.get("items") or [])
    next_token = page.get("nextToken")
    seen_tokens: set[str] = set()
    while args.all and next_token:
        if next_token in seen_tokens:
            raise LbctlError(f"the API returned the same nextToken twice ({next_token[:40]}...); stopping")
        seen_tokens.add(next_token)
        page = ctx.client.json("GET", LIST_PATH, query={**query, "nextToken": next_token})
        items.extend(page.get("items") or [])
        next_token = page.get("nextToken")
    if ctx.json:
        _print_json({**page, "items": items, "nextToken": next_token} if args.all else page)
        return EXIT_OK
    if not items:
        _out("No load balancers." if not next_token else "No load balancers on this page.")
    else:
        _out(render_list(items))
    if next_token:
        _err(f"(more load balancers: pass --all, or --next-token {next_token})")
    return EXIT_OK


def render_list(items: Sequence[dict[str, Any]], now: datetime | None = None) -> str:
    rows = []
    for lb in items:
        status = lb.get("status") or {}
        routable = sum(1 for vm in status.get("lbvms") or [] if isinstance(vm, dict) and vm.get("state") == "Routable")
        rows.append(
            [
                lb.get("name"),
                lb.get("id"),
                lb.get("type"),
                status.get("phase"),
                status.get("desiredCapacity"),
                routable,
                lb.get("generation"),
                age(lb.get("createdAt"), now),
            ]
        )
    return table(["NAME", "ID", "TYPE", "PHASE", "DESIRED", "ROUTABLE", "GEN", "AGE"], rows)


# --- patch ----------------------------------------------------------------------------


def cmd_patch(ctx: Context) -> int:
    args = ctx.args
    patch = load_document(args.file) if args.file else merge_patch_from_assignments(args.set)
    if not patch:
        raise UsageError("the patch is empty: nothing to change")
    before: dict[str, Any] | None = None
    target = args.ref
    if args.if_match is None:
        # Read, then change what was read: the API refuses the patch (412) if anything changed in between.
        before = ctx.client.json("GET", lb_path(args.ref))
        if_match = f'"{before["generation"]}"'
        target = str(before["id"])  # the one we read, even if the name moves to another one meanwhile
    else:
        if_match = args.if_match
    response = ctx.client.request(
        "PATCH",
        lb_path(target),
        json_body=patch,
        content_type="application/merge-patch+json",
        headers={"If-Match": if_match},
        retry="connect",  # never resend a change that may have been applied
    )
    after = response.json()
    if ctx.json:
        _print_json(after)
        return EXIT_OK
    old_generation = before["generation"] if before is not None else if_match.strip('"')
    new_generation = after.get("generation")
    if str(old_generation) == str(new_generation):
        _out(f"No change to {_label(after)}: the spec already says that (generation {new_generation}).")
        return EXIT_OK
    _out(f"Patched {_label(after)}: generation {old_generation} -> {new_generation}")
    if before is not None:
        changes = spec_changes(_spec_of(before), _spec_of(after))
        for field, old, new in changes:
            _out(f"  {field}: {old} -> {new}")
    else:
        for leaf in leaf_paths(patch):
            _out(f"  {_format_path(leaf)}: now {_show(_lookup(after, leaf))}")
    return EXIT_OK


_ABSENT: Any = object()


def spec_changes(old: Any, new: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str, str, str]]:
    """Leaf-level differences between two JSON documents as (field, old, new), in document order."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = [*old, *(key for key in new if key not in old)]
        return [c for key in keys for c in spec_changes(old.get(key, _ABSENT), new.get(key, _ABSENT), (*path, key))]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [c for i, (a, b) in enumerate(zip(old, new, strict=True)) for c in spec_changes(a, b, (*path, i))]
    if old == new and type(old) is type(new):
        return []
    return [(_format_path(path), _show(old), _show(new))]


def _format_path(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else ("." if text else "") + str(part)
    return text or "(spec)"


def _show(value: Any, width: int = 70) -> str:
    if value is _ABSENT:
        return "(absent)"
    text = compact_json(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _lookup(document: Any, path: Sequence[str]) -> Any:
    for part in path:
        if not isinstance(document, dict) or part not in document:
            return _ABSENT
        document = document[part]
    return document


# --- delete ---------------------------------------------------------------------------


def cmd_delete(ctx: Context) -> int:
    args = ctx.args
    headers = {"If-Match": args.if_match} if args.if_match else {}
    lb = ctx.client.json("DELETE", lb_path(args.ref), headers=headers, retry="safe")
    status = lb.get("status") or {}
    if ctx.json:
        _print_json(lb)
    else:
        _out(f"Deleting load balancer {_label(lb)}: phase {status.get('phase')}.")
        if not args.wait:
            _out(
                "Teardown drains and terminates its LBVMs, then removes their ENIs, DNS records and entry; "
                f"follow it with: lbctl get {lb.get('id')}"
            )
    if args.wait:
        return _wait_until_deleted(ctx, lb, args.wait_timeout, args.poll_interval)
    return EXIT_OK


def _wait_until_deleted(ctx: Context, lb: dict[str, Any], timeout: float, interval: float) -> int:
    progress = _err if ctx.json else _out
    deadline = time.monotonic() + timeout
    last = _progress_line(lb)
    progress(f"  {_clock()}  {last}")
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeout(
                f"timed out after {timeout:g}s waiting for {_label(lb)} to be deleted; it is still there "
                f"({last}). Keep watching with: lbctl get {lb.get('id')}"
            )
        time.sleep(min(interval, remaining))
        try:
            current = ctx.client.json("GET", lb_path(str(lb["id"])))
        except ApiError as error:
            if error.status != 404:
                raise
            progress(f"  {_clock()}  deleted")
            if not ctx.json:
                _out(f"Deleted load balancer {_label(lb)}.")
            return EXIT_OK
        line = _progress_line(current)
        if line != last:
            progress(f"  {_clock()}  {line}")
            last = line


def _progress_line(lb: dict[str, Any]) -> str:
    status = lb.get("status") or {}
    lbvms = [vm for vm in status.get("lbvms") or [] if isinstance(vm, dict)]
    text = f"phase {status.get('phase')}"
    if lbvms:
        states = Counter(str(vm.get("state")) for vm in lbvms)
        text += f", {len(lbvms)} LBVMs (" + ", ".join(f"{n} {s}" for s, n in sorted(states.items())) + ")"
    if status.get("message"):
        text += f": {status['message']}"
    return text


def _clock() -> str:
    return datetime.now(UTC).strftime("%H:%M:%SZ")


# --- events ---------------------------------------------------------------------------


def cmd_events(ctx: Context) -> int:
    args = ctx.args
    page = ctx.client.json("GET", lb_path(args.ref, "events"), query={"limit": args.limit})
    if ctx.json:
        _print_json(page)
        return EXIT_OK
    items = [item for item in page.get("items") or [] if isinstance(item, dict)]
    if not items:
        _out("No events.")
    else:
        _out(
            table(
                ["TIME", "TYPE", "REASON", "MESSAGE"],
                [[timestamp(e.get("time")), e.get("type"), e.get("reason"), e.get("message")] for e in items],
            )
        )
    if page.get("nextToken"):
        _err("(older events not shown: raise --limit, up to 100)")
    return EXIT_OK


# --- describe, why, plan, lbvm ---------------------------------------------------------


def cmd_describe(ctx: Context) -> int:
    return run_describe(ctx.client, ctx.args, ctx.json)


def cmd_why(ctx: Context) -> int:
    return run_why(ctx.client, ctx.args, ctx.json)


def cmd_plan(ctx: Context) -> int:
    return run_plan(ctx.client, ctx.args, ctx.json)


def cmd_lbvm(ctx: Context) -> int:
    return run_lbvm(ctx.client, ctx.args, ctx.json)


# --- rollout --------------------------------------------------------------------------


def cmd_rollout(ctx: Context) -> int:
    return run_rollout(ctx.client, ctx.args, ctx.json)


# --- simulate -------------------------------------------------------------------------


def cmd_simulate(ctx: Context) -> int:
    return run_simulation(ctx.args, ctx.json)


# --- arguments ------------------------------------------------------------------------


def _add_global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Global options; repeated on every command (with no defaults there) so they may follow it too."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--endpoint",
        metavar="URL",
        default=default(None),
        help="API endpoint (default: $LBCTL_ENDPOINT, else http://127.0.0.1:${LOCAL_API_PORT:-8080})",
    )
    group.add_argument("--json", action="store_true", default=default(False), help="print the API's JSON")
    group.add_argument("--region", default=default(None), help="AWS region to sign for")
    group.add_argument("--profile", default=default(None), help="AWS profile whose credentials sign requests")
    group.add_argument(
        "--sign",
        action=argparse.BooleanOptionalAction,
        default=default(None),
        help="SigV4-sign requests (default: sign unless the endpoint is loopback)",
    )
    group.add_argument(
        "--timeout", type=positive_float, metavar="SECONDS", default=default(30.0), help="per request (default 30)"
    )
    group.add_argument(
        "--retries",
        type=non_negative_int,
        metavar="N",
        default=default(4),
        help="retries of a safe request after a connection error, 429 or 5xx (default 4)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lbctl",
        description="Manage load balancers through the lbcp control plane API.",
        epilog="A load balancer REF is its id (lb-...) or its name.\n\nexit codes:" + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lbctl {__version__}")
    _add_global_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _add_global_options(common, suppress=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: Callable[[Context], int], summary: str, epilog: str = "") -> Any:
        sub = commands.add_parser(
            name,
            parents=[common],
            help=summary,
            description=summary,
            epilog=epilog or None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(handler=handler)
        return sub

    create = command(
        "create",
        cmd_create,
        "Declare a load balancer from a spec file.",
        "The spec is YAML or JSON (see docs/openapi.json). A create is sent with an Idempotency-Key\n"
        "(a new UUID unless given) and retried with the same key, so it never creates two.",
    )
    create.add_argument("-f", "--file", required=True, metavar="FILE", help="spec file, YAML or JSON; - for stdin")
    create.add_argument("--idempotency-key", metavar="KEY", help="reuse to make a repeated create return the first")

    get = command("get", cmd_get, "Show a load balancer: spec summary, status, listeners, backends, LBVMs.")
    get.add_argument("ref", metavar="REF")

    listing = command("list", cmd_list, "List load balancers (by name).")
    listing.add_argument("--limit", type=_limit, metavar="N", help="page size, 1 to 100 (API default 20)")
    listing.add_argument("--all", action="store_true", help="follow nextToken through every page")
    listing.add_argument("--next-token", metavar="TOKEN", help="start at this page (from a previous listing)")

    patch = command(
        "patch",
        cmd_patch,
        "Change a load balancer's spec with a JSON Merge Patch (RFC 7386).",
        "examples:\n"
        "  lbctl patch web --set capacity.max=8 --set waf.enabled=true\n"
        "  lbctl patch web --set entry.dnsTtlSeconds=null      # null resets to the default\n"
        "  lbctl patch web --set proxy=nginx --if-match 3\n"
        "  lbctl patch web -f change.yaml\n\n"
        '--set values are JSON when they parse as JSON (8, true, null, "8", [...]), else strings.\n'
        "Without --if-match, lbctl reads the current generation and sends it as If-Match, so a\n"
        "change made in between is refused (exit 5) rather than overwritten.",
    )
    patch.add_argument("ref", metavar="REF")
    source = patch.add_mutually_exclusive_group(required=True)
    source.add_argument("-f", "--file", metavar="FILE", help="merge patch, YAML or JSON; - for stdin")
    source.add_argument("--set", action="append", metavar="PATH=VALUE", help="set one field (repeatable)")
    patch.add_argument("--if-match", type=_if_match, metavar="GEN", help="the generation you read (the ETag)")

    delete = command(
        "delete", cmd_delete, "Delete a load balancer (ordered teardown; it shows phase Deleting until done)."
    )
    delete.add_argument("ref", metavar="REF")
    delete.add_argument("--if-match", type=_if_match, metavar="GEN", help="only if still at this generation")
    delete.add_argument("--wait", action="store_true", help="wait until teardown ends, printing progress")
    delete.add_argument("--wait-timeout", type=positive_float, default=600.0, metavar="SECONDS", help="(default 600)")
    delete.add_argument("--poll-interval", type=positive_float, default=2.0, metavar="SECONDS", help="(default 2)")

    events = command("events", cmd_events, "Show a load balancer's events, newest first.")
    events.add_argument("ref", metavar="REF")
    events.add_argument("--limit", type=_limit, metavar="N", help="how many, 1 to 100 (API default 50)")

    describe = command(
        "describe",
        cmd_describe,
        "One screen: spec summary, conditions, LBVMs with their reasons, scaling, rollouts, events.",
        DESCRIBE_EPILOG,
    )
    add_describe_arguments(describe)

    why = command(
        "why",
        cmd_why,
        "Why the phase, the desired capacity or an LBVM is what it is (from stored decisions).",
        WHY_EPILOG,
    )
    add_why_arguments(why)

    plan = command(
        "plan", cmd_plan, "What the reconciler would do now and why, and desired against observed.", PLAN_EPILOG
    )
    add_plan_arguments(plan)

    lbvm = command("lbvm", cmd_lbvm, "One LBVM: why it exists, why it is in its state, and its events.", LBVM_EPILOG)
    add_lbvm_arguments(lbvm)

    gc = command(
        "gc",
        lambda ctx: EXIT_USAGE,
        "The consistency checker's report and garbage collection of orphans (report, sweep, audit).",
        GC_EPILOG,
    )
    add_gc_arguments(gc, common, _print_json)

    rollout = command(
        "rollout",
        cmd_rollout,
        "A load balancer's rollouts: status, pause, resume, abort (roll back now), history.",
        ROLLOUT_EPILOG,
    )
    add_rollout_arguments(rollout)

    simulate = command(
        "simulate",
        cmd_simulate,
        "Replay a load trace through a scaling policy and a fleet model (offline, no API).",
        SIMULATE_EPILOG,
    )
    add_simulate_arguments(simulate)
    return parser


# --- entry point ----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run lbctl; returns the exit code (see the module docstring)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error (already printed)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    ctx: Context | None = None
    try:
        ctx = Context(args)
        code: int = args.handler(ctx)
        sys.stdout.flush()
        return code
    except LbctlError as error:
        sys.stdout.flush()
        for line in error.lines():
            _err(line)
        return error.exit_code
    except KeyboardInterrupt:
        _err("lbctl: interrupted")
        return 130
    except BrokenPipeError:
        # The reader went away (lbctl list | head): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    finally:
        if ctx is not None and "client" in ctx.__dict__:  # built only if a request was made
            ctx.client.close()


if __name__ == "__main__":
    raise SystemExit(main())
