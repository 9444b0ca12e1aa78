"""What the agent gets from AWS and the machine: IMDSv2 identity, ACM certificates."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from moto import mock_aws

from agent.certs import (
    AcmCertificateSource,
    CachingCertificateSource,
    CertificateUnavailable,
    StaticCertificateSource,
    write_certificates,
)
from agent.identity import InstanceMetadata, MetadataUnavailable, resolve_identity
from agent.model import TlsFiles
from tests.agent.helpers import CERT_ARN, LB_ID, certificate

REGION = "us-east-1"
SUBNET = "subnet-0123456789abcdef0"


# --- instance metadata (IMDSv2) --------------------------------------------------------


@pytest.fixture
def imds() -> Iterator[str]:
    """An instance metadata service that, like EC2's with IMDSv2 required, answers only with a token."""
    values = {
        "instance-id": "i-0abc123def4567890",
        "mac": "0a:1b:2c:3d:4e:5f",
        "network/interfaces/macs/0a:1b:2c:3d:4e:5f/subnet-id": SUBNET,
        "placement/region": "eu-west-1",
    }

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            assert self.path == "/latest/api/token" and self.headers["X-aws-ec2-metadata-token-ttl-seconds"]
            self._send(200, b"token-123")

        def do_GET(self) -> None:
            if self.headers.get("X-aws-ec2-metadata-token") != "token-123":
                self._send(401, b"")
                return
            value = values.get(self.path.removeprefix("/latest/meta-data/"))
            self._send(200, value.encode()) if value else self._send(404, b"")

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_identity_comes_from_imdsv2_for_what_the_control_plane_did_not_pass(imds: str) -> None:
    identity = resolve_identity(LB_ID, "lbvm-3", metadata=InstanceMetadata(imds))
    assert (identity.instance_id, identity.subnet_id) == ("i-0abc123def4567890", SUBNET)
    assert InstanceMetadata(imds).region() == "eu-west-1"
    given = resolve_identity(LB_ID, "lbvm-3", instance_id="i-given", subnet_id="subnet-given")
    assert (given.instance_id, given.subnet_id) == ("i-given", "subnet-given")  # no metadata call needed


def test_missing_metadata_is_an_error_not_a_guess(imds: str) -> None:
    with pytest.raises(MetadataUnavailable):
        InstanceMetadata(imds).get("no/such/key")


# --- certificates -----------------------------------------------------------------------


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("MOTO_ACM_VALIDATION_WAIT", "0")
    with mock_aws():
        yield


def test_acm_export_yields_an_unencrypted_key_matching_the_certificate(aws: None) -> None:
    acm = boto3.client("acm", region_name=REGION)
    arn = acm.request_certificate(DomainName="www.example.com", ValidationMethod="DNS", Options={"Export": "ENABLED"})[
        "CertificateArn"
    ]
    material = AcmCertificateSource(acm).fetch(arn)
    key = serialization.load_pem_private_key(material.private_key, password=None)  # no passphrase left on it
    from cryptography import x509

    leaf = x509.load_pem_x509_certificate(material.certificate)
    assert leaf.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    assert material.chain.startswith(b"-----BEGIN CERTIFICATE-----")


def test_a_certificate_acm_will_not_export_says_so(aws: None) -> None:
    acm = boto3.client("acm", region_name=REGION)
    material = certificate()
    arn = acm.import_certificate(Certificate=material.certificate, PrivateKey=material.private_key)["CertificateArn"]
    with pytest.raises(CertificateUnavailable, match="only exportable certificates"):
        AcmCertificateSource(acm).fetch(arn)


def test_key_material_is_written_0600_in_a_0700_directory(tmp_path: Path) -> None:
    release = tmp_path / "release"
    tls = TlsFiles(CERT_ARN, "cert-1", release)
    material = certificate()
    write_certificates((tls,), {"cert-1": material})
    assert stat.S_IMODE(os.stat(release / "certs").st_mode) == 0o700
    for path in (tls.certificate, tls.private_key, tls.bundle):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert tls.bundle.read_bytes().startswith(material.certificate.strip())
    assert b"PRIVATE KEY" in tls.bundle.read_bytes() and b"PRIVATE KEY" not in tls.certificate.read_bytes()


def test_the_cache_serves_within_its_ttl_and_fetches_again_after() -> None:
    now = [0.0]
    first, renewed = certificate("v1"), certificate("v2")
    inner = StaticCertificateSource({CERT_ARN: first})
    cache = CachingCertificateSource(inner, ttl_seconds=100, clock=lambda: now[0])
    assert cache.fetch(CERT_ARN) is first
    inner._materials[CERT_ARN] = renewed  # ACM renewed the certificate
    now[0] = 99
    assert cache.fetch(CERT_ARN) is first
    now[0] = 101
    assert cache.fetch(CERT_ARN) is renewed
