"""Every rendered configuration in a matrix of specs passes the proxy's own check (haproxy -c, nginx -t)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent import release
from agent.certs import CertificateSource
from agent.model import RenderOptions
from agent.platform import Platform
from agent.proxy.base import driver_for
from agent.proxy.process import ProxyFailed
from agent.render import ProxyName
from tests.agent.helpers import CERT_ARN, OTHER_CERT_ARN, agent_config, backend, spec_document

pytestmark = pytest.mark.proxies

HEALTH_HTTP = {"protocol": "HTTP", "path": "/healthz", "intervalSeconds": 5, "timeoutSeconds": 2}
HEALTH_HTTPS = {"protocol": "HTTPS", "path": "/status", "intervalSeconds": 10, "healthyThreshold": 2}
HEALTH_TCP = {"protocol": "TCP", "intervalSeconds": 3, "timeoutSeconds": 1, "unhealthyThreshold": 1}


def _application(proxy: str, **extra: Any) -> dict[str, Any]:
    return spec_document(
        proxy=proxy,
        listeners=[
            {"protocol": "HTTP", "port": 8080, "defaultBackend": "app"},
            {
                "protocol": "HTTPS",
                "port": 8443,
                "certificateArn": CERT_ARN,
                "defaultBackend": "app",
                "idleTimeoutSeconds": 300,
                "rules": [
                    {"host": "api.example.com", "pathPrefix": "/v1/", "backend": "api"},
                    {"host": "*.static.example.com", "backend": "static"},
                    {"pathPrefix": "/api/", "backend": "api"},
                ],
            },
        ],
        backends=[
            backend("app", 9000, 9001, health=HEALTH_HTTP),
            {"name": "api", "targets": [{"host": "::1", "port": 9002}, {"host": "localhost", "port": 9003}]},
            backend("static", 9004, health=HEALTH_TCP),
        ],
        **extra,
    )


SPECS: dict[str, dict[str, Any]] = {
    "application-http-only": spec_document(
        listeners=[{"protocol": "HTTP", "port": 8080, "defaultBackend": "app"}], backends=[backend("app", 9000)]
    ),
    "application-http-https-rules": _application("haproxy"),
    "application-nginx-rules": _application("nginx"),
    "application-waf-detect": _application("nginx", waf={"enabled": True, "mode": "detect"}),
    "application-waf-block-paranoia-3": _application(
        "nginx", waf={"enabled": True, "mode": "block", "paranoiaLevel": 3}
    ),
    "classic-all-protocols": spec_document(
        type="classic",
        listeners=[
            {"protocol": "HTTP", "port": 8080, "defaultBackend": "web"},
            {"protocol": "HTTPS", "port": 8443, "certificateArn": CERT_ARN, "defaultBackend": "web"},
            {"protocol": "TCP", "port": 5432, "defaultBackend": "db", "idleTimeoutSeconds": 3600},
            {"protocol": "TLS", "port": 6432, "certificateArn": OTHER_CERT_ARN, "defaultBackend": "db"},
        ],
        backends=[backend("web", 9000, health=HEALTH_HTTPS), backend("db", 9010, 9011, health=HEALTH_TCP)],
        drain={"timeoutSeconds": 900},
    ),
    "classic-tls-only": spec_document(
        type="classic",
        listeners=[{"protocol": "TLS", "port": 6432, "certificateArn": CERT_ARN, "defaultBackend": "db"}],
        backends=[backend("db", 9010)],
    ),
}
MATRIX = [
    (name, proxy)
    for name, document in SPECS.items()
    for proxy in ("haproxy", "nginx")
    if not (document.get("waf", {}).get("enabled") and proxy == "haproxy")  # refused by the spec: see test_cli
]


CASES = [(name, proxy, drained) for name, proxy in MATRIX for drained in (False, True)]


@pytest.mark.parametrize("case", CASES, ids=[f"{n}-{p}-{'drained' if d else 'serving'}" for n, p, d in CASES])
def test_the_proxy_accepts_the_rendered_config(
    case: tuple[str, ProxyName, bool], tmp_path: Path, platform: Platform, certificates: CertificateSource
) -> None:
    name, proxy, drained = case
    options = RenderOptions(run_dir=tmp_path / "run", log_dir=tmp_path / "log", platform=platform, drained=drained)
    prepared = release.prepare(
        agent_config(SPECS[name]), proxy, options, certificates, releases_dir=tmp_path / "releases"
    )
    release.write(prepared)
    driver_for(proxy, options).validate(prepared.main_file)  # raises ProxyFailed with the proxy's words


def test_the_check_is_real_a_broken_directive_is_refused(
    tmp_path: Path, platform: Platform, certificates: CertificateSource
) -> None:
    for proxy in ("haproxy", "nginx"):
        options = RenderOptions(run_dir=tmp_path / proxy / "run", log_dir=tmp_path / proxy / "log", platform=platform)
        prepared = release.prepare(
            agent_config(SPECS["application-http-only"]),
            proxy,
            options,
            certificates,
            directory=tmp_path / proxy / "rel",
        )
        broken = {
            name: text.replace("timeout connect 5s", "timeout connect five").replace(
                "proxy_connect_timeout 5s;", "proxy_connect_timeout five;"
            )
            for name, text in prepared.files.items()
        }
        release.write(replace(prepared, files=broken), atomic=False)
        with pytest.raises(ProxyFailed, match="refused"):
            driver_for(proxy, options).validate(prepared.main_file)
