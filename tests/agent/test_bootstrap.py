"""The LBVM's user data: a valid shell script, a valid systemd unit, strict about what it embeds."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from agent.package import build_artifact
from lbcp.bootstrap import MAX_USER_DATA_BYTES, systemd_unit, user_data

ARGS = (
    "lb-0123456789abcdef0",
    "lbvm-0a1b2c",
    "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws/",
    "nginx",
    "s3://lbcp-artifacts/agent/lbcp-agent-0.1.0.tar.gz",
    "eu-west-1",
)


@pytest.mark.parametrize("proxy", ["haproxy", "nginx"])
def test_user_data_is_a_bash_script_that_parses_and_fits_ec2s_limit(proxy: str, tmp_path: Path) -> None:
    script = user_data(
        *ARGS[:3], proxy, *ARGS[4:], agent_artifact_sha256="ab" * 32, waf_bundle_url="https://x.test/waf.tgz"
    )
    assert script.startswith("#!/bin/bash\n") and len(script.encode()) < MAX_USER_DATA_BYTES
    path = tmp_path / "user-data.sh"
    path.write_text(script)
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert f"PROXY={proxy}\n" in script and "AGENT_ARTIFACT_SHA256=" + "ab" * 32 in script
    assert "systemctl enable --now lbcp-agent.service" in script


def test_the_waf_bundle_build_script_parses() -> None:
    script = Path(__file__).resolve().parents[2] / "agent" / "scripts" / "build-waf-bundle.sh"
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_the_embedded_unit_is_exactly_the_unit_and_systemd_accepts_it(tmp_path: Path) -> None:
    script = user_data(*ARGS)
    embedded = re.search(r"<<'UNIT'\n(.*?)UNIT\n", script, re.DOTALL)
    assert embedded is not None
    assert embedded.group(1) == systemd_unit(ARGS[0], ARGS[1], ARGS[2], ARGS[3], ARGS[5])

    # systemd-analyze checks ExecStart's binary exists: verify the same unit with this machine's Python.
    unit = systemd_unit(ARGS[0], ARGS[1], ARGS[2], ARGS[3], ARGS[5], python=sys.executable)
    assert unit.replace(sys.executable, "/usr/bin/python3.11") == embedded.group(1)
    path = tmp_path / "lbcp-agent.service"
    path.write_text(unit)
    analyze = shutil.which("systemd-analyze")
    if analyze is not None:
        result = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True, check=False)
        # It exits 0 even for unknown keys: any complaint about our file is a failure.
        complaints = [line for line in (result.stdout + result.stderr).splitlines() if str(path) in line]
        assert result.returncode == 0 and complaints == [], result.stderr
    else:  # still parse it: sections and key=value lines only
        section = None
        for line in unit.splitlines():
            if line.startswith("[") and line.endswith("]"):
                section = line
            elif line and not line.startswith("#"):
                assert section is not None and re.fullmatch(r"[A-Za-z]+=.+", line), line
    service = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))
    assert service["KillMode"] == "process"  # an agent restart leaves the proxy serving
    assert service["Restart"] == "always" and service["RuntimeDirectoryPreserve"] == "yes"
    assert "--lb-id lb-0123456789abcdef0 --lbvm-id lbvm-0a1b2c" in service["ExecStart"]


@pytest.mark.parametrize(
    ("position", "value"),
    [
        (0, "lb-0123456789abcdef0; rm -rf /"),
        (1, "lbvm-1 --agent-endpoint http://evil"),
        (2, "https://ok.example.com/'$(id)'"),
        (3, "envoy"),
        (4, "http://plain-http.example.com/agent.tgz"),
        (5, "eu-west-1\nExecStartPre=/bin/sh"),
    ],
)
def test_values_that_could_inject_are_refused(position: int, value: str) -> None:
    args = list(ARGS)
    args[position] = value
    with pytest.raises(ValueError):
        user_data(*args)


def test_the_artifact_holds_the_agent_its_templates_and_the_shared_models(tmp_path: Path) -> None:
    artifact = build_artifact(tmp_path / "lbcp-agent.tar.gz", with_dependencies=False)
    with tarfile.open(artifact) as archive:
        names = set(archive.getnames())
        archive.extractall(tmp_path / "installed", filter="data")
    assert {"agent/__main__.py", "agent/templates/haproxy.cfg.j2", "lbcp/models/agent.py"} <= names
    assert not any("__pycache__" in name for name in names)
    # Runs from the unpacked directory alone (dependencies from this interpreter's site-packages).
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import agent.cli, lbcp.models.agent; "
        "print(agent.cli.__file__); print(lbcp.models.agent.__file__); agent.cli.main(['--version'])"
    )
    installed = tmp_path / "installed"
    result = subprocess.run(
        [sys.executable, "-I", "-c", probe, str(installed)], capture_output=True, text=True, check=False
    )
    agent_file, lbcp_file, version = result.stdout.splitlines()
    assert agent_file.startswith(str(installed)) and lbcp_file.startswith(str(installed)), result.stdout
    assert version == "lbcp-agent 0.1.0"
