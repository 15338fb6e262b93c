"""A TCP proxy on loopback that breaks things on purpose, both ways, for client tests.

(`tests.support.tcp_proxy` is the simpler one that only counts and cuts request bytes.)

Each accepted connection is piped to the upstream server by two threads. Per connection,
the proxy can cut the answer stream after some bytes (a network break), flip one byte of
it (corruption no TLS would let through, but a bad disk or proxy might), or slow it down
(so a test can kill the client mid-transfer). It records what went each way, so a test
can tell how many bytes a resumed transfer sent again, and what requests it made.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

PIECE = 16 * 1024


@dataclass
class Seen:
    """One connection's traffic: request bytes (client to server) and answer bytes."""

    sent_up: int = 0
    sent_down: int = 0
    head: bytes = b""  # the first bytes of what the client sent (its first request's head)


@dataclass
class Faults:
    """What the proxy does to answer streams (all off by default)."""

    cut_down_after: int | None = None  # close after this many answer bytes…
    cut_connections: int = 0  # …on this many of the next connections
    flip_down_at: int | None = None  # invert the answer byte at this offset
    down_delay: float = 0.0  # seconds of sleep per piece of the answer
    up_delay: float = 0.0  # seconds of sleep per piece of the request
    cut_up_after: int | None = None  # close after this many request bytes…
    cut_up_connections: int = 0  # …on this many of the next connections


@dataclass
class FaultProxy:
    """Listens on 127.0.0.1:`port`, forwards to `upstream` (host, port)."""

    upstream: tuple[str, int]
    faults: Faults = field(default_factory=Faults)
    connections: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        """The proxy's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def sent_up(self) -> int:
        """Request bytes of every connection so far."""
        return sum(seen.sent_up for seen in self.connections)

    def sent_down(self) -> int:
        """Answer bytes of every connection so far."""
        return sum(seen.sent_down for seen in self.connections)

    def close(self) -> None:
        """Stop accepting (connections in flight end with their peers)."""
        self._stopped = True
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            seen = Seen()
            with self._lock:
                self.connections.append(seen)
                cut_down = self._take("cut_connections", self.faults.cut_down_after)
                cut_up = self._take("cut_up_connections", self.faults.cut_up_after)
            server = socket.create_connection(self.upstream)
            threading.Thread(
                target=self._pipe_up, args=(client, server, seen, cut_up), daemon=True
            ).start()
            threading.Thread(
                target=self._pipe_down, args=(server, client, seen, cut_down), daemon=True
            ).start()

    def _take(self, counter: str, limit: int | None) -> int | None:
        left = getattr(self.faults, counter)
        if limit is None or left <= 0:
            return None
        setattr(self.faults, counter, left - 1)
        return limit

    def _pipe_up(
        self, source: socket.socket, target: socket.socket, seen: Seen, cut: int | None
    ) -> None:
        try:
            while data := source.recv(PIECE):
                if cut is not None and seen.sent_up + len(data) > cut:
                    data = data[: cut - seen.sent_up]
                    target.sendall(data)
                    seen.sent_up += len(data)
                    break
                if len(seen.head) < 4096:
                    seen.head += data[: 4096 - len(seen.head)]
                if self.faults.up_delay:
                    time.sleep(self.faults.up_delay)
                target.sendall(data)
                seen.sent_up += len(data)
        except OSError:
            pass
        _close_both(source, target)

    def _pipe_down(
        self, source: socket.socket, target: socket.socket, seen: Seen, cut: int | None
    ) -> None:
        try:
            while data := source.recv(PIECE):
                if cut is not None and seen.sent_down + len(data) > cut:
                    target.sendall(data[: cut - seen.sent_down])
                    seen.sent_down = cut
                    break
                flip = self.faults.flip_down_at
                if flip is not None and seen.sent_down <= flip < seen.sent_down + len(data):
                    at = flip - seen.sent_down
                    data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
                if self.faults.down_delay:
                    time.sleep(self.faults.down_delay)
                target.sendall(data)
                seen.sent_down += len(data)
        except OSError:
            pass
        _close_both(source, target)


def _close_both(*sockets: socket.socket) -> None:
    for one in sockets:
        with contextlib.suppress(OSError):
            one.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            one.close()


@contextlib.contextmanager
def fault_proxy(base_url: str, faults: Faults | None = None) -> Iterator[FaultProxy]:
    """A proxy in front of `base_url` (http://host:port) for the `with` block."""
    host, _, port = base_url.removeprefix("http://").partition(":")
    proxy = FaultProxy((host, int(port.rstrip("/"))), faults or Faults())
    try:
        yield proxy
    finally:
        proxy.close()
