"""HTTP/1.1 on a raw socket, for what a well-behaved client would never send.

A `RawConnection` writes exactly the bytes a test gives it (a Content-Length that lies, a
chunked body that never ends, a header of 100 KB) and reads answers with a small strict
parser that sees every interim answer: a `100 Continue` is an answer of its own here,
never skipped the way `http.client` skips it.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEAD_BYTES = 64 * 1024
SEND_PIECE = 64 * 1024
STALL_SECONDS = 30.0


class ConnectionEnded(Exception):
    """The server closed the connection (or reset it) before a whole answer arrived."""


@dataclass(frozen=True)
class RawAnswer:
    """One answer as it came off the wire."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The value of the only header called `name` (case-insensitive), or None."""
        values = self.all(name)
        assert len(values) <= 1, f"{name} appears {len(values)} times"
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        """Every value of header `name`, in order."""
        return [value for key, value in self.headers if key.lower() == name.lower()]


class RawConnection:
    """One TCP connection to the API that sends raw bytes and parses what comes back."""

    def __init__(self, base_url: str, *, source: str | None = None) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.sock = socket.create_connection(
            (self.host, self.port), timeout=30, source_address=(source, 0) if source else None
        )
        self.sent = 0
        self._buffer = b""

    def close(self) -> None:
        """Close the socket (a client that gives up)."""
        with suppress(OSError):
            self.sock.close()

    def send_head(self, method: str, target: str, headers: Mapping[str, str]) -> None:
        """The request line and headers, as given (Host is added when missing)."""
        lines = [f"{method} {target} HTTP/1.1"]
        if not any(name.lower() == "host" for name in headers):
            lines.append(f"Host: {self.host}:{self.port}")
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def send(self, data: bytes) -> bool:
        """Send `data` unless the server answers, closes or resets first (then False).

        Never blocks on a server that stopped reading: each piece waits until the socket
        is writable or the server has something to say.
        """
        view = memoryview(data)
        while view:
            readable, writable, _ = select.select([self.sock], [self.sock], [], STALL_SECONDS)
            if readable:
                return False
            if not writable:
                raise TimeoutError(f"the server neither read nor answered for {STALL_SECONDS} s")
            try:
                count = self.sock.send(view[:SEND_PIECE], socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                return False
            view = view[count:]
            self.sent += count
        return True

    def push(self, pieces: Iterable[bytes], *, chunked: bool = False) -> bool:
        """Send a body piece by piece; True as soon as the server answers (or hangs up) early.

        A chunked body gets its last chunk once every piece is sent.
        """
        for piece in pieces:
            if not (self.send_chunk(piece) if chunked else self.send(piece)):
                return True
        if chunked and not self.send_chunk(b""):
            return True
        return self.answer_waiting()

    def send_chunk(self, data: bytes) -> bool:
        """One chunk of a chunked body (an empty `data` is the last chunk)."""
        return self.send(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def answer_waiting(self, timeout: float = 0.0) -> bool:
        """Whether the server has sent something (or closed) within `timeout` seconds."""
        if self._buffer:
            return True
        readable, _, _ = select.select([self.sock], [], [], timeout)
        return bool(readable)

    def read_answer(self, timeout: float = 10.0) -> RawAnswer:
        """The next answer, interim ones (1xx) included; ConnectionEnded if none comes whole."""
        self.sock.settimeout(timeout)
        head = self._read_until(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        version, status, *_reason = status_line.split(" ", 2)
        assert version == "HTTP/1.1", status_line
        headers = [_split_header(line) for line in header_lines]
        code = int(status)
        length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
        body = b"" if code < 200 or code in (204, 304) else self._read_exactly(length)
        return RawAnswer(code, headers, body)

    def read_answers_until_closed(self, timeout: float = 10.0) -> list[int]:
        """The statuses of every whole answer that arrives before the server hangs up."""
        statuses: list[int] = []
        while True:
            try:
                statuses.append(self.read_answer(timeout).status)
            except ConnectionEnded:
                return statuses

    def closed_by_server(self, timeout: float = 5.0) -> bool:
        """Whether the server closes the connection within `timeout` (reading what is left)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.answer_waiting(max(0.0, deadline - time.monotonic())):
                return False
            try:
                if not self.sock.recv(65536):
                    return True
            except (ConnectionResetError, TimeoutError):
                return True
        return False

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise AssertionError("the answer's head is absurdly long")
            self._fill()
        head, _, self._buffer = self._buffer.partition(marker)
        return head

    def _read_exactly(self, length: int) -> bytes:
        while len(self._buffer) < length:
            self._fill()
        data, self._buffer = self._buffer[:length], self._buffer[length:]
        return data

    def _fill(self) -> None:
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            raise ConnectionEnded(f"connection closed; {len(self._buffer)} bytes unparsed")
        self._buffer += data


def _split_header(line: str) -> tuple[str, str]:
    name, colon, value = line.partition(":")
    if not (colon and name and name == name.strip()):
        raise AssertionError(f"malformed header line {line!r}")
    return name, value.strip()


def blocks(total: int, size: int = SEND_PIECE, fill: bytes = b"x") -> Iterator[bytes]:
    """`total` bytes of `fill` in pieces of `size` (the last may be shorter)."""
    piece = fill * size
    for start in range(0, total, size):
        yield piece[: min(size, total - start)]


@contextmanager
def raw_connection(base_url: str, *, source: str | None = None) -> Iterator[RawConnection]:
    """A `RawConnection` closed when the block ends."""
    connection = RawConnection(base_url, source=source)
    try:
        yield connection
    finally:
        connection.close()
