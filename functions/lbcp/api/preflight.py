"""Checks on the raw request before routing: size, media type, well-formed JSON.

They run before Powertools' validation so that a huge, binary or malformed
body gets a precise problem (413, 415, 400 with the JSON error position)
rather than a generic one, and so the body is decoded exactly once, strictly.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from lbcp.api.problems import ApiProblem
from lbcp.errors import FieldError

MAX_BODY_BYTES = 64 * 1024
MAX_DEPTH = 32  # a spec nests about 6 levels deep; anything far deeper is not one
JSON_MEDIA_TYPES = {
    "POST": ("application/json",),
    "PATCH": ("application/merge-patch+json", "application/json"),
}


class DuplicateKeyError(ValueError):
    pass


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # An object with a key twice means different things to different
            # parsers; refuse it rather than silently keep the last value.
            raise DuplicateKeyError(f"key {key!r} appears twice in one object")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_json_body(event: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The decoded JSON object of a POST or PATCH, and its media type in canonical (lowercase) form.

    Raises ``ApiProblem`` for a missing, oversized, non-JSON or non-object body.
    """
    method = str(event.get("requestContext", {}).get("http", {}).get("method", "")).upper()
    allowed_types = JSON_MEDIA_TYPES[method]
    raw = event.get("body")
    if raw is None or raw == "":
        raise ApiProblem(
            "invalid-request",
            "this request needs a JSON body",
            [FieldError((), "required", "missing")],
        )
    if event.get("isBase64Encoded"):
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise ApiProblem("invalid-request", "the body is not valid base64") from None
    else:
        data = raw.encode("utf-8", errors="surrogatepass") if isinstance(raw, str) else bytes(raw)
    if len(data) > MAX_BODY_BYTES:
        raise ApiProblem(
            "payload-too-large",
            f"the body is {len(data)} bytes; the limit is {MAX_BODY_BYTES} bytes",
            [FieldError((), f"at most {MAX_BODY_BYTES} bytes", "too_large")],
        )
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in allowed_types:
        raise ApiProblem(
            "unsupported-media-type",
            f"{method} takes {' or '.join(allowed_types)}, not {content_type or 'a body without Content-Type'}",
            [FieldError(("Content-Type",), f"must be {' or '.join(allowed_types)}", "unsupported", "header")],
        )
    try:
        text = data.decode("utf-8")
        document = json.loads(text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise ApiProblem(
            "invalid-request",
            f"the body is not UTF-8 (byte {exc.start})",
            [FieldError((), "not UTF-8", "invalid_encoding")],
        ) from None
    except json.JSONDecodeError as exc:
        raise ApiProblem(
            "invalid-request",
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            [FieldError((), f"{exc.msg} at line {exc.lineno} column {exc.colno}", "json_invalid")],
        ) from None
    except ValueError as exc:
        raise ApiProblem(
            "invalid-request",
            f"the body is not valid JSON: {exc}",
            [FieldError((), str(exc), "json_invalid")],
        ) from None
    except RecursionError:
        document, too_deep = None, True
    else:
        too_deep = _depth(document) > MAX_DEPTH
    if too_deep:
        raise ApiProblem(
            "invalid-request",
            f"the body nests deeper than {MAX_DEPTH} levels",
            [FieldError((), f"at most {MAX_DEPTH} levels of nesting", "too_deep")],
        )
    if not isinstance(document, dict):
        raise ApiProblem(
            "invalid-request",
            f"the body must be a JSON object, not {_json_kind(document)}",
            [FieldError((), "must be a JSON object", "model_type")],
        )
    return document, content_type


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"


def _depth(document: Any) -> int:
    """Nesting depth of a decoded JSON document, without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        if isinstance(value, dict):
            stack.extend((child, depth + 1) for child in value.values())
        elif isinstance(value, list):
            stack.extend((child, depth + 1) for child in value)
    return deepest
