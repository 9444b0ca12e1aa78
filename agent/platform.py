"""Where this machine keeps the proxies, their modules and the Core Rule Set.

Debian/Ubuntu and Amazon Linux 2023 put NGINX's dynamic modules in different
places, and AL2023 has no ModSecurity package at all (an lbcp WAF bundle goes
to ``/opt/lbcp/waf``; see docs/agent.md). Detection looks in each known place;
anything can be overridden, which is how tests point at what the Makefile
installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

WAF_BUNDLE_DIR = Path("/opt/lbcp/waf")

NGINX_MODULE_DIRS = (
    Path("/usr/lib/nginx/modules"),  # Debian, Ubuntu
    Path("/usr/lib64/nginx/modules"),  # Amazon Linux 2023, Fedora, RHEL
    Path("/usr/share/nginx/modules"),
    WAF_BUNDLE_DIR / "modules",  # the lbcp WAF bundle (AL2023)
)
CRS_DIRS = (
    Path("/usr/share/modsecurity-crs"),  # Debian, Ubuntu: rules/ inside
    WAF_BUNDLE_DIR / "crs",
    Path("/usr/share/owasp-modsecurity-crs"),
)
STREAM_MODULE = "ngx_stream_module.so"
MODSECURITY_MODULE = "ngx_http_modsecurity_module.so"


@dataclass(frozen=True)
class Platform:
    haproxy: str = "haproxy"
    nginx: str = "nginx"
    # None: the module is not installed as a dynamic module (it may be built in:
    # ``nginx -t`` is the judge of that; for ModSecurity, rendering refuses).
    stream_module: Path | None = None
    modsecurity_module: Path | None = None
    crs_rules_dir: Path | None = None
    # Features newer than the oldest supported release (2.4) are used only where present.
    haproxy_version: tuple[int, int] = (2, 4)
    nginx_version: tuple[int, int, int] = (1, 18, 0)

    @property
    def haproxy_idle_close_on_response(self) -> bool:
        return self.haproxy_version >= (2, 6)

    @property
    def nginx_half_close(self) -> bool:
        """``proxy_half_close`` (stream) came in NGINX 1.21.4."""
        return self.nginx_version >= (1, 21, 4)

    @classmethod
    def detect(cls) -> Platform:
        haproxy = shutil.which("haproxy") or "haproxy"
        nginx = shutil.which("nginx") or str(_first_file([Path("/usr/sbin/nginx")]) or "nginx")
        return cls(
            haproxy=haproxy,
            haproxy_version=_haproxy_version(haproxy),
            nginx=nginx,
            nginx_version=_nginx_version(nginx),
            stream_module=_first_file([d / STREAM_MODULE for d in NGINX_MODULE_DIRS]),
            modsecurity_module=_first_file([d / MODSECURITY_MODULE for d in NGINX_MODULE_DIRS]),
            crs_rules_dir=_first_dir([d / "rules" for d in CRS_DIRS]),
        )


def _haproxy_version(binary: str) -> tuple[int, int]:
    try:
        output = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return (2, 4)
    match = re.search(r"version (\d+)\.(\d+)", output)
    return (int(match.group(1)), int(match.group(2))) if match else (2, 4)


def _nginx_version(binary: str) -> tuple[int, int, int]:
    try:
        # nginx -v writes "nginx version: nginx/1.22.1" to stderr.
        output = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10, check=False).stderr
    except (OSError, subprocess.TimeoutExpired):
        return (1, 18, 0)
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", output)
    return (int(match.group(1)), int(match.group(2)), int(match.group(3))) if match else (1, 18, 0)


def _first_file(candidates: list[Path]) -> Path | None:
    return next((path for path in candidates if path.is_file()), None)


def _first_dir(candidates: list[Path]) -> Path | None:
    return next((path for path in candidates if path.is_dir()), None)
