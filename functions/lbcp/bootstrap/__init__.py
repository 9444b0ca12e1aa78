"""The user data that turns a stock Amazon Linux 2023 instance into an LBVM.

The reconciler calls ``user_data(...)`` when it launches an LBVM (so it lives
with the control plane's code; ``python -m agent user-data`` prints it too). The
script installs Python, the proxy (and the WAF from an lbcp bundle, since
AL2023 has no ModSecurity packages), unpacks the agent from its artifact,
writes the ``lbcp-agent`` systemd unit and starts it.

Every value is checked against a strict pattern before it is written into
the script or the unit, and shell-quoted as well: user data runs as root.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import jinja2

MAX_USER_DATA_BYTES = 16384  # EC2's limit (before base64)
INSTALL_DIR = "/opt/lbcp/agent"
PYTHON = "/usr/bin/python3.11"
SUPPORTED_PROXIES = ("haproxy", "nginx")

_PATTERNS = {
    "lb_id": re.compile(r"lb-[0-9a-f]{17}"),
    "lbvm_id": re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"),
    "endpoint": re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/-]*)?"),
    "region": re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]"),
    "agent_artifact_url": re.compile(r"(?:s3|https)://[A-Za-z0-9._~/:=+-]+"),
    "waf_bundle_url": re.compile(r"(?:s3|https)://[A-Za-z0-9._~/:=+-]+"),
    "sha256": re.compile(r"[0-9a-f]{64}"),
}

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)
_ENV.filters["sh"] = shlex.quote


def _check(name: str, value: str, pattern: str | None = None) -> str:
    if not _PATTERNS[pattern or name].fullmatch(value):
        raise ValueError(f"{name} {value!r} is not valid here")
    return value


def systemd_unit(
    lb_id: str,
    lbvm_id: str,
    endpoint: str,
    proxy: str,
    region: str,
    *,
    python: str = PYTHON,
    install_dir: str = INSTALL_DIR,
) -> str:
    """The ``lbcp-agent.service`` unit (values already checked: no systemd specifiers, no quoting needed)."""
    if proxy not in SUPPORTED_PROXIES:
        raise ValueError(f"proxy must be one of {', '.join(SUPPORTED_PROXIES)}")
    return _ENV.get_template("lbcp-agent.service.j2").render(
        lb_id=_check("lb_id", lb_id),
        lbvm_id=_check("lbvm_id", lbvm_id),
        endpoint=_check("endpoint", endpoint),
        proxy=proxy,
        proxy_user=proxy,  # both AL2023 packages create a user named after the proxy
        region=_check("region", region),
        python=python,
        install_dir=install_dir,
    )


def user_data(  # noqa: PLR0917 (the control plane's call: six positional facts about one LBVM)
    lb_id: str,
    lbvm_id: str,
    endpoint: str,
    proxy: str,
    agent_artifact_url: str,
    region: str,
    *,
    agent_artifact_sha256: str | None = None,
    waf_bundle_url: str | None = None,
    waf_bundle_sha256: str | None = None,
) -> str:
    """A cloud-init shell script for Amazon Linux 2023 (under EC2's 16 KiB user-data limit)."""
    unit = systemd_unit(lb_id, lbvm_id, endpoint, proxy, region)
    _check("agent_artifact_url", agent_artifact_url)
    if waf_bundle_url is not None:
        _check("waf_bundle_url", waf_bundle_url)
    for name, digest in (("agent_artifact_sha256", agent_artifact_sha256), ("waf_bundle_sha256", waf_bundle_sha256)):
        if digest is not None:
            _check(name, digest, "sha256")
    script = _ENV.get_template("user_data.sh.j2").render(
        lb_id=lb_id,
        lbvm_id=lbvm_id,
        proxy=proxy,
        region=region,
        agent_artifact_url=agent_artifact_url,
        agent_artifact_sha256=agent_artifact_sha256,
        waf_bundle_url=waf_bundle_url,
        waf_bundle_sha256=waf_bundle_sha256,
        install_dir=INSTALL_DIR,
        unit=unit,
    )
    if len(script.encode()) > MAX_USER_DATA_BYTES:
        raise ValueError(f"user data is {len(script.encode())} bytes; EC2 allows {MAX_USER_DATA_BYTES}")
    return script
