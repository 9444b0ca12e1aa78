"""The seeded example spec: every caller gets a document of its own."""

from __future__ import annotations

from lbcp_local.seed import example_spec
from tests.conftest import Cloud


def test_editing_one_example_spec_leaves_the_next_one_alone(cloud: Cloud) -> None:
    # The bad-input table edits its copy in place (an empty host, port 0); a shared
    # target list once carried that edit into every later test's spec.
    first = example_spec(cloud.account)
    first["backends"][0]["targets"][0].update(host="", port=0)
    first["backends"][1]["targets"].clear()
    second = example_spec(cloud.account)
    assert second["backends"][0]["targets"][0] == {"host": "10.20.1.10", "port": 8080}
    assert second["backends"][1]["targets"] == [{"host": "10.20.1.20", "port": 9000}]
