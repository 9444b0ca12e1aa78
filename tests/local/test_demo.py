"""`make demo` must keep working: run it as a user would and check its story."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_the_demo_runs_to_the_end(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lbcp_local.demo"],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout
    for expected in [
        "201 web (lb-",
        "Idempotent-Replayed: true",
        "400 The request is invalid",
        "422 The spec cannot be satisfied",
        "Active in",  # converged
        "instance i-",  # the kill was noticed...
        "Active again",  # ...and healed
        "412 The resource has changed",
        "ScaledOut: scaled out 4 -> ",
        "ScaledIn: scaled in ",
        "Rolled: 4 LBVMs on c6i.xlarge",
        "routable LBVMs never fell below 4 (desired 4",
        "HTTP 404",
        "Left in the account: 0 running instances, 0 of our network",
        "Done in",
    ]:
        assert expected in output, f"missing {expected!r} in:\n{output}"
