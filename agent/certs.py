"""Certificate material for TLS listeners, fetched at run time and written with mode 0600.

The spec names certificates by ACM ARN. ACM hands out private keys only for
exportable certificates (issued by AWS Private CA, or public certificates
requested as exportable), through ``ExportCertificate`` with a passphrase: the
key arrives encrypted and is decrypted here, in memory, before it is written
for the proxy. Other sources serve tests and the local runtime.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.model import TlsFiles


class CertificateUnavailable(Exception):
    """The material for a certificate could not be obtained (now); the message says which and why."""


@dataclass(frozen=True)
class CertificateMaterial:
    certificate: bytes  # PEM, the leaf
    chain: bytes  # PEM, intermediates (may be empty)
    private_key: bytes  # PEM, unencrypted PKCS#8

    @property
    def full_chain(self) -> bytes:
        parts = [self.certificate.strip(), self.chain.strip()]
        return b"\n".join(part for part in parts if part) + b"\n"


class CertificateSource(Protocol):
    def fetch(self, certificate_arn: str) -> CertificateMaterial: ...


class AcmCertificateSource:
    """ACM ``ExportCertificate``: the instance role needs ``acm:ExportCertificate`` on the LB's certificates."""

    def __init__(self, acm_client: Any) -> None:
        self._acm = acm_client

    def fetch(self, certificate_arn: str) -> CertificateMaterial:
        from botocore.exceptions import BotoCoreError, ClientError

        # A fresh passphrase per export: it only protects the key on the wire and
        # in memory until we decrypt it. ACM refuses '#', '$' and '%'; hex has none.
        passphrase = secrets.token_hex(32).encode()
        try:
            exported = self._acm.export_certificate(CertificateArn=certificate_arn, Passphrase=passphrase)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise CertificateUnavailable(
                f"ACM would not export {certificate_arn}: {error.get('Code', 'error')}: {error.get('Message', exc)} "
                "(only exportable certificates can be served by LBVMs; see docs/agent.md)"
            ) from exc
        except BotoCoreError as exc:
            raise CertificateUnavailable(f"could not reach ACM to export {certificate_arn}: {exc}") from exc
        key = serialization.load_pem_private_key(exported["PrivateKey"].encode(), password=passphrase)
        return CertificateMaterial(
            certificate=exported["Certificate"].encode(),
            chain=exported.get("CertificateChain", "").encode(),
            private_key=key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )


class StaticCertificateSource:
    """Material held in memory, by ARN (tests, and the local runtime)."""

    def __init__(self, materials: Mapping[str, CertificateMaterial]) -> None:
        self._materials = dict(materials)

    def fetch(self, certificate_arn: str) -> CertificateMaterial:
        try:
            return self._materials[certificate_arn]
        except KeyError:
            raise CertificateUnavailable(f"no certificate material for {certificate_arn}") from None


class SelfSignedCertificateSource:
    """A self-signed certificate per ARN, made on first use: for ``agent render`` and local runs only."""

    def __init__(self, common_name: str = "lbcp.invalid", valid_days: int = 30) -> None:
        self._common_name = common_name
        self._valid_days = valid_days
        self._made: dict[str, CertificateMaterial] = {}
        self._lock = threading.Lock()

    def fetch(self, certificate_arn: str) -> CertificateMaterial:
        with self._lock:
            if certificate_arn not in self._made:
                now = datetime.now(UTC)
                self._made[certificate_arn] = self_signed(
                    self._common_name, now - timedelta(minutes=5), now + timedelta(days=self._valid_days)
                )
            return self._made[certificate_arn]


class CachingCertificateSource:
    """Keeps each certificate for ``ttl_seconds``: a reload should not cost an ACM export per listener.

    After the TTL the next apply fetches again, which is how a renewed certificate
    reaches the proxy without a new config version.
    """

    def __init__(
        self, inner: CertificateSource, ttl_seconds: float = 6 * 3600, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._inner = inner
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, CertificateMaterial]] = {}

    def fetch(self, certificate_arn: str) -> CertificateMaterial:
        now = self._clock()
        cached = self._cache.get(certificate_arn)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        material = self._inner.fetch(certificate_arn)
        self._cache[certificate_arn] = (now, material)
        return material


def self_signed(common_name: str, not_before: datetime, not_after: datetime) -> CertificateMaterial:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateMaterial(
        certificate=certificate.public_bytes(serialization.Encoding.PEM),
        chain=b"",
        private_key=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def write_certificates(files: tuple[TlsFiles, ...], materials: Mapping[str, CertificateMaterial]) -> None:
    """Write each certificate in the forms both proxies read: a directory 0700, files 0600."""
    for tls in files:
        material = materials[tls.name]
        directory = tls.certificate.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        _write_secret(tls.certificate, material.full_chain)
        _write_secret(tls.private_key, material.private_key)
        _write_secret(tls.bundle, material.full_chain + material.private_key.strip() + b"\n")


def _write_secret(path: Path, content: bytes) -> None:
    # Created 0600 from the start (no window in which the key is world-readable).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_TRUNC
    with os.fdopen(fd, "wb") as file:
        file.write(content)
