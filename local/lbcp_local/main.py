"""``make local``: serve the control plane on loopback until stopped."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from lbcp_local.entry_routing import EntryDelays
from lbcp_local.runtime import LocalRuntime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lbcp-local", description=__doc__)
    runtime_defaults = LocalRuntime.__dataclass_fields__
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--api-port", type=int, default=runtime_defaults["api_port"].default)
    parser.add_argument("--aws-port", type=int, default=runtime_defaults["aws_port"].default)
    parser.add_argument(
        "--agent-port",
        type=int,
        default=runtime_defaults["agent_port"].default,
        help="the agent endpoint's port (the function URL in AWS; default: any free port)",
    )
    parser.add_argument("--quiet", action="store_true", help="no access log")
    parser.add_argument("--state-dir", type=Path, default=Path(".local"), help="where to write account.json")
    parser.add_argument(
        "--no-fleet", action="store_true", help="the API only: no state machines, reconciler, scaler or agents"
    )
    parser.add_argument(
        "--dataplane",
        choices=["proxy", "simulated"],
        default=runtime_defaults["dataplane"].default,
        help="what each LBVM runs: the real proxy (HAProxy, or NGINX with ModSecurity) on loopback ports of its "
        "own, or a simulated one (no processes; for machines without the proxies)",
    )
    delays = EntryDelays()
    parser.add_argument(
        "--entry-registration-delay",
        type=float,
        default=delays.registration_seconds,
        metavar="SECONDS",
        help="how long the local entry takes to send new connections to a registered LBVM "
        f"(default {delays.registration_seconds:g}; a real NLB takes tens of seconds)",
    )
    parser.add_argument(
        "--entry-deregistration-delay",
        type=float,
        default=delays.deregistration_seconds,
        metavar="SECONDS",
        help="how long the local entry still sends new connections to a deregistered LBVM "
        f"(default {delays.deregistration_seconds:g})",
    )
    args = parser.parse_args(argv)

    runtime = LocalRuntime(
        host=args.host,
        api_port=args.api_port,
        aws_port=args.aws_port,
        agent_port=args.agent_port,
        quiet=args.quiet,
        state_dir=args.state_dir,
        fleet=not args.no_fleet,
        dataplane=args.dataplane,
        entry_delays=EntryDelays(args.entry_registration_delay, args.entry_deregistration_delay),
    )
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with runtime:
        account = runtime.account
        assert account is not None
        print(
            f"""ready
lbcp local runtime
  API (unsigned, as IAM principal local-developer):  {runtime.api_url}/v1
  Agent endpoint (the function URL; local agents):   {runtime.agent_url}/v1/agent
  AWS endpoint (moto):                               {runtime.aws_url}
  OpenAPI:                                           {runtime.api_url}/v1/openapi.json

Seeded account ({account.region}):
  VPC          {account.vpc_id}
  subnets      {", ".join(f"{s} ({z})" for s, z in zip(account.subnet_ids, account.availability_zones, strict=True))}
  certificate  {account.certificate_arn} (ISSUED)
  (all ids in {args.state_dir}/account.json; a ready spec in {args.state_dir}/example-spec.json)

Try:
  curl -s -X POST {runtime.api_url}/v1/load-balancers \\
       -H 'Content-Type: application/json' -d @{args.state_dir}/example-spec.json
  .venv/bin/lbctl list
  .venv/bin/lbctl events web
  cat {args.state_dir}/lbvms/*/listen.json     # where each LBVM's real proxy listens, e.g. {{"80": "127.0.0.1:41234"}}
  curl -s http://127.0.0.1:41234/             # through that LBVM to the example's backend server

Ctrl-C stops (state lives in memory).
""",
            flush=True,
        )
        stop.wait()
    print("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
