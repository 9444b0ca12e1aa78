"""``python -m agent render``: files the proxy accepts, or a clear refusal and nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.platform import Platform
from tests.agent.helpers import CERT_ARN, backend, spec_document


def _agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], capture_output=True, text=True, check=False, timeout=60
    )


def _machine(tmp_path: Path) -> list[str]:
    return ["--run-dir", str(tmp_path / "run"), "--log-dir", str(tmp_path / "log")]


def _https_spec(**extra: Any) -> dict[str, Any]:
    return spec_document(
        listeners=[
            {"protocol": "HTTP", "port": 8080, "defaultBackend": "app"},
            {
                "protocol": "HTTPS",
                "port": 8443,
                "certificateArn": CERT_ARN,
                "defaultBackend": "app",
                "rules": [{"pathPrefix": "/api/", "backend": "api"}],
            },
        ],
        backends=[backend("app", 9000), backend("api", 9001)],
        **extra,
    )


@pytest.mark.proxies
def test_render_writes_a_config_and_certificates_that_haproxy_accepts(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(_https_spec()))
    out = tmp_path / "out"
    result = _agent(
        "render", "--spec", str(spec), "--proxy", "haproxy", "--out", str(out), "--check", *_machine(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert (out / "haproxy.cfg").is_file() and len(list((out / "certs").glob("*.pem"))) == 1
    assert "haproxy accepts" in result.stdout and "self-signed placeholders" in result.stdout
    assert "use_backend b_api_http if r0_path" in (out / "haproxy.cfg").read_text()


@pytest.mark.proxies
def test_render_takes_yaml_and_writes_nginx_with_its_waf_rules(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(_https_spec(proxy="nginx", waf={"enabled": True, "mode": "block"})))
    out = tmp_path / "out"
    result = _agent("render", "--spec", str(spec), "--out", str(out), "--check", *_machine(tmp_path))
    assert result.returncode == 0, result.stderr
    assert {path.name for path in out.iterdir()} >= {"nginx.conf", "modsecurity.conf", "certs"}
    assert "SecRuleEngine On" in (out / "modsecurity.conf").read_text()


@pytest.mark.proxies
@pytest.mark.parametrize("spec_proxy", ["haproxy", None])
def test_the_proxy_flag_applies_before_the_spec_rules(spec_proxy: str | None, tmp_path: Path) -> None:
    # The WAF runs on NGINX: --proxy nginx makes a WAF spec whole, whatever its own proxy says.
    document = _https_spec(proxy=spec_proxy, waf={"enabled": True, "mode": "block"})
    if spec_proxy is None:
        del document["proxy"]
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(document))
    out = tmp_path / "out"
    result = _agent(
        "render", "--spec", str(spec), "--proxy", "nginx", "--out", str(out), "--check", *_machine(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert "SecRuleEngine On" in (out / "modsecurity.conf").read_text()
    assert "nginx accepts" in result.stdout


@pytest.mark.proxies
@pytest.mark.parametrize(
    ("document", "main_file", "check"),
    [
        (_https_spec(proxy="haproxy"), "haproxy.cfg", [Platform.detect().haproxy, "-c", "-f"]),
        (_https_spec(proxy="nginx", waf={"enabled": True}), "nginx.conf", [Platform.detect().nginx, "-t", "-c"]),
    ],
    ids=["haproxy", "nginx-waf"],
)
def test_what_render_writes_passes_the_proxys_own_check_by_itself(
    document: dict[str, Any], main_file: str, check: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No machine options and a relative --out: the run and log directories go under it.
    monkeypatch.chdir(tmp_path)
    Path("spec.json").write_text(json.dumps(document))
    result = _agent("render", "--spec", "spec.json", "--out", "out")
    assert result.returncode == 0, result.stderr
    checked = subprocess.run([*check, str(tmp_path / "out" / main_file)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    assert str(tmp_path / "out" / "run") in Path("out", main_file).read_text()


def test_an_invalid_spec_exits_2_names_every_bad_field_and_writes_nothing(tmp_path: Path) -> None:
    document = _https_spec()
    document["listeners"][1]["port"] = 8080
    document["listeners"][0]["defaultBackend"] = "nope"
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(document))
    out = tmp_path / "out"
    result = _agent("render", "--spec", str(spec), "--proxy", "nginx", "--out", str(out))
    assert result.returncode == 2
    assert "listeners[1].port: port 8080 is already used by listeners[0]" in result.stderr
    assert "listeners[0].defaultBackend: no backend is named 'nope'" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("document", "flags", "message"),
    [
        # The spec refuses the WAF on HAProxy (lbcp.logic.spec_rules)...
        (
            _https_spec(proxy="haproxy", waf={"enabled": True}),
            [],
            "waf.enabled: the WAF (ModSecurity v3 with the OWASP Core Rule Set) runs on NGINX",
        ),
        # ...and so does the renderer when --proxy overrides an NGINX spec.
        (
            _https_spec(proxy="nginx", waf={"enabled": True}),
            ["--proxy", "haproxy"],
            "runs on NGINX: set proxy to 'nginx'",
        ),
    ],
)
def test_the_waf_on_haproxy_is_refused_with_a_clear_error(
    document: dict[str, Any], flags: list[str], message: str, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(document))
    out = tmp_path / "out"
    result = _agent("render", "--spec", str(spec), "--out", str(out), *flags, *_machine(tmp_path))
    assert result.returncode == 2 and message in result.stderr
    assert not out.exists()


def test_unreadable_specs_exit_2(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    for path in (tmp_path / "broken.json", tmp_path / "missing.json"):
        result = _agent("render", "--spec", str(path), "--out", str(tmp_path / "out"))
        assert result.returncode == 2 and "cannot read" in result.stderr
    assert not (tmp_path / "out").exists()
