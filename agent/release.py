"""A release: one config version rendered for one proxy, with its certificates, in its own directory.

Preparing a release (model, templates, certificate material) happens entirely
in memory, so a spec this LBVM cannot serve, or a certificate that cannot be
fetched, fails before anything is written. Releases are immutable once
written; the data plane points the proxy at one through a symlink.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from agent import __version__
from agent.certs import CertificateMaterial, CertificateSource, write_certificates
from agent.model import ProxyModel, RenderOptions, build_model
from agent.render import MAIN_FILE, ProxyName, render
from lbcp.models.agent import AgentConfig

RELEASE_INFO = "release.json"


@dataclass(frozen=True)
class PreparedRelease:
    model: ProxyModel
    proxy: ProxyName
    files: dict[str, str]
    certificates: dict[str, CertificateMaterial]

    @property
    def directory(self) -> Path:
        return self.model.release_dir

    @property
    def main_file(self) -> Path:
        return self.directory / MAIN_FILE[self.proxy]


def prepare(
    config: AgentConfig,
    proxy: ProxyName,
    options: RenderOptions,
    certificates: CertificateSource,
    *,
    releases_dir: Path | None = None,
    directory: Path | None = None,
) -> PreparedRelease:
    """Everything a release holds, in memory; raises RenderError or CertificateUnavailable.

    The release goes to ``directory``, or to ``releases_dir/<name>`` where the
    name (``v<version>-<digest>``) is the same for the same inputs, so applying
    an unchanged config finds its release already there.
    """
    wanted = {listener.certificate_arn for listener in config.spec.listeners if listener.certificate_arn}
    arns = [] if options.drained else sorted(wanted)
    by_arn = {arn: certificates.fetch(arn) for arn in arns}
    if directory is None:
        if releases_dir is None:
            raise ValueError("prepare() needs a directory or a releases_dir")
        directory = releases_dir / _name(config, proxy, options, by_arn)
    model = build_model(
        config.spec,
        load_balancer_id=config.load_balancer_id,
        version=config.config_version,
        release_dir=directory.resolve(),
        options=replace(options, run_dir=options.run_dir.resolve(), log_dir=options.log_dir.resolve()),
    )
    files = render(model, proxy)
    materials = {tls.name: by_arn[tls.certificate_arn] for tls in model.certificates}
    return PreparedRelease(model=model, proxy=proxy, files=files, certificates=materials)


def _name(
    config: AgentConfig, proxy: ProxyName, options: RenderOptions, materials: dict[str, CertificateMaterial]
) -> str:
    # The digest covers everything that shapes the files (the config, the machine's
    # options, the certificate material, the agent's own version) rather than the
    # rendered text, which contains the release's own path.
    digest = hashlib.sha256()
    digest.update(config.model_dump_json(by_alias=True).encode())
    digest.update(f"{proxy}|{options!r}|{__version__}".encode())
    for arn in sorted(materials):
        material = materials[arn]
        digest.update(arn.encode() + material.certificate + material.chain + material.private_key)
    drained = "-drained" if options.drained else ""
    return f"v{config.config_version}-{digest.hexdigest()[:12]}{drained}"


def write(release: PreparedRelease, *, atomic: bool = True) -> None:
    """Write a prepared release into its directory.

    Atomic (the default): into a sibling temporary directory renamed into place,
    so a release directory is either complete or absent.
    """
    target = release.directory
    if not atomic:
        _write_into(release, target)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _write_into(release, staging)
        os.chmod(staging, 0o755)  # mkdtemp makes it 0700; the certs/ inside stay 0700
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_into(release: PreparedRelease, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for relative, text in release.files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    staged = [replace(tls, release_dir=directory) for tls in release.model.certificates]
    write_certificates(tuple(staged), release.certificates)
    info = {
        "version": release.model.version,
        "loadBalancerId": release.model.load_balancer_id,
        "proxy": release.proxy,
        "drained": release.model.options.drained,
        "agentVersion": __version__,
    }
    (directory / RELEASE_INFO).write_text(json.dumps(info, indent=2) + "\n")


def read_info(directory: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((directory / RELEASE_INFO).read_text())
    return loaded
