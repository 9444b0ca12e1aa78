"""The API's OpenAPI document.

``python -m lbcp.api.openapi`` prints it; ``docs/openapi.json`` is the
committed copy (``make openapi``), and a test fails when the two differ.
"""

from __future__ import annotations

import json
from typing import Any

from lbcp.api.agent_app import agent_app
from lbcp.api.app import app
from lbcp.api.openapi_document import api_document


def openapi_document() -> dict[str, Any]:
    """The HTTP API's operations and the agent endpoint's."""
    return api_document(app, agent_app)


if __name__ == "__main__":
    print(json.dumps(openapi_document(), indent=2, sort_keys=True))
