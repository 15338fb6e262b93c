"""A fault-injecting HTTP proxy on loopback in front of the S3 endpoint.

`S3FaultProxy(upstream)` listens on `127.0.0.1:<free port>` (its own event loop in a
thread of its own, so sync and async tests alike can use it) and forwards every request,
byte for byte, to the real endpoint: SigV4 signatures stay valid because the Host header
is the one the client signed. Told to, it answers the next N matching requests itself:

- `fail(n)`: `500 InternalError` with S3's XML error body;
- `slow_down(n)`: `503 SlowDown`, S3's throttling answer;
- `stall(n, seconds)`: no answer for `seconds`, then the connection is dropped.

A fault matches every request, or those a `when` predicate picks (`part_uploads`,
`completions`, `gets`, `in_bucket(name)`, …). `seen` records every request with what was
done to it, so a test can tell that a fault really met the client and how often it retried.
`Expect: 100-continue` is answered by the proxy itself (botocore sends it on every PUT), so
the body reaches a fault too and the client never waits on a second round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, urlsplit

Action = Literal["forwarded", "error", "slow_down", "stall"]
RELAY_CHUNK = 1 << 16
START_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class ProxiedRequest:
    """What the proxy read of one request: method, target and headers (names lower-cased)."""

    method: str
    target: str
    headers: dict[str, str]

    @property
    def path(self) -> str:
        """The path of the target, without its query."""
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        """The target's query parameters (S3 names sub-resources there: uploadId, partNumber)."""
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    @property
    def bucket(self) -> str:
        """The bucket of a path-style request."""
        return self.path.lstrip("/").split("/", 1)[0]

    @property
    def key(self) -> str:
        """The object key of a path-style request ('' for a bucket request)."""
        parts = self.path.lstrip("/").split("/", 1)
        return parts[1] if len(parts) == 2 else ""


Matcher = Callable[[ProxiedRequest], bool]


def every(_request: ProxiedRequest) -> bool:
    """Matches every request."""
    return True


def part_uploads(request: ProxiedRequest) -> bool:
    """UploadPart: `PUT …?partNumber=N&uploadId=…`."""
    return request.method == "PUT" and "partNumber" in request.query


def completions(request: ProxiedRequest) -> bool:
    """CompleteMultipartUpload: `POST …?uploadId=…`."""
    return request.method == "POST" and "uploadId" in request.query


def object_gets(request: ProxiedRequest) -> bool:
    """GetObject (a GET of a key, not a listing)."""
    return request.method == "GET" and bool(request.key)


def writes(request: ProxiedRequest) -> bool:
    """Anything that writes an object: PUT, and the POSTs that start or finish an upload."""
    return request.method in ("PUT", "POST")


def in_bucket(bucket: str, also: Matcher = every) -> Matcher:
    """Requests to `bucket` that `also` matches."""
    return lambda request: request.bucket == bucket and also(request)


@dataclass
class _Fault:
    action: Action
    remaining: int
    matches: Matcher
    seconds: float = 0.0


@dataclass(frozen=True)
class Seen:
    """One request the proxy handled, and what it did with it."""

    request: ProxiedRequest
    action: Action


