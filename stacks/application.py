"""Build the CDK app: the ``Lbcp`` stack with cdk-nag checking every synth.

``app.py`` (the CDK CLI's entry point) and the tests build the app here, so
both synthesise the same thing with the same context and the same checks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

from aws_cdk import App, Environment

from stacks.config import load_cdk_json_context
from stacks.control_plane import ControlPlaneStack
from stacks.nag import add_nag_checks

STACK_NAME: Final = "Lbcp"
STACK_DESCRIPTION: Final = "lbcp: serverless control plane for self-managed load-balancer fleets"


def environment_from_env() -> Environment | None:
    """``CDK_DEFAULT_ACCOUNT``/``CDK_DEFAULT_REGION`` when set, else environment-agnostic."""
    account = os.environ.get("CDK_DEFAULT_ACCOUNT") or None
    region = os.environ.get("CDK_DEFAULT_REGION") or None
    if account is None and region is None:
        return None
    return Environment(account=account, region=region)


def build_app(
    *,
    env: Environment | None = None,
    extra_context: Mapping[str, Any] | None = None,
    outdir: str | None = None,
    builtin_cloudformation_validation: bool = True,
) -> tuple[App, ControlPlaneStack]:
    """The app and its stack, ready to ``synth()``.

    ``cdk.json``'s context is always loaded: the CLI passes it too (and its
    values win), but ``python app.py`` and the tests would otherwise run
    without the feature flags and our settings.

    ``builtin_cloudformation_validation`` is CDK's own schema check of the
    template (about 5 s of a synth here); the tests turn it off because they
    run cfn-lint, which checks the same schemas and more, on the same template.
    """
    context = {**load_cdk_json_context(), **(extra_context or {})}
    app = App(
        context=context,
        outdir=outdir,
        builtin_cloud_formation_validation=builtin_cloudformation_validation,
    )
    stack = ControlPlaneStack(app, STACK_NAME, env=env, description=STACK_DESCRIPTION)
    add_nag_checks(app)
    return app, stack
