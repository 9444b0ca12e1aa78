"""Cold import time of the API handler: what a Lambda cold start pays before the first request.

Each sample is a fresh interpreter that imports ``handlers.api`` (with its
environment set as the stack sets it) and reports the import's wall time.
The interpreter's own start-up is excluded, as it is in Lambda's init phase.

    .venv/bin/python bench/cold_import.py [--runs 15] [--module handlers.api]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

PROBE = """
import time
started = time.perf_counter()
import {module}
elapsed = time.perf_counter() - started
print(f"{{elapsed * 1000:.1f}}")
"""


def sample(module: str) -> float:
    env = dict(os.environ)
    env.update(
        LBCP_TABLE_NAME="lbcp",
        POWERTOOLS_SERVICE_NAME="lbcp-api",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
    )
    output = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)], env=env, check=True, capture_output=True, text=True
    ).stdout
    return float(output.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--module", default="handlers.api")
    args = parser.parse_args()
    sample(args.module)  # warm the page cache and byte-code, as a provisioned runtime would be
    times = sorted(sample(args.module) for _ in range(args.runs))
    print(
        f"cold import of {args.module} over {args.runs} fresh interpreters: "
        f"median {statistics.median(times):.0f} ms, min {times[0]:.0f} ms, max {times[-1]:.0f} ms "
        f"(target < 250 ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
