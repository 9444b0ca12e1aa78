"""Just enough HTTP/2 (RFC 9113) to watch a proxy close a connection: frames, one GET, a GOAWAY.

No HTTP/2 library is in the lock, and a drain test needs only the frame layer: the preface,
SETTINGS and their ACK, one request's HEADERS (HPACK literals without Huffman coding or
indexing, which every decoder accepts), and the frames that come back, read raw.
"""

from __future__ import annotations

import socket
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.agent.helpers import unverified_tls

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
NO_ERROR = 0x0
# HPACK static table entries 8..14 are ":status" with these values (RFC 7541, appendix A).
STATIC_STATUS = {0x88: 200, 0x89: 204, 0x8A: 206, 0x8B: 304, 0x8C: 400, 0x8D: 404, 0x8E: 500}


@dataclass(frozen=True)
class Frame:
    type: int
    flags: int
    stream: int
    payload: bytes
    at: float  # time.monotonic() when it was read


@dataclass
class Connection:
    """One HTTP/2 connection over TLS (ALPN h2); every frame read is kept, in order."""

    sock: ssl.SSLSocket
    frames: list[Frame] = field(default_factory=list)
    closed_at: float | None = None

    @classmethod
    def open(cls, port: int, timeout: float = 10.0) -> Connection:
        context = unverified_tls()
        context.set_alpn_protocols(["h2"])
        sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=timeout))
        if sock.selected_alpn_protocol() != "h2":
            sock.close()
            raise AssertionError(f"the listener did not negotiate h2 (got {sock.selected_alpn_protocol()!r})")
        connection = cls(sock)
        sock.sendall(PREFACE)
        connection.send(SETTINGS, 0, 0, b"")
        # The server's preface is its SETTINGS frame; acknowledging it completes the handshake.
        connection.read_until(lambda frame: frame.type == SETTINGS and not frame.flags & ACK)
        connection.send(SETTINGS, ACK, 0, b"")
        return connection

    def send(self, type: int, flags: int, stream: int, payload: bytes) -> None:
        head = struct.pack(">I", len(payload))[1:] + bytes([type, flags]) + struct.pack(">I", stream)
        self.sock.sendall(head + payload)

    def get(self, stream: int, path: str, authority: str = "lb.test") -> None:
        block = b"\x82\x87" + _literal(4, path) + _literal(1, authority)  # :method GET, :scheme https
        self.send(HEADERS, END_HEADERS | END_STREAM, stream, block)

    def read_frame(self) -> Frame | None:
        """The next frame, or None once the peer has closed the connection."""
        head = self._read_exactly(9)
        if head is None:
            return None
        length = int.from_bytes(head[:3], "big")
        payload = self._read_exactly(length) if length else b""
        if payload is None:
            return None
        frame = Frame(head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF, payload, time.monotonic())
        self.frames.append(frame)
        if frame.type == PING and not frame.flags & ACK:
            self.send(PING, ACK, 0, frame.payload)
        return frame

    def read_until(self, done: Callable[[Frame], bool]) -> Frame | None:
        while (frame := self.read_frame()) is not None:
            if done(frame):
                return frame
        return None

    def read_to_close(self) -> None:
        """Every frame until the peer closes (or the socket times out: an AssertionError)."""
        try:
            self.read_until(lambda frame: False)
        except TimeoutError as exc:
            raise AssertionError("the connection was never closed by the proxy") from exc

    def close(self) -> None:
        self.sock.close()

    # --- what came back ---------------------------------------------------------------

    def goaway(self) -> tuple[int, int] | None:
        """(last stream id, error code) of the first GOAWAY, if one came."""
        for frame in self.frames:
            if frame.type == GOAWAY:
                last_stream, error = struct.unpack(">II", frame.payload[:8])
                return last_stream & 0x7FFFFFFF, error
        return None

    def status(self, stream: int) -> int | None:
        for frame in self.frames:
            if frame.type == HEADERS and frame.stream == stream:
                return STATIC_STATUS.get(_header_block(frame)[0], -1)
        return None

    def ended(self, stream: int) -> bool:
        return any(f.stream == stream and f.type in (DATA, HEADERS) and f.flags & END_STREAM for f in self.frames)

    def reset(self, stream: int) -> bool:
        return any(f.stream == stream and f.type == RST_STREAM for f in self.frames)

    def _read_exactly(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            try:
                chunk = self.sock.recv(size - len(data))
            except (ConnectionResetError, ssl.SSLError):
                chunk = b""
            if not chunk:
                self.closed_at = self.closed_at or time.monotonic()
                return None
            data += chunk
        return data


def _literal(name_index: int, value: str) -> bytes:
    """A header field without indexing, its name from the static table (RFC 7541, 6.2.2)."""
    encoded = value.encode()
    assert name_index < 15 and len(encoded) < 127
    return bytes([name_index, len(encoded)]) + encoded


def _header_block(frame: Frame) -> bytes:
    payload, flags = frame.payload, frame.flags
    start, end = 0, len(payload)
    if flags & 0x8:  # PADDED
        start, end = 1, len(payload) - payload[0]
    if flags & 0x20:  # PRIORITY
        start += 5
    return payload[start:end]
