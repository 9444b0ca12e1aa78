"""The Lambda dependency layer, bundled without Docker.

``pip install --platform manylinux2014_aarch64 --only-binary=:all:
--python-version 3.13 --implementation cp`` fetches the wheels Lambda's arm64
Python 3.13 runtime needs, whatever the machine running the synth. The layer's
asset hash is computed from the requirements file and the pip target, so the
layer is rebuilt only when one of them changes (CDK reuses
``cdk.out/asset.<hash>`` otherwise).

There is no Docker fallback: if pip fails, the synth fails with pip's output.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import jsii
from aws_cdk import AssetHashType, BundlingOptions, BundlingOutput, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

# The Lambda platform the layer is built for; the functions' runtime and
# architecture must match it (see ``LAMBDA_RUNTIME`` and ``LAMBDA_ARCHITECTURE``).
PIP_PLATFORM: Final = "manylinux2014_aarch64"
PIP_PYTHON_VERSION: Final = "3.13"
PIP_IMPLEMENTATION: Final = "cp"
LAMBDA_RUNTIME: Final = lambda_.Runtime.PYTHON_3_13
LAMBDA_ARCHITECTURE: Final = lambda_.Architecture.ARM_64

# Bump when the bundling procedure changes in a way the hash cannot see.
_BUNDLER_VERSION: Final = "1"


def pip_install_command(requirements: Path, target: Path) -> list[str]:
    """The pip command that fills ``target`` with the layer's packages."""
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--requirement",
        str(requirements),
        "--target",
        str(target),
        "--platform",
        PIP_PLATFORM,
        "--only-binary=:all:",
        "--python-version",
        PIP_PYTHON_VERSION,
        "--implementation",
        PIP_IMPLEMENTATION,
        # Byte code compiled by this interpreter would be useless on 3.13.
        "--no-compile",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
    ]


def requirements_hash(requirements: Path) -> str:
    """The layer's custom asset hash: the requirements and how they are installed."""
    digest = hashlib.sha256()
    digest.update(requirements.read_bytes())
    for part in (_BUNDLER_VERSION, PIP_PLATFORM, PIP_PYTHON_VERSION, PIP_IMPLEMENTATION):
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()


class BundlingError(RuntimeError):
    """pip could not build the dependency layer."""


@jsii.implements(ILocalBundling)
class PipLayerBundler:
    """Local bundling: ``pip install`` into ``<output>/python`` (the layer's path)."""

    def __init__(self, requirements: Path) -> None:
        self._requirements = requirements

    # jsii passes the BundlingOptions positionally; they are not needed here.
    def try_bundle(self, output_dir: str, *_options: Any, **_kw_options: Any) -> bool:
        target = Path(output_dir) / "python"
        command = pip_install_command(self._requirements, target)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            # Raising (rather than returning False) keeps CDK from falling back
            # to Docker bundling, which this project does not use.
            raise BundlingError(
                f"building the Lambda dependency layer failed (exit {result.returncode}):\n"
                f"$ {' '.join(command)}\n{result.stdout}{result.stderr}"
            )
        # Console scripts (with this machine's interpreter path) are of no use in a layer.
        shutil.rmtree(target / "bin", ignore_errors=True)
        return True


class DependenciesLayer(Construct):
    """One layer with the third-party packages of every function."""

    def __init__(self, scope: Construct, construct_id: str, *, requirements: Path) -> None:
        super().__init__(scope, construct_id)
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            description=f"Dependencies from {requirements.name} (cp313, arm64)",
            compatible_runtimes=[LAMBDA_RUNTIME],
            compatible_architectures=[LAMBDA_ARCHITECTURE],
            code=lambda_.Code.from_asset(
                str(requirements.parent),
                asset_hash_type=AssetHashType.CUSTOM,
                asset_hash=requirements_hash(requirements),
                bundling=BundlingOptions(
                    # Never pulled: local bundling either succeeds or raises.
                    image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.13"),
                    local=PipLayerBundler(requirements),
                    output_type=BundlingOutput.NOT_ARCHIVED,
                ),
            ),
        )
