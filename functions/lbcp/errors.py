"""Field-level errors: what was wrong, and exactly where.

Every rejection names its field, as a readable path (``listeners[0].port``)
and as a JSON pointer (``#/listeners/0/port``, RFC 9457 style), so both people
and programs can find the offending value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

PathPart = str | int
Location = Literal["body", "header", "query", "path"]


@dataclass(frozen=True)
class FieldError:
    path: tuple[PathPart, ...]
    message: str
    code: str
    location: Location = "body"

    @property
    def field(self) -> str:
        return format_field(self.path, self.location)

    @property
    def pointer(self) -> str | None:
        """A JSON pointer into the request body; headers and parameters have none."""
        if self.location != "body":
            return None
        return "#" + "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in self.path)

    def to_json(self) -> dict[str, str]:
        result = {"field": self.field, "in": self.location, "code": self.code, "message": self.message}
        if self.pointer is not None:
            result["pointer"] = self.pointer
        return result


def format_field(path: Sequence[PathPart], location: Location = "body") -> str:
    """``("listeners", 0, "port")`` -> ``listeners[0].port``; the empty path is the whole body."""
    if not path:
        return "(request body)" if location == "body" else f"({location})"
    if location != "body":
        return ".".join(str(part) for part in path)
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += ("." if text else "") + part
        else:
            # Keys that would be ambiguous or invisible in dotted form: "", "a.b", "x[0]".
            text += "[" + json.dumps(part) + "]"
    return text


_PLAIN_KEY = re.compile(r"[^\s.\[\]\"]+")


class SpecRejected(Exception):
    """A spec that is malformed (400) or well-formed but impossible (422)."""

    def __init__(self, errors: Sequence[FieldError], *, unprocessable: bool = False) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = list(errors)
        self.unprocessable = unprocessable
