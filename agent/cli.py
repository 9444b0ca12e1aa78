"""``python -m agent``: render a spec into proxy configuration, or run as the LBVM's service.

    python -m agent render --spec SPEC.json --proxy haproxy|nginx --out DIR [--check]
    python -m agent run --lb-id LB --lbvm-id ID --agent-endpoint URL --proxy haproxy|nginx
    python -m agent user-data --lb-id LB --lbvm-id ID --agent-endpoint URL --proxy P --artifact URL --region R
    python -m agent package --out lbcp-agent.tar.gz

Exit codes: 0 done; 1 the proxy refused the rendered configuration (render
--check); 2 bad input (an invalid spec, a spec this machine cannot serve, a
bad argument). An invalid spec writes nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import yaml

from agent import __version__
from lbcp.errors import SpecRejected
from lbcp.models.agent import AgentConfig
from lbcp.validation import parse_spec

EXIT_OK, EXIT_REFUSED, EXIT_INVALID = 0, 1, 2
DEFAULT_STATE_DIR = Path("/var/lib/lbcp-agent")
DEFAULT_RUN_DIR = Path("/run/lbcp-agent")
DEFAULT_LOG_DIR = Path("/var/log/lbcp-agent")
PLACEHOLDER_LB_ID = "lb-00000000000000000"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler: Any = args.handler
    code: int = handler(args)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agent", description="The lbcp LBVM agent.")
    parser.add_argument("--version", action="version", version=f"lbcp-agent {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    render = commands.add_parser("render", help="render a spec into a proxy configuration")
    render.add_argument("--spec", type=Path, required=True, help="the spec (the API's create body), JSON or YAML")
    render.add_argument("--proxy", choices=["haproxy", "nginx"], help="default: the spec's proxy")
    render.add_argument("--out", type=Path, required=True, help="directory for the configuration and certificates")
    render.add_argument("--config-version", type=int, default=1)
    render.add_argument("--lb-id", default=PLACEHOLDER_LB_ID)
    render.add_argument(
        "--certificates",
        default="self-signed",
        help="'self-signed' (placeholders: the default), 'acm' (export from ACM with your credentials)",
    )
    render.add_argument("--check", action="store_true", help="have the proxy check the result (haproxy -c, nginx -t)")
    # Under --out by default, so that what is written passes `haproxy -c -f` and
    # `nginx -t -c` by itself; an LBVM's own paths are the run command's defaults.
    _machine_options(render, run_dir=None, log_dir=None)
    render.set_defaults(handler=_render)

    run = commands.add_parser("run", help="run as the LBVM's agent service")
    run.add_argument("--lb-id", required=True)
    run.add_argument("--lbvm-id", required=True)
    run.add_argument(
        "--agent-endpoint",
        required=True,
        help="the control plane's agent endpoint (in AWS its Lambda function URL; requests are signed for lambda)",
    )
    run.add_argument("--proxy", choices=["haproxy", "nginx"], required=True)
    run.add_argument("--region", help="default: the instance's region")
    run.add_argument("--instance-id", help="default: from the instance metadata service")
    run.add_argument("--subnet-id", help="default: from the instance metadata service")
    run.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    run.add_argument("--unsigned", action="store_true", help="do not sign requests (the local runtime)")
    run.add_argument("--no-metrics", action="store_true", help="send no metrics with the heartbeats")
    run.add_argument("--certificates", choices=["acm", "self-signed"], default="acm")
    run.add_argument("--log-level", default="INFO")
    _machine_options(run)
    run.set_defaults(handler=_run)

    data = commands.add_parser("user-data", help="print the bootstrap user data for an LBVM")
    data.add_argument("--lb-id", required=True)
    data.add_argument("--lbvm-id", required=True)
    data.add_argument("--agent-endpoint", required=True, help="the control plane's agent endpoint")
    data.add_argument("--proxy", choices=["haproxy", "nginx"], required=True)
    data.add_argument("--artifact", required=True, help="the agent artifact (s3:// or https://)")
    data.add_argument("--artifact-sha256")
    data.add_argument("--waf-bundle")
    data.add_argument("--waf-bundle-sha256")
    data.add_argument("--region", required=True)
    data.set_defaults(handler=_user_data)

    package = commands.add_parser("package", help="build the agent artifact the bootstrap installs")
    package.add_argument("--out", type=Path, required=True)
    package.add_argument("--arch", choices=["x86_64", "aarch64"], default="x86_64")
    package.add_argument("--no-deps", action="store_true", help="only the agent and lbcp packages")
    package.set_defaults(handler=_package)
    return parser


def _machine_options(
    parser: argparse.ArgumentParser, run_dir: Path | None = DEFAULT_RUN_DIR, log_dir: Path | None = DEFAULT_LOG_DIR
) -> None:
    parser.add_argument("--run-dir", type=Path, default=run_dir, help=f"default: {run_dir or 'OUT/run'}")
    parser.add_argument("--log-dir", type=Path, default=log_dir, help=f"default: {log_dir or 'OUT/log'}")
    parser.add_argument("--bind-address", help="listen on this address only (default: every IPv4 address)")
    parser.add_argument("--stats-port", type=int, default=8404, help="the loopback stats endpoint's port")
    parser.add_argument("--proxy-user", help="the user the proxy's workers run as")


def _options(args: argparse.Namespace) -> Any:
    from agent.model import RenderOptions
    from agent.platform import Platform

    return RenderOptions(
        run_dir=args.run_dir,
        log_dir=args.log_dir,
        bind_address=args.bind_address,
        stats_port=args.stats_port,
        proxy_user=args.proxy_user,
        platform=Platform.detect(),
    )


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_INVALID


# --- render -------------------------------------------------------------------------


def _load_document(path: Path) -> Any:
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        return yaml.safe_load(text)
    return json.loads(text)


def _render(args: argparse.Namespace) -> int:
    from agent import release
    from agent.certs import CertificateUnavailable
    from agent.model import RenderError
    from agent.proxy.base import driver_for
    from agent.proxy.process import ProxyFailed

    try:
        document = _load_document(args.spec)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        return _fail(f"cannot read {args.spec}: {exc}")
    if args.proxy and isinstance(document, dict):
        # The flag says which proxy to render for: the spec's rules (the WAF needs
        # NGINX) must judge the spec with it, not with the proxy it names itself.
        document = {**document, "proxy": args.proxy}
    try:
        spec = parse_spec(document)
    except SpecRejected as exc:
        lines = [f"  {error.field}: {error.message}" for error in exc.errors]
        return _fail(f"{args.spec} is not a valid spec:\n" + "\n".join(lines))
    proxy = spec.proxy
    config = AgentConfig(load_balancer_id=args.lb_id, lbvm_id="render", config_version=args.config_version, spec=spec)
    out = args.out.resolve()
    args.run_dir = args.run_dir or out / "run"
    args.log_dir = args.log_dir or out / "log"
    options = _options(args)
    try:
        prepared = release.prepare(config, proxy, options, _certificate_source(args), directory=args.out)
    except (RenderError, CertificateUnavailable, ValueError) as exc:
        return _fail(str(exc))
    # Only now, with everything rendered and every certificate in hand, is anything written.
    release.write(prepared, atomic=False)
    driver = driver_for(proxy, options)
    driver.prepare_paths()
    for name in sorted(prepared.files):
        print(args.out / name)
    if args.certificates == "self-signed" and prepared.certificates:
        print("note: certificates are self-signed placeholders (--certificates acm exports the real ones)")
    if args.check:
        try:
            driver.validate(prepared.main_file)
        except ProxyFailed as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_REFUSED
        print(f"{proxy} accepts {prepared.main_file}")
    return EXIT_OK


def _certificate_source(args: argparse.Namespace) -> Any:
    from agent.certs import AcmCertificateSource, CachingCertificateSource, SelfSignedCertificateSource

    if args.certificates == "self-signed":
        return SelfSignedCertificateSource()
    if args.certificates == "acm":
        import boto3

        region = getattr(args, "region", None)
        return CachingCertificateSource(AcmCertificateSource(boto3.client("acm", region_name=region)))
    raise ValueError(f"--certificates must be 'self-signed' or 'acm', not {args.certificates!r}")


# --- run ------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from agent.clock import SystemClock
    from agent.control import HttpControlPlaneClient, instance_credentials
    from agent.dataplane import ProxyDataPlane
    from agent.identity import InstanceMetadata, MetadataUnavailable, resolve_identity
    from agent.loop import Agent
    from agent.metrics import SystemSampler

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    metadata = InstanceMetadata()
    try:
        region = args.region or metadata.region()
        identity = resolve_identity(
            args.lb_id, args.lbvm_id, instance_id=args.instance_id, subnet_id=args.subnet_id, metadata=metadata
        )
    except MetadataUnavailable as exc:
        return _fail(f"{exc} (not on EC2? pass --region, --instance-id and --subnet-id)")
    args.region = region
    control = HttpControlPlaneClient(
        args.agent_endpoint, region, None if args.unsigned else instance_credentials(region)
    )
    dataplane = ProxyDataPlane(args.proxy, args.state_dir, _options(args), _certificate_source(args))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    agent = Agent(
        identity,
        control,
        dataplane,
        clock=SystemClock(stop),
        rng=random.Random(),
        sampler=None if args.no_metrics else SystemSampler(),
    )
    agent.run(stop.is_set)
    return EXIT_OK


# --- user data ------------------------------------------------------------------------


def _user_data(args: argparse.Namespace) -> int:
    from lbcp.bootstrap import user_data

    try:
        script = user_data(
            args.lb_id,
            args.lbvm_id,
            args.agent_endpoint,
            args.proxy,
            args.artifact,
            args.region,
            agent_artifact_sha256=args.artifact_sha256,
            waf_bundle_url=args.waf_bundle,
            waf_bundle_sha256=args.waf_bundle_sha256,
        )
    except ValueError as exc:
        return _fail(str(exc))
    sys.stdout.write(script)
    return EXIT_OK


# --- package ------------------------------------------------------------------------------


def _package(args: argparse.Namespace) -> int:
    from agent.package import build_artifact

    print(build_artifact(args.out, with_dependencies=not args.no_deps, arch=args.arch))
    return EXIT_OK
