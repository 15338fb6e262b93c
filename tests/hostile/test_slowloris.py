"""Slow-loris: connections that trickle their request are closed, and nobody else waits.

An API process of the module's own runs with a two-second header timeout (production:
10 s, `SEALDROP_HEADER_TIMEOUT_SECONDS`), the default minimum body rate of 1 KiB/s
(`SEALDROP_BODY_MIN_BYTES_PER_SECOND`) and a three-second send timeout (production: 60 s,
`SEALDROP_SEND_TIMEOUT_SECONDS`). Attackers open raw sockets and send a request line and
then a header byte a second, or a whole head and then a body byte a second, or ask for a
file and stop reading it. The mass attack gets an API whose header timeout (6 s) outlasts
a well-behaved client's rounds of uploads and status queries, which must get through
while every attacker still holds its connection. uvicorn alone closed none of them
(app/http/protocol.py has the guard).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.hostile.conftest import scaled
from tests.support.production import ApiProcess, ProductionStack

HEADER_TIMEOUT = 2.0
MIN_RATE = 1024
# A slow connection is closed within the timeout, a check's tick (at most a quarter of
# it), and a generous allowance for a loaded 2-core machine.
CLOSE_SLACK = 3.0
CLOSE_BOUND = HEADER_TIMEOUT + CLOSE_SLACK
TRICKLE_SECONDS = 1.0
SEND_TIMEOUT = 3.0
# Larger than what the kernel's socket buffers absorb, so a reader that stops reading
# leaves the server with unsent bytes.
DOWNLOAD_BYTES = 16 * 1024 * 1024
STALLED_READERS = scaled(20, 200)
ATTACKERS = scaled(200, 1000)
# The attack gets an API of its own whose header timeout outlasts the well-behaved
# client's rounds: starved, it would get none through before the attackers are dropped.
ATTACK_HEADER_TIMEOUT = float(scaled(6, 30))
MIN_ROUNDS = scaled(3, 20)


@pytest.fixture(scope="module")
def api(stack: ProductionStack) -> Iterator[ApiProcess]:
    """An API process with a short header timeout (and no upload quota in the way)."""
    process = stack.start_api(
        SEALDROP_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        SEALDROP_BODY_MIN_BYTES_PER_SECOND=str(MIN_RATE),
        SEALDROP_BODY_IDLE_TIMEOUT_SECONDS="60",
        SEALDROP_UPLOAD_RATE_PER_MINUTE="0",
        SEALDROP_SEND_TIMEOUT_SECONDS=str(SEND_TIMEOUT),
        SEALDROP_MAX_UPLOAD_BYTES=str(2 * DOWNLOAD_BYTES),
    )
    try:
        yield process
    finally:
        process.stop()


@dataclass
class Ending:
    """How the server ended one slow connection."""

    seconds: float
    answer: bytes


def _port(api: ApiProcess) -> int:
    return int(api.base_url.rsplit(":", 1)[1])


async def _open(api: ApiProcess) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", _port(api))


async def _trickle(
    api: ApiProcess, first: bytes, drip: bytes, *, for_seconds: float, every: float
) -> Ending | None:
    """Send `first`, then `drip` every `every` seconds, until the server ends the
    connection (its Ending) or `for_seconds` pass (None)."""
    reader, writer = await _open(api)
    started = time.monotonic()
    answer = bytearray()
    try:
        writer.write(first)
        await writer.drain()
        while time.monotonic() - started < for_seconds:
            try:
                chunk = await asyncio.wait_for(reader.read(4096), every)
            except TimeoutError:
                writer.write(drip)
                await writer.drain()
                continue
            if not chunk:
                return Ending(time.monotonic() - started, bytes(answer))
            answer += chunk
    except (ConnectionError, OSError):
        return Ending(time.monotonic() - started, bytes(answer))
    finally:
        writer.close()
    return None


def _slow_head() -> tuple[bytes, bytes]:
    return b"GET /healthz HTTP/1.1\r\nHost: sealdrop.test\r\nX-Slow: ", b"a"


def _slow_body() -> tuple[bytes, bytes]:
    head = b"PUT /slow.bin HTTP/1.1\r\nHost: sealdrop.test\r\nContent-Length: 1000000\r\n\r\n"
    return head + b"x", b"x"


async def _well_behaved(api: ApiProcess, until: float) -> list[float]:
    """Upload small files, ask for their status and for /healthz until `until`; each
    round's seconds."""
    rounds: list[float] = []
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30, trust_env=False) as client:
        while time.monotonic() < until:
            started = time.monotonic()
            put = await client.put(
                "/fine.bin",
                content=os.urandom(32 * 1024),
                headers={"Accept": "application/json", "Prefer": "respond-async"},
            )
            assert put.status_code in (201, 202), put.text
            status = await client.get(f"/api/v1/links/{put.json()['token']}")
            assert status.status_code == 200
            assert (await client.get("/healthz")).status_code == 200
            rounds.append(time.monotonic() - started)
    return rounds


