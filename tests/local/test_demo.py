"""`make demo` must keep working: run it as a user would and check its story."""

from __future__ import annotations

import re
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
    flat = " ".join(output.split())  # the narration wraps its lines
    for expected in [
        "201 web (lb-",
        "Idempotent-Replayed: true",
        "400 The request is invalid",
        "422 The spec cannot be satisfied",
        "Active in",  # converged
        "Clients connect where status.entry.localEndpoints says: 127.0.0.1:",
        "instance i-",  # the kill was noticed...
        "Active again",  # ...and healed
        "412 The resource has changed",
        "ScaledOut: scaled out 4 -> ",
        "ScaledIn: scaled in ",
        "Rolled: 4 LBVMs on c6i.xlarge",
        "routable LBVMs never fell below 4 (desired 4",
        # It explains itself before it goes: describe (with its conditions), then one why.
        "$ lbctl describe web",
        "Conditions: TYPE STATUS REASON SINCE MESSAGE Ready",
        "$ lbctl why web capacity desired capacity is ",
        # Real requests through the entry, told per step (the counts are the run's own).
        "traffic during the kill",
        "traffic during the scale-out to 6 and the scale-in to 4: ",
        "traffic during the rollout: ",
        "HTTP 404",
        "Left in the account: 0 running instances, 0 of our network",
        "Done in",
    ]:
        assert expected in flat, f"missing {expected!r} in:\n{output}"
    # Requests really flowed, and the picture of them was drawn.
    served = re.search(r"traffic during the rollout: (\d+) requests", flat)
    assert served is not None and int(served.group(1)) > 100, output
    picture = tmp_path / ".local" / "demo" / "traffic.png"
    assert picture.read_bytes().startswith(b"\x89PNG")
