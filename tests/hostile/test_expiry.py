"""Expiry and download limits at their edges, on the suite's production stack.

Every time decision is the database's: a test moves a link's `expires_at` with SQL
relative to the database clock, downloads a second before (served) and a second after
(410), a Range resume included. A purge that runs while a slow client is still reading
lets the download finish or cuts it, never reports a short body complete. A link allowed
N downloads, hit in parallel through three API processes, serves exactly N.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress

import httpx
import pytest

from app.crypto.tokens import token_hash
from tests.support.hostile import (
    Fetched,
    Uploaded,
    assert_never_wrong,
    fetch,
    link_row,
    on,
    purge_now,
    put,
    scaled,
    wait_ready,
)
from tests.support.production import ApiProcess, ProductionStack
from tests.support.stack import wait_until

pytestmark = [pytest.mark.production, pytest.mark.slow]

SIZE = 200_000
LARGE = 24 * 1024 * 1024
RESUME_AT = 70_000
MAX_DOWNLOADS = scaled(5, 50)
PARALLEL_REQUESTS = scaled(30, 300)


@pytest.fixture(scope="module")
def apis(stack: ProductionStack) -> Iterator[list[str]]:
    """The base URLs of three API processes of the stack: its own and two more (which take
    uploads up to 64 MiB, for the slow download)."""
    extra: list[ApiProcess] = [
        stack.start_api(SEALDROP_MAX_UPLOAD_BYTES=str(64 * 1024 * 1024)) for _ in range(2)
    ]
    try:
        yield [stack.base_url, *(api.base_url for api in extra)]
    finally:
        for api in extra:
            api.stop()


def sealed_link(stack: ProductionStack, data: bytes, **headers: str) -> Uploaded:
    """Upload `data` and wait until it is sealed."""
    link = put(stack.base_url, data, headers=headers)
    wait_ready(stack, link.token)
    return link


def expire_in(stack: ProductionStack, link: Uploaded, seconds: float) -> None:
    """Make the link expire `seconds` from now (negative: ago), by the database's clock."""
    stack.sql(
        "UPDATE links SET expires_at = statement_timestamp() + make_interval(secs => :s)"
        " WHERE token_hash = :hash",
        s=seconds,
        hash=token_hash(link.token),
    )


def wait_past_expiry(stack: ProductionStack, link: Uploaded, seconds: float) -> None:
    """Wait until the database clock is `seconds` past the link's expiry."""
    wait_until(
        lambda: stack.sql(
            "SELECT statement_timestamp() >= expires_at + make_interval(secs => :s)"
            " FROM links WHERE token_hash = :hash",
            s=seconds,
            hash=token_hash(link.token),
        )[0][0],
        timeout=30,
        interval=0.05,
        what="the link's expiry to pass",
    )


def test_a_link_serves_a_second_before_it_expires_and_is_gone_a_second_after(
    stack: ProductionStack,
) -> None:
    data = os.urandom(SIZE)
    link = sealed_link(stack, data)
    expire_in(stack, link, 1.0)
    before = fetch(link.download_url)
    wait_past_expiry(stack, link, 1.0)
    after = fetch(link.download_url)
    assert before.status == 200
    assert before.complete
    assert before.body == data
    assert after.status == 410


def test_a_range_resume_is_served_a_second_before_expiry_and_gone_a_second_after(
    stack: ProductionStack,
) -> None:
    data = os.urandom(SIZE)
    link = sealed_link(stack, data)
    first = fetch(link.download_url, headers={"Range": f"bytes=0-{RESUME_AT - 1}"})
    expire_in(stack, link, 1.0)
    resumed = fetch(link.download_url, headers={"Range": f"bytes={RESUME_AT}-"})
    wait_past_expiry(stack, link, 1.0)
    late = fetch(link.download_url, headers={"Range": f"bytes={RESUME_AT}-"})
    assert (first.status, resumed.status) == (206, 206)
    assert first.body + resumed.body == data
    assert late.status == 410
    assert late.body != data[RESUME_AT:]


def test_a_link_expired_a_second_ago_is_gone_even_before_the_purge(
    stack: ProductionStack,
) -> None:
    link = sealed_link(stack, os.urandom(SIZE))
    expire_in(stack, link, -1.0)
    gone = fetch(link.download_url, headers={"Range": "bytes=100-"})
    assert gone.status == 410
    assert link_row(stack, link.token).blob_id is not None  # nothing purged yet: only time


def _read_after_purge(stack: ProductionStack, url: str, link: Uploaded) -> tuple[Fetched, str]:
    """Start reading `url`, stop after the first MiB, expire the link and purge it, then read
    the rest: the download as the client saw it, and what the purge said."""
    body = bytearray()
    status, headers, length, error, purged = 0, {}, None, None, ""
    try:
        with httpx.stream("GET", url, timeout=60, trust_env=False) as answer:
            status, headers = answer.status_code, dict(answer.headers)
            length = int(answer.headers["content-length"])
            chunks = answer.iter_raw(1 << 16)
            while len(body) < 1 << 20:
                body += next(chunks)
            # The client stops reading: the server is held mid-stream by TCP flow control.
            expire_in(stack, link, -1.0)
            purged = purge_now(stack)
            for chunk in chunks:
                body += chunk
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    return Fetched(status, headers, bytes(body), length, error), purged


def test_a_purge_during_a_download_lets_it_finish_or_cuts_it_never_completes_it_short(
    stack: ProductionStack, apis: list[str]
) -> None:
    data = os.urandom(LARGE)
    link = put(apis[1], data, name="large.bin")
    blob_id = wait_ready(stack, link.token).blob_id
    fetched, purged = _read_after_purge(stack, on(apis[1], link), link)
    assert fetched.status == 200
    assert_never_wrong(fetched, data)
    assert fetched.complete or len(fetched.body) < LARGE
    assert purged.startswith("purged ")
    assert stack.sql(
        "SELECT purged_at IS NOT NULL FROM links WHERE token_hash = :hash",
        hash=token_hash(link.token),
    ) == [(True,)]
    assert stack.sql("SELECT count(*) FROM blobs WHERE id = :id", id=blob_id)[0][0] == 0
    assert f"blobs/{blob_id}" not in stack.list_objects("blobs/")
    assert fetch(on(apis[2], link)).status == 410


def test_parallel_downloads_through_three_api_processes_serve_exactly_the_allowed_number(
    stack: ProductionStack, apis: list[str]
) -> None:
    data = os.urandom(SIZE)
    link = sealed_link(stack, data, **{"Max-Downloads": str(MAX_DOWNLOADS)})
    start = threading.Barrier(min(PARALLEL_REQUESTS, 32))
    urls = [on(apis[n % len(apis)], link) for n in range(PARALLEL_REQUESTS)]

    def download(url: str) -> Fetched:
        # The stragglers of a run larger than the barrier go at once.
        with suppress(threading.BrokenBarrierError):
            start.wait(10)
        return fetch(url)

    with ThreadPoolExecutor(max_workers=min(PARALLEL_REQUESTS, 32)) as pool:
        results = list(pool.map(download, urls))
    served = [result for result in results if result.status == 200]
    for result in results:
        assert_never_wrong(result, data)
    assert sorted({result.status for result in results}) == [200, 410]
    assert len(served) == MAX_DOWNLOADS
    assert all(result.complete and result.body == data for result in served)
    assert link_row(stack, link.token).download_count == MAX_DOWNLOADS