@dataclass
class S3FaultProxy:
    """An HTTP proxy to `upstream` (`http://host:port`) that injects faults on request."""

    upstream: str
    seen: list[Seen] = field(default_factory=list)
    _faults: list[_Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.Server | None = None
    _connections: set[asyncio.Task[None]] = field(default_factory=set)
    port: int = 0

    @property
    def url(self) -> str:
        """The endpoint URL to give clients instead of the upstream's."""
        return f"http://127.0.0.1:{self.port}"

    # -- control, from any thread -------------------------------------------------------

    def fail(self, count: int, *, when: Matcher = every) -> None:
        """Answer the next `count` matching requests with `500 InternalError`."""
        self._add(_Fault("error", count, when))

    def slow_down(self, count: int, *, when: Matcher = every) -> None:
        """Answer the next `count` matching requests with `503 SlowDown`."""
        self._add(_Fault("slow_down", count, when))

    def stall(self, count: int, seconds: float, *, when: Matcher = every) -> None:
        """Hold the next `count` matching requests unanswered for `seconds`, then hang up."""
        self._add(_Fault("stall", count, when, seconds))

    def pass_through(self) -> None:
        """Forget every fault still pending: forward everything from now on."""
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        """`pass_through`, and forget what was seen too (a test's fresh start)."""
        with self._lock:
            self._faults.clear()
            self.seen.clear()

    def count(self, action: Action, matches: Matcher = every) -> int:
        """How many requests matching `matches` got `action` so far."""
        with self._lock:
            return sum(1 for s in self.seen if s.action == action and matches(s.request))

    def faults_left(self) -> int:
        """Requests the pending faults will still answer."""
        with self._lock:
            return sum(fault.remaining for fault in self._faults)

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take(self, request: ProxiedRequest) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.matches(request):
                    fault.remaining -= 1
                    self.seen.append(Seen(request, fault.action))
                    return fault
            self.seen.append(Seen(request, "forwarded"))
            return None

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> S3FaultProxy:
        """Listen on a free loopback port; return once it accepts connections."""
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="s3-fault-proxy", daemon=True
        )
        self._thread.start()
        if not ready.wait(START_TIMEOUT_SECONDS) or not self.port:
            raise RuntimeError("the S3 fault proxy did not start")
        return self

    def stop(self) -> None:
        """Close the listener and every connection; safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._shutdown()))
        thread.join(START_TIMEOUT_SECONDS)

    def __enter__(self) -> S3FaultProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._accept, "127.0.0.1", 0)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
        finally:
            ready.set()
            loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        asyncio.get_running_loop().stop()

    # -- the proxy itself -----------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        link = _Link(reader, writer)
        try:
            while await self._one_exchange(link):
                pass
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return  # either side hung up
        except asyncio.CancelledError:
            return  # the proxy is stopping: end quietly (asyncio reports a cancelled handler)
        finally:
            self._connections.discard(task)
            await link.close()

    async def _one_exchange(self, link: _Link) -> bool:
        """Relay one request and its answer; False once the connection is to be closed."""
        try:
            head = await link.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the client closed a kept-alive connection
        request, head = _parse_request(head)
        if request.headers.get("expect", "").lower() == "100-continue":
            link.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await link.writer.drain()
        body = await _read_body(link.reader, request.headers)
        fault = self._take(request)
        if fault is not None:
            return await _inject(fault, link.writer)
        up_reader, up_writer = await link.upstream(self.upstream)
        up_writer.write(head + body)
        await up_writer.drain()
        keep = await _relay_response(up_reader, link.writer, request.method)
        return keep and request.headers.get("connection", "").lower() != "close"


class _Link:
    """One client connection and the upstream connection it is relayed over."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def upstream(self, url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The upstream connection, opened on first use."""
        if self._upstream is None:
            host, port = _host_port(url)
            self._upstream = await asyncio.open_connection(host, port)
        return self._upstream

    async def close(self) -> None:
        """Close both connections."""
        writers = [self.writer, *([self._upstream[1]] if self._upstream else [])]
        for writer in writers:
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()


async def _inject(fault: _Fault, writer: asyncio.StreamWriter) -> bool:
    """Answer in S3's place; False when the connection is to be dropped."""
    if fault.action == "stall":
        await asyncio.sleep(fault.seconds)
        return False
    status, code, message = (
        (500, "InternalError", "We encountered an internal error. Please try again.")
        if fault.action == "error"
        else (503, "SlowDown", "Please reduce your request rate.")
    )
    writer.write(_error_response(status, code, message))
    await writer.drain()
    return True


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    return parts.hostname, parts.port or 80


def _parse_request(head: bytes) -> tuple[ProxiedRequest, bytes]:
    """The request's line and headers; the head to forward, without `Expect` (unsigned)."""
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    kept = [lines[0]]
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        if name.strip().lower() == "expect":
            continue  # answered here; botocore never signs it
        headers[name.strip().lower()] = value.strip()
        kept.append(line)
    forwarded = ("\r\n".join(kept) + "\r\n\r\n").encode("latin-1")
    return ProxiedRequest(method, target, headers), forwarded


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(reader)
    length = int(headers.get("content-length", "0") or 0)
    return await reader.readexactly(length) if length else b""


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    """A chunked body, raw (framing included), up to and with its last chunk and trailers."""
    parts = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        parts.append(size_line)
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                parts.append(trailer)
            parts.append(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size + 2))


async def _relay_response(
    up_reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str
) -> bool:
    """Copy one response from upstream to the client as it comes; True to keep the link."""
    head = await up_reader.readuntil(b"\r\n\r\n")
    writer.write(head)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines[1:] if line)
    }
    keep = headers.get("connection", "").lower() != "close"
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        await writer.drain()
        return keep
    if "chunked" in headers.get("transfer-encoding", "").lower():
        writer.write(await _read_chunked(up_reader))
        await writer.drain()
        return keep
    if "content-length" not in headers:
        while chunk := await up_reader.read(RELAY_CHUNK):
            writer.write(chunk)
            await writer.drain()
        return False
    left = int(headers["content-length"])
    while left:
        chunk = await up_reader.read(min(RELAY_CHUNK, left))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", left)
        writer.write(chunk)
        await writer.drain()
        left -= len(chunk)
    return keep


def _error_response(status: int, code: str, message: str) -> bytes:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>sealdrop-fault-proxy</RequestId></Error>"
    ).encode()
    reason = {500: "Internal Server Error", 503: "Service Unavailable"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\n"
        "x-amz-request-id: sealdrop-fault-proxy\r\n"
        "\r\n"
    )
    return head.encode() + body


@contextlib.contextmanager
def fault_proxy(upstream: str) -> Iterator[S3FaultProxy]:
    """An `S3FaultProxy` to `upstream` for the block."""
    proxy = S3FaultProxy(upstream).start()
    try:
        yield proxy
    finally:
        proxy.stop()
