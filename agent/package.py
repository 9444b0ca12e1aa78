"""The agent artifact the bootstrap installs: one tarball, unpacked into a directory put on PYTHONPATH.

It holds the ``agent`` package (with its templates), the part of ``lbcp`` the
agent shares with the control plane (the protocol and spec models), and the
runtime dependencies as wheels built for the LBVM (CPython 3.11 on Amazon
Linux 2023, x86_64 or aarch64), pinned by the repository's requirements.txt.

    python -m agent package --out dist/lbcp-agent.tar.gz [--arch aarch64]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
# What the agent imports at run time (their own dependencies follow).
RUNTIME_REQUIREMENTS = ("pydantic", "boto3", "requests", "Jinja2", "PyYAML", "cryptography")
PLATFORMS = {"x86_64": "manylinux2014_x86_64", "aarch64": "manylinux2014_aarch64"}


def build_artifact(
    out: Path, *, with_dependencies: bool = True, arch: str = "x86_64", python_version: str = "3.11"
) -> Path:
    with tempfile.TemporaryDirectory(prefix="lbcp-agent-") as scratch:
        root = Path(scratch) / "root"
        _copy_package(REPOSITORY / "agent", root / "agent")
        _copy_package(REPOSITORY / "functions" / "lbcp", root / "lbcp")
        if with_dependencies:
            _install_dependencies(root, arch, python_version)
        out.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(out, "w:gz") as archive:
            for path in sorted(root.iterdir()):
                archive.add(path, arcname=path.name, filter=_reproducible)
    return out


def _copy_package(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _install_dependencies(root: Path, arch: str, python_version: str) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "--target",
            str(root),
            "--platform",
            PLATFORMS[arch],
            "--implementation",
            "cp",
            "--python-version",
            python_version,
            "--only-binary=:all:",
            "--constraint",
            str(REPOSITORY / "requirements.txt"),
            *RUNTIME_REQUIREMENTS,
        ],
        check=True,
    )


def _reproducible(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # Same sources, same tarball: owner and times do not leak into the artifact.
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    return info
