"""Free loopback ports for everything the local runtime, the benchmarks and the tests start on this machine.

Binding to port 0 asks the kernel for a free port, but the probe socket closes at once, so
two calls can return the same port before anything listens on it (CI saw two LBVMs of one
test handed the same port). Every port handed out is remembered for the life of the
process, and the kernel is asked again when it repeats one.
"""

from __future__ import annotations

import socket
import threading

LOOPBACK = "127.0.0.1"

_handed_out: set[tuple[str, int]] = set()
_lock = threading.Lock()
_ATTEMPTS = 64


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on now and that no earlier call in this process returned."""
    with _lock:
        for _ in range(_ATTEMPTS):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind((host, 0))
                port = int(probe.getsockname()[1])
            if (host, port) not in _handed_out:
                _handed_out.add((host, port))
                return port
    raise OSError(f"no new free port on {host} after {_ATTEMPTS} attempts")
