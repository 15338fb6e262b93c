"""A TCP proxy on loopback that counts what clients send and can cut the connection.

Put in front of a Sealdrop API, it shows what a real client sends over the wire (so a
test can tell that a resumed upload never sends acknowledged bytes again), and `cut_after`
drops every connection once that many client bytes have passed in total: a network break
in the middle of a request body, seen by the server as a broken connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Self

BUFFER = 64 * 1024


class TcpProxy:
    """Forward `127.0.0.1:<port>` to `upstream`, counting the bytes sent upstream."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self.sent = 0  # client bytes forwarded upstream, over every connection
        self.cut_after: int | None = None  # cut every connection once `sent` reaches it
        self.cuts = 0
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def base_url(self) -> str:
        """The proxy's URL, to give a client instead of the server's."""
        return f"http://127.0.0.1:{self.port}"

    def reset(self, *, cut_after: int | None = None) -> None:
        """Count from zero again, cutting after `cut_after` bytes (None: never)."""
        with self._lock:
            self.sent = 0
            self.cut_after = cut_after

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._upstream, args=(client, server), daemon=True).start()
            threading.Thread(target=self._downstream, args=(server, client), daemon=True).start()

    def _upstream(self, client: socket.socket, server: socket.socket) -> None:
        try:
            while chunk := client.recv(BUFFER):
                with self._lock:
                    allowed = len(chunk)
                    if self.cut_after is not None:
                        allowed = max(0, min(allowed, self.cut_after - self.sent))
                    self.sent += allowed
                server.sendall(chunk[:allowed])
                if allowed < len(chunk):
                    self.cuts += 1
                    break
            else:
                server.shutdown(socket.SHUT_WR)
                return
        except OSError:
            pass
        _close(client, server)

    def _downstream(self, server: socket.socket, client: socket.socket) -> None:
        try:
            while chunk := server.recv(BUFFER):
                client.sendall(chunk)
        except OSError:
            pass
        _close(client, server)

    def close(self) -> None:
        """Stop listening and drop every connection."""
        self._closed = True
        self._listener.close()
        with self._lock:
            _close(*self._sockets)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
