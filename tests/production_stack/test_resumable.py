"""Resumable (tus) uploads across API processes sharing one PostgreSQL and one S3.

The upload's state lives in the database, its acknowledged bytes in committed S3 objects:
a PATCH on a second API process continues an upload begun on the first; an API process
SIGKILLed in the middle of a PATCH loses nothing that was acknowledged, and what it was
writing is removed; two PATCHes racing at one offset on two processes: one wins, the
other gets 409 and its piece is deleted.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from urllib.parse import urlsplit

import httpx
import pytest

from tests.production_stack.conftest import ProductionStacks
from tests.support.production import ProductionStack
from tests.support.stack import wait_until

pytestmark = [pytest.mark.production]

MiB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}


async def _create(http: httpx.AsyncClient, base_url: str, length: int) -> str:
    answer = await http.post(
        f"{base_url}/api/v1/uploads/",
        headers={**TUS, "Upload-Length": str(length), "Upload-Metadata": "filename YS5iaW4="},
    )
    assert answer.status_code == 201, answer.text
    return urlsplit(answer.headers["location"]).path


async def _patch(
    http: httpx.AsyncClient, base_url: str, path: str, offset: int, data: bytes
) -> httpx.Response:
    return await http.patch(
        f"{base_url}{path}", content=data, headers={**PATCH, "Upload-Offset": str(offset)}
    )


async def _offset(http: httpx.AsyncClient, base_url: str, path: str) -> int:
    answer = await http.head(f"{base_url}{path}", headers=TUS)
    assert answer.status_code == 200
    return int(answer.headers["upload-offset"])


async def _download(http: httpx.AsyncClient, url: str) -> bytes:
    for _ in range(300):
        answer = await http.get(url)
        if answer.status_code != 503:
            break
        await asyncio.sleep(0.2)
    assert answer.status_code == 200, answer.text
    return answer.content


def _job_id(stack: ProductionStack) -> str:
    rows = stack.sql("select id from tus_uploads")
    assert len(rows) == 1
    job_id: str = rows[0].id
    return job_id


async def test_a_patch_on_a_second_api_process_continues_the_upload(
    make_stack: ProductionStacks,
) -> None:
    stack = make_stack(workers=1, SEALDROP_SEGMENT_LOG2="16")
    second = stack.start_api()
    data = os.urandom(3 * MiB + 777)
    async with httpx.AsyncClient(timeout=60) as http:
        path = await _create(http, stack.base_url, len(data))
        first = await _patch(http, stack.base_url, path, 0, data[:MiB])
        assert first.status_code == 204
        assert await _offset(http, second.base_url, path) == MiB
        done = await _patch(http, second.base_url, path, MiB, data[MiB:])
        assert done.status_code == 204, done.text
        assert await _download(http, done.headers["sealdrop-download-url"]) == data
    job_id = _job_id(stack)
    wait_until(lambda: not stack.list_objects(f"staging/{job_id}"), timeout=30, what="cleanup")


def _start_patch(base_url: str, path: str, offset: int, length: int, first: bytes) -> socket.socket:
    """A PATCH announcing `length` bytes, of which only `first` are sent (the rest never)."""
    parts = urlsplit(base_url)
    assert parts.hostname is not None
    assert parts.port is not None
    sock = socket.create_connection((parts.hostname, parts.port))
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nTus-Resumable: 1.0.0\r\n"
        f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )
    sock.sendall(head.encode() + first)
    return sock


async def test_an_api_process_killed_mid_patch_loses_nothing_acknowledged(
    make_stack: ProductionStacks,
) -> None:
    stack = make_stack(workers=1, SEALDROP_SEGMENT_LOG2="16")
    doomed = stack.start_api()
    data = os.urandom(8 * MiB)
    async with httpx.AsyncClient(timeout=60) as http:
        path = await _create(http, stack.base_url, len(data))
        assert (await _patch(http, stack.base_url, path, 0, data[:MiB])).status_code == 204
        job_id = _job_id(stack)
        # Half of the rest goes to the doomed process, which is killed while it writes.
        rest = data[MiB:]
        sock = _start_patch(doomed.base_url, path, MiB, len(rest), rest[: len(rest) // 2])
        try:
            wait_until(
                lambda: stack.list_pending_writes(f"staging/{job_id}."),
                timeout=30,
                what="the doomed PATCH writing its piece",
            )
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.process.wait(10)
        finally:
            sock.close()
        assert await _offset(http, stack.base_url, path) == MiB
        done = await _patch(http, stack.base_url, path, MiB, rest)
        assert done.status_code == 204, done.text
        assert await _download(http, done.headers["sealdrop-download-url"]) == data
    # Sealed: the pieces, and the piece the killed process was writing, are gone.
    wait_until(
        lambda: (
            not stack.list_objects(f"staging/{job_id}")
            and not stack.list_pending_writes(f"staging/{job_id}")
        ),
        timeout=30,
        what="the pieces removed",
    )


async def test_two_patches_racing_at_one_offset_on_two_processes_one_wins(
    make_stack: ProductionStacks,
) -> None:
    stack = make_stack(workers=0, SEALDROP_SEGMENT_LOG2="16")
    second = stack.start_api()
    data = os.urandom(2 * MiB)
    async with httpx.AsyncClient(timeout=60) as http:
        path = await _create(http, stack.base_url, 4 * MiB)
        answers = await asyncio.gather(
            _patch(http, stack.base_url, path, 0, data),
            _patch(http, second.base_url, path, 0, data[::-1]),
        )
        assert sorted(a.status_code for a in answers) == [204, 409]
        assert await _offset(http, second.base_url, path) == 2 * MiB
    job_id = _job_id(stack)
    # The loser's piece was deleted: one piece, the winner's, is staged.
    assert len(stack.list_objects(f"staging/{job_id}.")) == 1
    assert stack.list_pending_writes(f"staging/{job_id}.") == []
    pieces = stack.sql("select pieces from tus_uploads where id = :id", id=job_id)[0].pieces
    assert pieces.count("],[") == 0  # one entry in the JSON list
