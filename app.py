#!/usr/bin/env python3
"""The CDK app: one stack, ``Lbcp``, checked by cdk-nag on every synth.

Synthesises offline with no credentials (no lookups). The account and region
come from ``CDK_DEFAULT_ACCOUNT``/``CDK_DEFAULT_REGION`` when set (the CLI sets
them from the active profile, if any); otherwise the stack is
environment-agnostic. An unacknowledged cdk-nag finding fails the synth.
"""

from __future__ import annotations

from stacks.application import build_app, environment_from_env


def main() -> None:
    app, _stack = build_app(env=environment_from_env())
    app.synth()


if __name__ == "__main__":
    main()
