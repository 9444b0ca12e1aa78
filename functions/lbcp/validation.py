"""Turning untrusted input into a valid spec, or into field errors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from lbcp.errors import FieldError, Location, PathPart, SpecRejected
from lbcp.logic.spec_rules import check_spec
from lbcp.models.spec import PATTERN_HINTS, LoadBalancerSpec

# Clearer words for the pydantic error types a client meets most.
_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "list_type": "must be a JSON array",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
}


def errors_from_pydantic(
    errors: Iterable[Mapping[str, Any]], location: Location = "body", drop_prefix: int = 0
) -> list[FieldError]:
    """Convert pydantic's error dicts (``loc``, ``msg``, ``type``) into FieldErrors.

    ``drop_prefix`` removes leading ``loc`` parts that are not part of the
    client's document (Powertools prefixes body errors with ``"body"``).
    """
    result = []
    for error in errors:
        loc: Sequence[Any] = tuple(error.get("loc", ()))[drop_prefix:]
        # pydantic marks an invalid dict key with a trailing "[key]", and
        # validators wrapped by pydantic add a function name; neither is part
        # of the client's document.
        is_key = bool(loc) and loc[-1] == "[key]"
        path: tuple[PathPart, ...] = tuple(
            part for part in loc if isinstance(part, int) or (part != "[key]" and not str(part).startswith("function-"))
        )
        code = str(error.get("type", "invalid"))
        pattern = (error.get("ctx") or {}).get("pattern")
        message = PATTERN_HINTS.get(pattern) if code == "string_pattern_mismatch" and pattern else None
        message = message or _MESSAGES.get(code) or str(error.get("msg", "invalid value"))
        message = message.removeprefix("Value error, ").replace("Input should be", "must be")
        if is_key:
            message = f"the key {message}"
        result.append(FieldError(path=path, message=message, code=code, location=location))
    return result


def parse_spec(document: Any) -> LoadBalancerSpec:
    """Validate a decoded JSON document as a spec: shape first, then cross-field rules.

    Raises ``SpecRejected`` (a 400) naming every offending field.
    """
    try:
        spec = LoadBalancerSpec.model_validate(document)
    except ValidationError as exc:
        raise SpecRejected(errors_from_pydantic(exc.errors())) from None
    check_rules(spec)
    return spec


def check_rules(spec: LoadBalancerSpec) -> None:
    errors = check_spec(spec)
    if errors:
        raise SpecRejected(errors)
