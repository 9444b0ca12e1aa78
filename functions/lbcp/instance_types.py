"""Facts about EC2 instance types that the API and the reconciler both need (light: the API imports it)."""

from __future__ import annotations

import re


def architecture(instance_type: str) -> str:
    """Graviton families carry a "g" after the generation digit (c7g, m6gd, t4g): arm64."""
    family = instance_type.split(".", 1)[0]
    return "arm64" if re.fullmatch(r"[a-z]+\d+g[a-z]*", family) else "x86_64"
