"""lbctl: the command-line client of the lbcp control plane (see ``lbctl --help``)."""

from __future__ import annotations

__version__ = "0.1.0"
