"""The WAF: NGINX with ModSecurity v3 and the OWASP Core Rule Set, in block and in detect mode."""

from __future__ import annotations

import http.client
import re
from urllib.parse import quote

import pytest

from agent.dataplane import ProxyDataPlane
from lbcp_local.ports import free_port
from tests.agent.conftest import DataPlaneFactory
from tests.agent.helpers import Backends, agent_config, backend, port_of, spec_document, wait_until

pytestmark = pytest.mark.proxies

SQL_INJECTION = "/products?id=" + quote("1' OR '1'='1' --")
XSS = "/search?q=" + quote("<script>alert(document.cookie)</script>")
BENIGN = "/search?q=" + quote("blue running shoes")
HEADERS = {"Host": "shop.example.com", "User-Agent": "Mozilla/5.0 (lbcp test)", "Accept": "text/html"}


def _status(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers=HEADERS)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _error_log(dataplane: ProxyDataPlane) -> str:
    return (dataplane.options.log_dir / "nginx-error.log").read_text(errors="replace")


def _audit_entries(dataplane: ProxyDataPlane) -> list[dict[str, str]]:
    """The ModSecurity audit log as a list of transactions, each a dict of part letter -> text."""
    entries: dict[str, dict[str, str]] = {}
    entry = part = ""
    for line in (dataplane.options.log_dir / "modsec_audit.log").read_text(errors="replace").splitlines():
        marker = re.fullmatch(r"---(\w+)---([A-Z])--", line)
        if marker:
            entry, part = marker.groups()
            entries.setdefault(entry, {}).setdefault(part, "")
        elif entry:
            entries[entry][part] += line + "\n"
    return list(entries.values())


def test_block_mode_answers_403_to_attacks_and_detect_mode_logs_them(
    backends: Backends, make_dataplane: DataPlaneFactory
) -> None:
    app = backends.http("app")
    port = free_port()

    def config(mode: str, version: int) -> object:
        return agent_config(
            spec_document(
                proxy="nginx",
                listeners=[{"protocol": "HTTP", "port": port, "defaultBackend": "app"}],
                backends=[backend("app", port_of(app))],
                waf={"enabled": True, "mode": mode},
            ),
            version,
        )

    dataplane = make_dataplane("nginx")
    dataplane.apply(config("block", 1))  # type: ignore[arg-type]
    hits = app.hits
    assert _status(port, BENIGN) == 200
    assert _status(port, SQL_INJECTION) == 403
    assert _status(port, XSS) == 403
    assert app.hits == hits + 1  # the attacks never reached the backend
    blocked = _error_log(dataplane)
    assert "Access denied with code 403" in blocked and "949110" in blocked  # CRS anomaly-score block

    dataplane.apply(config("detect", 2))  # type: ignore[arg-type]
    # ModSecurity writes an entry in the logging phase, after the response has left: the client can
    # see its answer before the entry is complete (its Z part closes it). Count the blocked ones first.
    wait_until(lambda: sum("Z" in entry for entry in _audit_entries(dataplane)) >= 2, timeout=5)
    already = len(_audit_entries(dataplane))
    assert _status(port, SQL_INJECTION) == 200
    assert _status(port, XSS) == 200
    assert _status(port, BENIGN) == 200
    # Logged, not enforced: each attack has an audit entry with the rules that fired and the 200 it got.
    wait_until(lambda: sum("Z" in entry for entry in _audit_entries(dataplane)[already:]) >= 2, timeout=5)
    detected = _audit_entries(dataplane)[already:]
    assert len(detected) == 2, detected
    sqli, xss = detected
    assert sqli["B"].startswith(f"GET {SQL_INJECTION} ") and '[id "942100"]' in sqli["H"]
    assert xss["B"].startswith(f"GET {XSS} ") and '[id "941100"]' in xss["H"]
    for entry in detected:
        assert entry["F"].startswith("HTTP/1.1 200") and "ModSecurity: Warning" in entry["H"]
