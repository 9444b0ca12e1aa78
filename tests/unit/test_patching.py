"""JSON Merge Patch and change descriptions."""

from __future__ import annotations

from typing import Any

import pytest

from lbcp.logic.patching import (
    describe_changes,
    diff,
    immutable_violations,
    merge_patch,
    read_only_violations,
)

# RFC 7386, Appendix A: every example, verbatim.
RFC_7386_EXAMPLES: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC_7386_EXAMPLES)
def test_merge_patch_follows_rfc_7386(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


def test_merge_patch_does_not_modify_its_inputs() -> None:
    target = {"a": {"b": 1}}
    patch = {"a": {"b": 2}}
    merge_patch(target, patch)
    assert target == {"a": {"b": 1}}
    assert patch == {"a": {"b": 2}}


def test_diff_names_leaf_changes_in_document_order() -> None:
    old = {"capacity": {"min": 2, "max": 4}, "waf": {"enabled": False}, "subnetIds": ["a", "b"]}
    new = {"capacity": {"min": 2, "max": 6}, "waf": {"enabled": True}, "subnetIds": ["a", "b", "c"], "x": 1}
    text = describe_changes(diff(old, new))
    assert text == 'capacity.max 4 -> 6; waf.enabled false -> true; subnetIds ["a","b"] -> ["a","b","c"]; x set to 1'


def test_diff_of_equal_documents_is_empty() -> None:
    assert diff({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2}]}) == []


def test_describe_changes_truncates_long_lists() -> None:
    changes = diff({str(i): i for i in range(12)}, {str(i): i + 1 for i in range(12)})
    assert describe_changes(changes).endswith("; and 4 more")


def test_read_only_and_immutable_fields_are_named() -> None:
    assert [e.field for e in read_only_violations({"status": {}, "capacity": {}, "id": "x"})] == [
        "id",
        "status",
    ]
    current = {"name": "web", "type": "application", "vpcId": "vpc-1"}
    proposed = {"name": "web2", "type": "application", "vpcId": "vpc-2"}
    assert [e.field for e in immutable_violations(current, proposed)] == ["name", "vpcId"]
