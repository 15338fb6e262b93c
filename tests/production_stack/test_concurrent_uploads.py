"""200 uploads sealed by four worker processes: each once, each intact, nothing left over."""

from __future__ import annotations

import asyncio
import hashlib
import os

import httpx
import pytest

from tests.production_stack.checks import (
    assert_nothing_left_over,
    sealed_counts,
    wait_all_ready,
)
from tests.production_stack.conftest import ProductionStacks

pytestmark = [pytest.mark.production, pytest.mark.slow]

UPLOADS = 200
WORKERS = 4
IN_FLIGHT = 16
SEGMENT = 1 << 16
# Empty, one byte, segment edges, and files of several segments.
SIZES = [0, 1, 1000, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT + 17, 5 * SEGMENT]


async def _upload_all(base_url: str, payloads: list[bytes]) -> list[dict[str, str]]:
    limit = asyncio.Semaphore(IN_FLIGHT)
    headers = {"Prefer": "respond-async", "Accept": "application/json"}

    async def one(http: httpx.AsyncClient, number: int, data: bytes) -> dict[str, str]:
        async with limit:
            answer = await http.put(f"/file-{number}.bin", content=data, headers=headers)
        assert answer.status_code in (201, 202), answer.text
        created: dict[str, str] = answer.json()
        return created

    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        return await asyncio.gather(*(one(http, n, data) for n, data in enumerate(payloads)))


async def _download_all(links: list[dict[str, str]]) -> list[bytes]:
    limit = asyncio.Semaphore(IN_FLIGHT)

    async def one(http: httpx.AsyncClient, url: str) -> bytes:
        async with limit:
            answer = await http.get(url)
        assert answer.status_code == 200, answer.text
        return answer.content

    async with httpx.AsyncClient(timeout=60) as http:
        return await asyncio.gather(*(one(http, link["download_url"]) for link in links))


async def test_two_hundred_uploads_over_four_workers_are_each_sealed_once(
    make_stack: ProductionStacks,
) -> None:
    stack = make_stack(
        workers=WORKERS, SEALDROP_SEGMENT_LOG2="16", SEALDROP_UPLOAD_RATE_PER_MINUTE="0"
    )
    payloads = [os.urandom(SIZES[n % len(SIZES)]) for n in range(UPLOADS)]

    links = await _upload_all(stack.base_url, payloads)
    await asyncio.to_thread(wait_all_ready, stack, UPLOADS)

    counts = sealed_counts(stack)
    assert len(counts) == UPLOADS
    assert set(counts.values()) == {1}
    per_worker = {pid: len(jobs) for pid, jobs in stack.sealed_jobs().items()}
    assert all(per_worker.values()), f"a worker sealed nothing: {per_worker}"
    blob_ids = [row[0] for row in stack.sql("SELECT blob_id FROM links WHERE state = 'ready'")]
    assert len(set(blob_ids)) == UPLOADS
    downloads = await _download_all(links)
    for data, link, got in zip(payloads, links, downloads, strict=True):
        assert hashlib.sha256(got).hexdigest() == link["sha256"] == hashlib.sha256(data).hexdigest()
    await asyncio.to_thread(assert_nothing_left_over, stack)