@pytest.fixture(scope="module")
def attacked_api(stack: ProductionStack) -> Iterator[ApiProcess]:
    """An API process whose header timeout outlasts the well-behaved client's window."""
    process = stack.start_api(
        SEALDROP_HEADER_TIMEOUT_SECONDS=str(ATTACK_HEADER_TIMEOUT),
        SEALDROP_UPLOAD_RATE_PER_MINUTE="0",
    )
    try:
        yield process
    finally:
        process.stop()


async def test_trickled_heads_and_bodies_are_closed_while_others_are_served(
    attacked_api: ApiProcess,
) -> None:
    heads, bodies = _slow_head(), _slow_body()
    attackers = [
        _trickle(
            attacked_api,
            *(bodies if i % 4 == 0 else heads),
            for_seconds=ATTACK_HEADER_TIMEOUT + 30,
            every=TRICKLE_SECONDS,
        )
        for i in range(ATTACKERS)
    ]
    attack = asyncio.gather(*attackers)
    await asyncio.sleep(0.5)  # every attacker connected and started
    # Served while every attacker still holds its connection (none is timed out yet).
    rounds = await _well_behaved(attacked_api, time.monotonic() + ATTACK_HEADER_TIMEOUT - 1.5)
    endings = await attack

    still_open = [i for i, ending in enumerate(endings) if ending is None]
    assert still_open == [], f"{len(still_open)} slow connections were never closed"
    slowest = max(ending.seconds for ending in endings if ending is not None)
    print(  # the figures, for -rP
        f"slow-loris: {len(endings)} slow connections closed within {slowest:.1f} s "
        f"(timeout {ATTACK_HEADER_TIMEOUT:.0f} s); meanwhile {len(rounds)} well-behaved "
        f"rounds, slowest {max(rounds, default=0):.2f} s"
    )
    assert len(rounds) >= MIN_ROUNDS, f"only {len(rounds)} rounds: {rounds}"
    assert slowest < ATTACK_HEADER_TIMEOUT + CLOSE_SLACK, f"a slow connection lived {slowest:.1f} s"
    answers = {ending.answer.split(b"\r\n", 1)[0] for ending in endings if ending is not None}
    assert answers <= {b"HTTP/1.1 408 Request Timeout"}, answers


async def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    api: ApiProcess,
) -> None:
    ending = await _trickle(api, b"", b"", for_seconds=CLOSE_BOUND + 5, every=0.5)

    assert ending is not None, "an idle connection stayed open"
    assert ending.seconds < CLOSE_BOUND
    assert ending.answer == b""


async def test_a_head_over_64_kib_is_refused_with_431(api: ApiProcess) -> None:
    reader, writer = await _open(api)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: sealdrop.test\r\n")
    try:
        for i in range(200):
            writer.write(b"X-Filler-%d: %s\r\n" % (i, b"a" * 1000))
            await writer.drain()
    except ConnectionError:
        pass  # closed while we were still sending: the answer is already on its way
    answer = await asyncio.wait_for(reader.read(), CLOSE_BOUND)
    writer.close()

    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"connection: close" in answer.lower()


