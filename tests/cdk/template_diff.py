"""Compare two synthesized templates semantically: what a refactoring of the stacks changed.

``python -m tests.cdk.template_diff BEFORE.template.json AFTER.template.json``
prints every difference and exits 1 if there is one. Two things that change
without changing what is deployed are normalised first:

- asset hashes (64 hex digits, in S3 keys and asset paths): the code asset's
  hash follows every file of ``functions/``, not the stacks;
- the 8-hex-digit hash suffix of logical ids (``ApiFunction685AAB5B`` becomes
  ``ApiFunction``), everywhere they occur (keys, ``Ref``, ``Fn::GetAtt``,
  ``DependsOn``, cdk-nag ids), so that a moved construct shows as a rename.

A resource removed and another added with the same normalised body is
reported as a rename (a logical-id change: CloudFormation replaces it).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

_ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")
_ID_SUFFIX = re.compile(r"^(?P<base>[A-Za-z0-9]+?)[0-9A-F]{8}$")


def _normalised_ids(template: dict[str, Any]) -> dict[str, str]:
    """Logical id -> id without its hash suffix (kept whole where two would collide)."""
    ids = [*template.get("Resources", {}), *template.get("Outputs", {}), *template.get("Conditions", {})]
    stripped = {}
    for logical_id in ids:
        match = _ID_SUFFIX.match(logical_id)
        stripped[logical_id] = match["base"] if match else logical_id
    counts: dict[str, int] = {}
    for base in stripped.values():
        counts[base] = counts.get(base, 0) + 1
    return {logical_id: base if counts[base] == 1 else logical_id for logical_id, base in stripped.items()}


def normalise(template: dict[str, Any]) -> dict[str, Any]:
    """The template with asset hashes and logical-id hash suffixes replaced."""
    text = _ASSET_HASH.sub("<asset-hash>", json.dumps(template, sort_keys=True))
    renames = {old: new for old, new in _normalised_ids(template).items() if old != new}
    if renames:
        pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, renames), key=len, reverse=True)) + r")\b")
        text = pattern.sub(lambda match: renames[match[1]], text)
    normalised: dict[str, Any] = json.loads(text)
    return normalised


def _diff(before: Any, after: Any, path: str, out: list[str]) -> None:
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(before.keys() | after.keys()):
            where = f"{path}/{key}"
            if key not in after:
                out.append(f"- {where}: {json.dumps(before[key])[:200]}")
            elif key not in before:
                out.append(f"+ {where}: {json.dumps(after[key])[:200]}")
            else:
                _diff(before[key], after[key], where, out)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            _diff(old, new, f"{path}[{index}]", out)
    elif before != after:
        out.append(f"~ {path}: {json.dumps(before)[:300]} -> {json.dumps(after)[:300]}")


def _without_rename_noise(value: Any, renames: dict[str, str]) -> str:
    text = json.dumps(value, sort_keys=True)
    for old, new in renames.items():
        text = re.sub(rf"\b{re.escape(old)}\b", new, text)
    return text


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Every difference between the normalised templates, renames first."""
    old, new = normalise(before), normalise(after)
    old_resources, new_resources = old.get("Resources", {}), new.get("Resources", {})
    removed = {key: old_resources[key] for key in old_resources.keys() - new_resources.keys()}
    added = {key: new_resources[key] for key in new_resources.keys() - old_resources.keys()}
    lines: list[str] = []
    renames: dict[str, str] = {}
    # A rename also changes the resource's construct path (metadata) and the names
    # derived from its logical id (a policy's PolicyName): compare without either.
    for old_id, old_body in sorted(removed.items()):
        for new_id, new_body in sorted(added.items()):
            if new_id not in renames.values() and _body(old_body) == _body(new_body, {new_id: old_id}):
                renames[old_id] = new_id
                break
    for old_id, new_id in renames.items():
        lines.append(f"R Resources/{old_id} -> Resources/{new_id} (same properties)")
        old_resources = {new_id if key == old_id else key: value for key, value in old_resources.items()}
    # Compare the rest with the renamed ids substituted in the old template.
    old = json.loads(_without_rename_noise({**old, "Resources": old_resources}, renames))
    _diff(old, new, "", lines)
    return lines


def _body(resource: dict[str, Any], renames: dict[str, str] | None = None) -> str:
    return _without_rename_noise({k: v for k, v in resource.items() if k != "Metadata"}, renames or {})


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m tests.cdk.template_diff BEFORE.template.json AFTER.template.json", file=sys.stderr)
        return 2
    before, after = (json.loads(Path(arg).read_text(encoding="utf-8")) for arg in argv)
    lines = compare(before, after)
    for line in lines:
        print(line)
    counts = (len(before.get("Resources", {})), len(after.get("Resources", {})))
    print(f"{len(lines)} difference(s); resources: {counts[0]} before, {counts[1]} after")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
