"""A configuration the proxy refuses says why, in the agent's error (it reaches the heartbeat and the events)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.dataplane import ApplyError
from lbcp_local.ports import free_port
from tests.agent.conftest import DataPlaneFactory
from tests.agent.helpers import agent_config, backend, spec_document

pytestmark = pytest.mark.proxies


def test_haproxy_names_what_it_refused(make_dataplane: DataPlaneFactory, tmp_path: Path) -> None:
    # HAProxy takes socket paths of at most 97 characters; a longer run directory is a real mistake
    # to make (a deep state directory) and must not surface as an error without a reason.
    deep = tmp_path / ("d" * 100)
    dataplane = make_dataplane("haproxy", run_dir=deep / "run")
    port = free_port()
    document = spec_document(
        proxy="haproxy",
        listeners=[{"protocol": "HTTP", "port": port, "defaultBackend": "app"}],
        backends=[backend("app", free_port())],
    )
    with pytest.raises(ApplyError) as refused:
        dataplane.apply(agent_config(document, version=1))
    assert "haproxy -c refused the configuration" in str(refused.value)
    assert "too long" in str(refused.value)