async def test_an_upload_above_the_minimum_rate_completes(api: ApiProcess) -> None:
    # Four times the minimum rate for twice the header timeout: slow, but not too slow.
    data = os.urandom(int(MIN_RATE * 4 * HEADER_TIMEOUT * 2))

    async def steady() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 512):
            yield data[start : start + 512]
            await asyncio.sleep(512 / (MIN_RATE * 4))

    async with httpx.AsyncClient(base_url=api.base_url, timeout=60, trust_env=False) as client:
        put = await client.put(
            "/steady.bin",
            content=steady(),
            headers={"Accept": "application/json", "Content-Length": str(len(data))},
        )
        assert put.status_code == 201, put.text
        got = await client.get(f"/d/{put.json()['token']}")

    assert got.content == data


async def test_a_body_left_unread_after_the_answer_is_cut_after_the_header_timeout(
    api: ApiProcess,
) -> None:
    # /healthz never reads a body; a client that keeps sending one, fast enough for the
    # rate rule, still gets only the header timeout after its answer.
    first = b"GET /healthz HTTP/1.1\r\nHost: sealdrop.test\r\nContent-Length: 10000000\r\n\r\n"
    ending = await _trickle(api, first, b"x" * 4096, for_seconds=CLOSE_BOUND + 10, every=0.25)

    assert ending is not None, "the connection stayed open"
    assert ending.answer.startswith(b"HTTP/1.1 200 ")
    assert ending.seconds < CLOSE_BOUND


def _ask_and_stall(api: ApiProcess, path: str) -> socket.socket:
    """Ask for `path` and read nothing past the status line (a tiny receive window)."""
    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.connect(("127.0.0.1", _port(api)))
    reader.sendall(f"GET {path} HTTP/1.1\r\nHost: sealdrop.test\r\n\r\n".encode())
    assert reader.recv(12) == b"HTTP/1.1 200"
    return reader


def _drain(reader: socket.socket, at_most: int) -> int:
    """Read what the connection still gives; the bytes read before it ended."""
    reader.settimeout(10)
    got = 0
    try:
        while got < at_most and (chunk := reader.recv(1 << 20)):
            got += len(chunk)
    except (ConnectionError, TimeoutError):
        pass
    return got


@pytest.fixture(scope="module")
def large_file(api: ApiProcess) -> str:
    """The path of a file larger than the socket buffers hold."""
    data = os.urandom(DOWNLOAD_BYTES)
    put = httpx.put(
        f"{api.base_url}/large.bin",
        content=data,
        headers={"Accept": "application/json"},
        timeout=60,
        trust_env=False,
    )
    assert put.status_code == 201, put.text
    return f"/d/{put.json()['token']}"


def test_downloads_whose_readers_stop_reading_are_cut_after_the_send_timeout(
    api: ApiProcess, large_file: str
) -> None:
    readers = [_ask_and_stall(api, large_file) for _ in range(STALLED_READERS)]
    time.sleep(SEND_TIMEOUT + 3)  # the timeout, its check's tick, and room to spare

    received = [_drain(reader, DOWNLOAD_BYTES) for reader in readers]
    for reader in readers:
        reader.close()

    # A live connection would have delivered the whole file once read again.
    assert all(got < DOWNLOAD_BYTES for got in received), received


def test_a_slow_but_steady_reader_is_not_cut(api: ApiProcess, large_file: str) -> None:
    reader = _ask_and_stall(api, large_file)
    reader.settimeout(10)
    got, started = 0, time.monotonic()
    # Half a MiB a second, for twice the send timeout: slow, but never stuck.
    while time.monotonic() - started < 2 * SEND_TIMEOUT:
        chunk = reader.recv(64 * 1024)
        assert chunk, "the server cut a reader that kept reading"
        got += len(chunk)
        time.sleep(len(chunk) / (512 * 1024))
    reader.close()

    assert got > 0
