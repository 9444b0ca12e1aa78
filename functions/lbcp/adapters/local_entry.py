"""The local runtime's entry, as the API sees it: a file saying where it listens for each load balancer.

Written by ``lbcp_local.entry`` (``{load balancer id: [{"listenerPort": 80,
"address": "127.0.0.1:PORT"}]}``); the stack never sets the variable that
names it, so in AWS there is nothing to read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_local_endpoints(path: str, load_balancer_id: str) -> list[dict[str, Any]]:
    """This load balancer's endpoints; [] until the local entry serves it (or if the file is unreadable)."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return []
    endpoints = document.get(load_balancer_id, []) if isinstance(document, dict) else []
    return [
        {"listenerPort": int(endpoint["listenerPort"]), "address": str(endpoint["address"])}
        for endpoint in endpoints
        if isinstance(endpoint, dict) and "listenerPort" in endpoint and "address" in endpoint
    ]
