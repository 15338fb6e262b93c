"""Slow-loris: connections that trickle their request are closed, and nobody else waits.

An API process of the test's own runs with a two-second header timeout (production: 10 s,
`SEALDROP_HEADER_TIMEOUT_SECONDS`) and the default minimum body rate of 1 KiB/s
(`SEALDROP_BODY_MIN_BYTES_PER_SECOND`). Attackers open raw sockets and send a request line
and then a header byte a second, or a whole head and then a body byte a second; a
well-behaved client keeps uploading and downloading meanwhile. uvicorn alone never closed
either kind (app/http_protocol.py has the guard).
"""

from __future__ import annotations

import asyncio
import os
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
CLOSE_BOUND = HEADER_TIMEOUT + 3.0
TRICKLE_SECONDS = 1.0
ATTACKERS = scaled(200, 1000)
ATTACK_SECONDS = scaled(6, 30)
# What "served promptly" means on a shared 2-core machine: far below any timeout.
PROMPT_SECONDS = 2.0


@pytest.fixture(scope="module")
def api(stack: ProductionStack) -> Iterator[ApiProcess]:
    """An API process with a short header timeout (and no upload quota in the way)."""
    process = stack.start_api(
        SEALDROP_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        SEALDROP_BODY_MIN_BYTES_PER_SECOND=str(MIN_RATE),
        SEALDROP_BODY_IDLE_TIMEOUT_SECONDS="60",
        SEALDROP_UPLOAD_RATE_PER_MINUTE="0",
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
    """Upload, check and download small files until `until`; each round's seconds."""
    rounds: list[float] = []
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30, trust_env=False) as client:
        while time.monotonic() < until:
            started = time.monotonic()
            data = os.urandom(32 * 1024)
            put = await client.put(
                "/fine.bin", content=data, headers={"Accept": "application/json"}
            )
            assert put.status_code == 201, put.text
            got = await client.get(f"/d/{put.json()['token']}")
            assert got.status_code == 200
            assert got.content == data
            assert (await client.get("/healthz")).status_code == 200
            rounds.append(time.monotonic() - started)
            await asyncio.sleep(0.2)
    return rounds


async def test_trickled_heads_and_bodies_are_closed_while_others_are_served(
    api: ApiProcess,
) -> None:
    heads, bodies = _slow_head(), _slow_body()
    attackers = [
        _trickle(api, *(bodies if i % 4 == 0 else heads), for_seconds=30, every=TRICKLE_SECONDS)
        for i in range(ATTACKERS)
    ]
    attack = asyncio.gather(*attackers)
    await asyncio.sleep(0.5)  # every attacker connected and started
    rounds = await _well_behaved(api, time.monotonic() + ATTACK_SECONDS)
    endings = await attack

    assert rounds, "the well-behaved client got no round through"
    assert max(rounds) < PROMPT_SECONDS, f"slowest round {max(rounds):.2f} s"
    still_open = [i for i, ending in enumerate(endings) if ending is None]
    assert still_open == [], f"{len(still_open)} slow connections were never closed"
    slowest = max(ending.seconds for ending in endings if ending is not None)
    assert slowest < CLOSE_BOUND, f"a slow connection lived {slowest:.1f} s"
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
