"""uvicorn's HTTP/1.1 protocol (httptools) with deadlines: slow clients are let go.

uvicorn times out only idle keep-alive connections. A client that opens a connection and
trickles its request head a byte every few seconds, or a body far slower than any real
upload, holds its connection forever, and a head of any size is buffered whole (160 MB
of headers were accepted before this guard). Such connections cost a file descriptor and
memory each but no CPU, so a few thousand exhaust a process without a sign in its CPU
graph. This protocol bounds every phase of reading a request:

- the head (request line and headers) must arrive within `header_timeout` seconds of the
  connection's opening or of the request's first byte, and stay under `max_head_bytes`:
  otherwise 408 (or 431) and the connection is closed;
- a body must arrive at `body_min_rate` bytes per second on average after a grace of
  `header_timeout` seconds (the rule of Apache's mod_reqtimeout). Time the server makes
  the client wait does not count: reading paused while the application catches up, a
  `100 Continue` not yet sent, or an event loop too busy to check on time;
- once the answer is complete, the unread rest of a body gets `header_timeout` seconds
  more (uvicorn would otherwise read and discard it for as long as the client sends);
- an answer the client stops reading (the socket accepts no byte of it for
  `send_timeout` seconds) is cut: a stalled download holds a few MiB of buffers, and 100
  stalled readers held 400 MB until they chose to leave.

Request bodies are buffered for the application differently from uvicorn's own protocol,
which appends each read to a bytearray, copies it once more into the `bytes` that
`receive()` hands over, and pauses reading at 64 KiB: a 1 GiB upload then arrived at
under half the speed a `curl -T` sends on loopback (0.85 against 2.3 GB/s on the AMD
host, receiving and discarding). Here each read is kept as it came (`_BodyChunks`),
joined once when the application asks (no copy when one read is waiting), and reading
pauses only past `BODY_HIGH_WATER` bytes waiting.

The application's own idle timeout (`SEALDROP_BODY_IDLE_TIMEOUT_SECONDS`) still ends an
upload whose client falls silent. One timer per connection checks the deadlines, only
while a request is being read, at most a few times a second.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from app.settings import Settings

log = logging.getLogger("sealdrop.http")

MAX_HEAD_BYTES = 64 * 1024
# How many body bytes may wait for the application before reading pauses: a few socket
# reads' worth, so that each receive() takes several of them in one loop turn.
BODY_HIGH_WATER = 1024 * 1024
MAX_TICK_SECONDS = 1.0
# After our last answer, what the client still sends is read and dropped this long before
# the close: closing with unread bytes would reset the connection under the answer.
LINGER_SECONDS = 2.0
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
_MESSAGES = {
    408: b"the request arrived too slowly\n",
    431: b"the request head is too large\n",
}

Phase = Literal["idle", "head", "body"]


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """How long and how large the parts of a request may be."""

    header_timeout: float
    body_min_rate: int
    send_timeout: float = 60.0
    max_head_bytes: int = MAX_HEAD_BYTES

    @classmethod
    def from_settings(cls, settings: Settings) -> ReadLimits:
        """The limits `settings` configure."""
        return cls(
            settings.header_timeout_seconds,
            settings.body_min_bytes_per_second,
            settings.send_timeout_seconds,
        )

    @property
    def tick(self) -> float:
        """How often a connection being read checks its deadline."""
        return min(MAX_TICK_SECONDS, self.header_timeout / 4)

    @property
    def send_tick(self) -> float:
        """How often a connection whose answer is stuck checks for progress."""
        return min(MAX_TICK_SECONDS, self.send_timeout / 4)


def error_answer(status: int) -> bytes:
    """A complete HTTP/1.1 answer that ends the connection."""
    body = _MESSAGES[status]
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"cache-control: no-store\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class _BodyChunks:
    """The body bytes waiting for the application, kept as read: uvicorn's `receive()`
    takes them with `bytes()` (one join, or none for a single read) and then replaces
    this with an empty bytearray, which the next read replaces in turn."""

    __slots__ = ("_chunks", "_size")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0

    def append(self, chunk: bytes) -> None:
        """Keep `chunk` (bytes are immutable: no copy)."""
        self._chunks.append(chunk)
        self._size += len(chunk)

    def __len__(self) -> int:
        return self._size

    def __bytes__(self) -> bytes:
        chunks = self._chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head past its limit."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that closes connections whose requests arrive too slowly, or
    whose answers are not read."""

    limits: ClassVar[ReadLimits]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._phase: Phase = "idle"
        self._since = 0.0
        self._head_bytes = 0
        self._body_bytes = 0
        self._held_seconds = 0.0
        self._checked_at = 0.0
        self._linger_until: float | None = None
        self._refusal: int | None = None
        self._ending = False
        self._tick: asyncio.TimerHandle | None = None
        self._unsent = 0
        self._sent_at = 0.0
        self._send_checked_at = 0.0
        self._send_tick: asyncio.TimerHandle | None = None

    # -- uvicorn's hooks ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """A new connection must send its first head in time like any other."""
        super().connection_made(transport)
        self._begin("head")

    def data_received(self, data: bytes) -> None:
        """Parse as uvicorn does, except after our last answer: then drop what comes."""
        if not self._ending:
            super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the timers with the connection."""
        self._stop_ticking()
        self._stop_watching_send()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        """The answer fills the socket's buffer: from now on, it must keep draining."""
        super().pause_writing()
        if self._send_tick is None:
            self._unsent = self.transport.get_write_buffer_size()
            self._sent_at = self._send_checked_at = self.loop.time()
            self._send_tick = self.loop.call_later(self.limits.send_tick, self._check_send)

    def resume_writing(self) -> None:
        """The buffer drained: nothing to watch."""
        self._stop_watching_send()
        super().resume_writing()

    def on_message_begin(self) -> None:
        """The first byte of a request: its head's clock starts (a new connection's ran)."""
        super().on_message_begin()
        if self._phase != "head":
            self._begin("head")
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        """Count the URL into the head's size."""
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count the header into the head's size."""
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """The head is in: the body's clock starts."""
        self._begin("body")
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        """Count body bytes, read by the application or not; keep them for it as read
        (uvicorn's own `on_body`, but with `_BodyChunks` and `BODY_HIGH_WATER`)."""
        self._body_bytes += len(body)
        cycle = self.cycle
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        waiting: object = cycle.body
        if not isinstance(waiting, _BodyChunks):
            # uvicorn's empty bytearray, from the cycle's start or its last receive().
            waiting = _BodyChunks()
            cycle.body = waiting  # type: ignore[assignment]
        waiting.append(body)
        if len(waiting) > BODY_HIGH_WATER:
            self.flow.pause_reading()
        cycle.message_event.set()

    def on_message_complete(self) -> None:
        """The whole request is in: nothing to watch until the next one begins."""
        self._phase = "idle"
        self._stop_ticking()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        """Answered before the body ended: its unread rest gets a short while more."""
        super().on_response_complete()
        if self._phase == "body":
            self._linger_until = self.loop.time() + self.limits.header_timeout

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a head it cannot parse, or ours to one that is too large."""
        if self._refusal is None:
            super().send_400_response(msg)
            return
        self._close(self._refusal)

    # -- deadlines ----------------------------------------------------------------------

    def _begin(self, phase: Phase) -> None:
        self._phase = phase
        self._since = self._checked_at = self.loop.time()
        self._body_bytes = 0
        self._held_seconds = 0.0
        self._linger_until = None
        if self._tick is None:
            self._tick = self.loop.call_later(self.limits.tick, self._check)

    def _stop_ticking(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.limits.max_head_bytes:
            # httptools turns the exception into a parse error, and uvicorn then calls
            # send_400_response, which answers with this status instead.
            self._refusal = 431
            raise _HeadTooLarge()

    def _check(self) -> None:
        self._tick = None
        if self.transport.is_closing() or self._phase == "idle":
            return
        now = self.loop.time()
        self._credit_server_time(now)
        if self._phase == "head":
            if now - self._since - self._held_seconds > self.limits.header_timeout:
                self._close(408 if self._head_bytes else None)
                return
        elif self._body_too_slow(now):
            return
        self._tick = self.loop.call_later(self.limits.tick, self._check)

    def _credit_server_time(self, now: float) -> None:
        """Time the server kept the client waiting does not count against the client."""
        elapsed, self._checked_at = now - self._checked_at, now
        if self._server_holds_client():
            self._held_seconds += elapsed
        else:
            # A check that runs late means a busy event loop (whose reads of the client's
            # bytes were late too), not a slow client.
            self._held_seconds += max(0.0, elapsed - self.limits.tick)

    def _body_too_slow(self, now: float) -> bool:
        allowed = self.limits.header_timeout + self._held_seconds
        if self.limits.body_min_rate > 0:
            allowed += self._body_bytes / self.limits.body_min_rate
        lingered = self._linger_until is not None and now > self._linger_until
        slow = self.limits.body_min_rate > 0 and now - self._since > allowed
        if not (lingered or slow):
            return False
        self._close(408)
        return True

    def _check_send(self) -> None:
        self._send_tick = None
        if self.transport.is_closing() or not self.flow.write_paused:
            return
        now, unsent = self.loop.time(), self.transport.get_write_buffer_size()
        # As for reads: a check that runs late means a busy event loop, not a stuck client.
        self._sent_at += max(0.0, now - self._send_checked_at - self.limits.send_tick)
        self._send_checked_at = now
        if unsent < self._unsent:
            self._unsent, self._sent_at = unsent, now
        elif now - self._sent_at > self.limits.send_timeout:
            log.debug("cutting an answer %s stopped reading", self.client)
            # abort, not close: close() would wait for the unsent bytes to go.
            self.transport.abort()
            return
        self._send_tick = self.loop.call_later(self.limits.send_tick, self._check_send)

    def _stop_watching_send(self) -> None:
        if self._send_tick is not None:
            self._send_tick.cancel()
            self._send_tick = None

    def _answering(self) -> bool:
        cycle = self.cycle
        return cycle is not None and cycle.response_started and not cycle.response_complete

    def _server_holds_client(self) -> bool:
        """Reading paused while the application catches up, a `100 Continue` not yet
        sent, or a pipelined request waiting for the answer before it."""
        cycle = self.cycle
        if self._phase == "head":
            return self._answering()
        waiting = cycle is not None and cycle.waiting_for_100_continue
        return bool(self.flow.read_paused or waiting)

    def _answered_this(self) -> bool:
        """Whether the request being read already has its whole answer."""
        return self._phase == "body" and self.cycle is not None and self.cycle.response_complete

    def _close(self, status: int | None) -> None:
        """End the connection, with a last answer if none was started."""
        cycle = self.cycle
        # Never an answer of ours in the middle of one already started (or after it).
        answer = status is not None and not self._answering() and not self._answered_this()
        if cycle is not None and not cycle.response_complete:
            # The application's later sends become no-ops, and a receive() returns
            # http.disconnect, as if the client had gone.
            cycle.disconnected = True
            cycle.message_event.set()
        log.debug("closing a connection from %s: %s", self.client, status or "idle")
        self._phase = "idle"
        self._stop_ticking()
        if not answer or status is None or self.transport.is_closing():
            self.transport.close()
            return
        self.transport.write(error_answer(status))
        self._ending = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def guarded_protocol(limits: ReadLimits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for uvicorn's `http=` option, holding `limits`."""
    return type("SealdropHttpProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})
