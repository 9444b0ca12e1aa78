"""The embedded AWS emulator: moto's server on loopback, and boto3 pointed at it."""

from __future__ import annotations

import logging
import os
import time
import urllib.request

from lbcp_local.ports import free_port

LOCAL_REGION = "us-east-1"


def point_boto3_at(endpoint_url: str, region: str = LOCAL_REGION) -> None:
    """Every boto3 client in this process (the handlers' too) talks to the emulator."""
    os.environ["AWS_ENDPOINT_URL"] = endpoint_url
    os.environ["AWS_ACCESS_KEY_ID"] = "local"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "local"
    os.environ["AWS_DEFAULT_REGION"] = region
    os.environ["AWS_REGION"] = region
    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)


class EmbeddedAws:
    """moto's threaded server, with Step Functions really executing state machines."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4566) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._server: object | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        # moto's Step Functions interpreter calls AWS at localhost:$MOTO_PORT.
        os.environ["MOTO_PORT"] = str(self.port)
        # Requested ACM certificates stay PENDING_VALIDATION (moto issues them after 60 s by default),
        # so the seeded pending certificate stays pending for as long as the runtime runs.
        os.environ["MOTO_ACM_VALIDATION_WAIT"] = str(10 * 365 * 24 * 3600)
        from moto import settings as moto_settings
        from moto.server import ThreadedMotoServer

        moto_settings.ACM_VALIDATION_WAIT = int(os.environ["MOTO_ACM_VALIDATION_WAIT"])

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log per emulated AWS call

        server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        server.start()
        self._server = server
        self._wait_ready()
        request = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/config",
            data=b'{"stepfunctions": {"execute_state_machine": true}}',
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5):
            pass

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()  # type: ignore[attr-defined]
            self._server = None
