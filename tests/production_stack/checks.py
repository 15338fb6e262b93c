"""What the process-level tests send to a production stack, and what they check behind it.

`put_file` uploads through the API; `download_digest` fetches a link and hashes it as it
streams; `wait_all_ready` waits for the queue to drain; `assert_nothing_left_over` checks
the buckets against the database: every object under `blobs/` is a `blobs` row and the
reverse, staging is empty, no multipart upload is incomplete and no job row remains.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.production import ProductionStack
from tests.support.stack import wait_until

CHUNK = 1 << 20
SETTLE_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Link:
    """An uploaded file as the API answered it, and what it should download as."""

    token: str
    download_url: str
    sha256: bytes
    status: int


def write_random_file(path: Path, size: int) -> bytes:
    """A file of `size` random bytes; returns its SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as file:
        left = size
        while left:
            chunk = os.urandom(min(CHUNK, left))
            digest.update(chunk)
            file.write(chunk)
            left -= len(chunk)
    return digest.digest()


def put_file(
    stack: ProductionStack, path: Path, *, respond_async: bool = True, known_length: bool = True
) -> Link:
    """`PUT /<name>` of a file, streamed; asks not to wait for sealing by default.

    Without `known_length` the body is sent chunked (no Content-Length): the upload is
    staged whole and sealed after its last byte, never followed while it arrives.
    """
    headers = {"Accept": "application/json"}
    if respond_async:
        headers["Prefer"] = "respond-async"
    with path.open("rb") as file:
        body = file if known_length else iter(lambda: file.read(CHUNK), b"")
        answer = httpx.put(
            f"{stack.base_url}/{path.name}", content=body, headers=headers, timeout=120
        )
    assert answer.status_code in (201, 202), answer.text
    created = answer.json()
    return Link(
        token=created["token"],
        download_url=created["download_url"],
        sha256=bytes.fromhex(created["sha256"]),
        status=answer.status_code,
    )


def download_digest(url: str) -> bytes:
    """GET the file and return the SHA-256 of its body (failing on any status but 200)."""
    digest = hashlib.sha256()
    with httpx.stream("GET", url, timeout=120) as answer:
        assert answer.status_code == 200, answer.read()
        for chunk in answer.iter_bytes(CHUNK):
            digest.update(chunk)
    return digest.digest()


def wait_all_ready(
    stack: ProductionStack, count: int, timeout: float = SETTLE_TIMEOUT_SECONDS
) -> None:
    """Wait until `count` links are ready and no job row is left."""

    def settled() -> bool:
        ready = stack.sql("SELECT count(*) FROM links WHERE state = 'ready'")[0][0]
        jobs = stack.sql("SELECT count(*) FROM jobs")[0][0]
        return ready == count and jobs == 0

    wait_until(settled, timeout=timeout, interval=0.2, what=f"{count} ready links")


def sealed_counts(stack: ProductionStack) -> Counter[str]:
    """How many `job … sealed` lines each job id has across every worker's log."""
    return Counter(job for jobs in stack.sealed_jobs().values() for job in jobs)


def assert_nothing_left_over(stack: ProductionStack) -> None:
    """Objects match rows; staging, incomplete uploads and the jobs table are empty.

    The staging object goes after the commit that readies the link, so it is waited for.
    """
    wait_until(
        lambda: not stack.list_objects("staging/"),
        timeout=SETTLE_TIMEOUT_SECONDS,
        what="an empty staging area",
    )
    blob_rows = {f"blobs/{row[0]}" for row in stack.sql("SELECT id FROM blobs")}
    assert set(stack.list_objects("blobs/")) == blob_rows
    assert stack.list_objects() == sorted(blob_rows)
    assert stack.pending_writes() == []
    assert stack.sql("SELECT id, state, last_error FROM jobs") == []
