"""Free ports: the kernel picks port-0 binds at random, so plain probes repeat (2000 probes repeat about 130 ports)."""

from __future__ import annotations

import socket

from lbcp_local.ports import LOOPBACK, free_port


def test_no_port_is_handed_out_twice() -> None:
    ports = [free_port() for _ in range(2000)]
    assert len(set(ports)) == len(ports)


def test_a_port_handed_out_can_be_listened_on() -> None:
    port = free_port()
    with socket.socket() as listener:
        listener.bind((LOOPBACK, port))
        listener.listen()
        assert listener.getsockname() == (LOOPBACK, port)
