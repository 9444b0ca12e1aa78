"""Cold import time of the API handler: what a Lambda cold start pays before the first request.

Each sample is a fresh interpreter that imports ``handlers.api`` (with its
environment set as the stack sets it) and reports the import's wall time.
The interpreter's own start-up is excluded (Lambda's runtime has started
before it imports the handler); the code is imported from ``functions/`` as
Lambda imports it from /var/task.

    .venv/bin/python bench/cold_import.py [--runs 15] [--module handlers.api]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

FUNCTIONS = Path(__file__).resolve().parents[1] / "functions"

PROBE = """
import time
started = time.perf_counter()
import {module}
imported = time.perf_counter()
from lbcp.api.app import dependencies
dependencies()  # what the first request adds before its first AWS call: botocore and a DynamoDB client
ready = time.perf_counter()
print(f"{{(imported - started) * 1000:.1f}} {{(ready - started) * 1000:.1f}}")
"""


def sample(module: str) -> tuple[float, float]:
    env = dict(os.environ)
    # Import the code from functions/ as Lambda does from /var/task, not through
    # the editable install's finder (which costs ~15 ms of its own).
    env["PYTHONPATH"] = str(FUNCTIONS)
    env.update(
        LBCP_TABLE_NAME="lbcp",
        POWERTOOLS_SERVICE_NAME="lbcp-api",
        PYDANTIC_DISABLE_PLUGINS="__all__",  # as the stack sets it
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
    )
    output = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)], env=env, check=True, capture_output=True, text=True
    ).stdout
    imported, ready = output.strip().splitlines()[-1].split()
    return float(imported), float(ready)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--module", default="handlers.api")
    args = parser.parse_args()
    sample(args.module)  # warm the page cache and byte-code, as a provisioned runtime would be
    samples = [sample(args.module) for _ in range(args.runs)]
    for label, times in (
        (f"cold import of {args.module}", sorted(s[0] for s in samples)),
        ("import + clients for the first request", sorted(s[1] for s in samples)),
    ):
        print(
            f"{label} over {args.runs} fresh interpreters: median {statistics.median(times):.0f} ms, "
            f"min {times[0]:.0f} ms, max {times[-1]:.0f} ms"
        )
    print("target: cold import under 250 ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
