"""Local input: spec and patch files (YAML or JSON), and merge patches built from ``--set``.

Files are read strictly, as the API reads JSON: a key twice in one mapping, a
second YAML document, NaN or a value JSON cannot carry (a YAML date) is a usage
error here rather than a surprise on the server.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from lbctl.errors import UsageError


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML keeps the last one silently)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in result:
            mark = key_node.start_mark
            raise UsageError(f"key {key!r} appears twice in one mapping (line {mark.line + 1})")
        result[key] = loader.construct_object(value_node, deep=deep)
    return result


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise UsageError(f"key {key!r} appears twice in one object")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise UsageError(f"{name} is not valid JSON")


def read_text(path: str) -> tuple[str, str]:
    """(text, a name for messages) of a file, or of stdin for ``-``."""
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        return Path(path).read_text(encoding="utf-8"), path
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None


def parse_document(text: str, name: str) -> dict[str, Any]:
    """A YAML or JSON document that must be one mapping (JSON is tried first, for its precise errors)."""
    if not text.strip():
        raise UsageError(f"{name}: empty; expected a YAML or JSON mapping")
    document: Any
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except UsageError as exc:
        raise UsageError(f"{name}: {exc}") from None
    except json.JSONDecodeError as json_error:
        if text.lstrip().startswith(("{", "[")) and name.lower().endswith(".json"):
            raise UsageError(
                f"{name}: not valid JSON: {json_error.msg} at line {json_error.lineno} column {json_error.colno}"
            ) from None
        document = _parse_yaml(text, name)
    if not isinstance(document, dict):
        raise UsageError(f"{name}: expected a mapping (an object), not {_kind(document)}")
    _check_json_compatible(document, name, "")
    return document


def _parse_yaml(text: str, name: str) -> Any:
    try:
        documents = [d for d in yaml.load_all(text, Loader=_StrictLoader) if d is not None]
    except UsageError as exc:
        raise UsageError(f"{name}: {exc}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{name}: not valid YAML or JSON: {_yaml_problem(exc)}") from None
    if len(documents) != 1:
        raise UsageError(f"{name}: expected one YAML document, found {len(documents)}")
    return documents[0]


def load_document(path: str) -> dict[str, Any]:
    text, name = read_text(path)
    return parse_document(text, name)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{problem} at line {mark.line + 1} column {mark.column + 1}" if mark is not None else str(problem)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def _check_json_compatible(value: Any, name: str, where: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise UsageError(f"{name}: key {key!r} at {where or '/'} must be a string; quote it")
            _check_json_compatible(item, name, f"{where}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json_compatible(item, name, f"{where}/{index}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{name}: {value} at {where} is not a JSON number")
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise UsageError(
            f"{name}: the value at {where} is {_kind(value)}, which JSON cannot carry; quote it to send a string"
        )


def parse_value(text: str) -> Any:
    """A ``--set`` value: JSON when it parses as JSON (8, true, null, "8", [..]), else the text as a string."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, UsageError):
        return text


def merge_patch_from_assignments(assignments: Sequence[str]) -> dict[str, Any]:
    """``["capacity.max=8", "waf.enabled=true"]`` -> ``{"capacity": {"max": 8}, "waf": {"enabled": true}}``."""
    patch: dict[str, Any] = {}
    assigned: dict[tuple[str, ...], str] = {}
    for assignment in assignments:
        path_text, equals, value_text = assignment.partition("=")
        if not equals:
            raise UsageError(f"--set {assignment!r}: expected PATH=VALUE, e.g. capacity.max=8")
        path = tuple(path_text.strip().split("."))
        if any(not part for part in path):
            raise UsageError(f"--set {assignment!r}: the path has an empty part")
        if any("[" in part or "]" in part for part in path):
            raise UsageError(
                f"--set {assignment!r}: a merge patch replaces lists whole; set the whole list "
                f'(e.g. --set \'subnetIds=["subnet-a","subnet-b"]\') or use -f'
            )
        for other, other_text in assigned.items():
            shorter, longer = sorted((other, path), key=len)
            if longer[: len(shorter)] == shorter:
                raise UsageError(f"--set {assignment!r} overlaps --set {other_text!r}")
        assigned[path] = assignment
        node = patch
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = parse_value(value_text)
    return patch


def leaf_paths(document: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The paths a merge patch sets: nested objects are walked, anything else is a leaf."""
    if isinstance(document, dict) and document:
        return [path for key, value in document.items() for path in leaf_paths(value, (*prefix, str(key)))]
    return [prefix]
