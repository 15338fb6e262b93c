"""Request bodies through the guarded protocol: every byte in order, reads merged, and
reading paused while the application does not take them (app/http/protocol.py).

A real uvicorn server on a loopback port runs a small ASGI application that records the
body messages it receives; a raw socket sends the body, so the test sees exactly how much
the server accepted while the application was not reading.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import uvicorn
from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope

from app.http.protocol import BODY_HIGH_WATER, ReadLimits, guarded_protocol

BODY_BYTES = 48 * 1024 * 1024
# What loopback socket buffers may absorb on top of the server's own buffer.
KERNEL_SLACK = 16 * 1024 * 1024


@dataclass
class Recorder:
    """The ASGI application: waits for `start_reading`, then reads the whole body."""

    start_reading: threading.Event = field(default_factory=threading.Event)
    sizes: list[int] = field(default_factory=list)
    digest: str = ""

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        while not self.start_reading.is_set():
            await asyncio.sleep(0.02)
        digest = hashlib.sha256()
        while True:
            message = await receive()
            body = message.get("body", b"")
            assert isinstance(body, bytes)
            self.sizes.append(len(body))
            digest.update(body)
            if not message.get("more_body"):
                break
        self.digest = digest.hexdigest()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def server() -> Iterator[tuple[Recorder, int]]:
    recorder = Recorder()
    config = uvicorn.Config(
        recorder,
        host="127.0.0.1",
        port=0,
        http=guarded_protocol(ReadLimits(header_timeout=30.0, body_min_rate=0)),
        log_level="warning",
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    port = running.servers[0].sockets[0].getsockname()[1]
    try:
        yield recorder, port
    finally:
        running.should_exit = True
        thread.join(10)


def _send_until_blocked(sock: socket.socket, body: memoryview, quiet_seconds: float) -> int:
    """Send as much of `body` as the server takes until nothing moves for a while."""
    sock.setblocking(False)
    sent = 0
    last_progress = time.monotonic()
    while sent < len(body) and time.monotonic() - last_progress < quiet_seconds:
        try:
            sent += sock.send(body[sent : sent + 1024 * 1024])
            last_progress = time.monotonic()
        except BlockingIOError:
            time.sleep(0.01)
    sock.setblocking(True)
    return sent


def test_a_body_arrives_whole_in_merged_reads_and_reading_pauses_for_the_application(
    server: tuple[Recorder, int],
) -> None:
    recorder, port = server
    body = os.urandom(BODY_BYTES)
    head = (f"PUT /x HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {BODY_BYTES}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head)
        # The application is not reading: the server takes its buffer's worth and the
        # kernel's, then stops reading (uvicorn alone read 64 KiB at a time; an unpaused
        # reader would take all of it).
        accepted = _send_until_blocked(sock, memoryview(body), quiet_seconds=1.0)
        assert accepted < BODY_HIGH_WATER + KERNEL_SLACK
        recorder.start_reading.set()
        sock.sendall(memoryview(body)[accepted:])
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200")
    assert recorder.digest == hashlib.sha256(body).hexdigest()
    assert sum(recorder.sizes) == BODY_BYTES
    # Reads waiting together reach the application as one message (uvicorn alone: at
    # most about 64 KiB each), and none holds much more than the buffer's limit.
    assert max(recorder.sizes) > 256 * 1024
    assert max(recorder.sizes) <= BODY_HIGH_WATER + 1024 * 1024
