"""Helpers of the hostile suite (tests/hostile/): production stacks, uploads, and the check
that no download ever completes with a wrong byte.

`production_stack(root, **env)` starts a `ProductionStack` and stops it (a context manager
for module fixtures). `put` uploads through the API; `fetch` downloads with httpx and says
whether the body arrived complete (every byte `Content-Length` promised, no cut
connection), so `assert_never_wrong` can state the promise of DESIGN §4: an answer is an
error, or a short transfer whose bytes are a true prefix, or exactly the file.

`SOAK` (`SEALDROP_SOAK=1`) scales rounds and sizes up; the default is the CI form.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from app.crypto.tokens import token_hash
from app.storage import object_keys
from tests.support.production import Backends, ProductionStack, s3_url
from tests.support.stack import SWEEP_NOW, wait_until

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SOAK = os.environ.get("SEALDROP_SOAK") == "1"
SEGMENT_LOG2 = 16
SEGMENT = 1 << SEGMENT_LOG2
HEADER = 16
TAG = 16
READ_CHUNK = 1 << 16
REQUEST_TIMEOUT_SECONDS = 60.0
SETTLE_TIMEOUT_SECONDS = 60.0


def scaled(ci: int, soak: int) -> int:
    """`ci` rounds in the CI form, `soak` under SEALDROP_SOAK=1."""
    return soak if SOAK else ci


@contextmanager
def production_stack(
    root: Path,
    *,
    workers: int = 1,
    concurrency: int = 2,
    backends: Backends | None = None,
    s3_endpoint: str | None = None,
    **env: str,
) -> Iterator[ProductionStack]:
    """A started `ProductionStack` (64 KiB segments unless `env` says otherwise), stopped after.

    `s3_endpoint` puts another endpoint (a fault proxy) between its processes and S3; the
    test's own look behind the stack (`stack.s3`, `list_objects`) still goes straight there.
    """
    settings = {"SEALDROP_SEGMENT_LOG2": str(SEGMENT_LOG2), **env}
    stack = ProductionStack(
        root,
        worker="embedded" if workers else "off",
        workers=workers,
        concurrency=concurrency,
        env=settings,
        backends=backends,
    )
    if s3_endpoint is not None:
        stack.env["SEALDROP_STORAGE_URL"] = s3_url(stack.blobs_bucket, s3_endpoint)
        stack.env["SEALDROP_STAGING_URL"] = s3_url(stack.staging_bucket, s3_endpoint)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@dataclass(frozen=True)
class Uploaded:
    """A link as the upload answered it."""

    status: int
    token: str
    download_url: str
    manage_token: str


def put(
    base_url: str,
    data: bytes,
    *,
    name: str = "file.bin",
    headers: Mapping[str, str] | None = None,
    timeout: float = REQUEST_TIMEOUT_SECONDS,
) -> Uploaded:
    """`PUT /<name>` with `data`; fails unless the answer is 201 or 202."""
    sent = {"Accept": "application/json", **(headers or {})}
    answer = httpx.put(
        f"{base_url}/{name}", content=data, headers=sent, timeout=timeout, trust_env=False
    )
    assert answer.status_code in (201, 202), f"{answer.status_code} {answer.text[:300]}"
    created = answer.json()
    return Uploaded(
        status=answer.status_code,
        token=created["token"],
        download_url=created["download_url"],
        manage_token=created["manage_token"],
    )


def on(base_url: str, link: Uploaded) -> str:
    """The link's download URL on another API process of the same stack."""
    path = link.download_url.split("/d/", 1)[1]
    return f"{base_url}/d/{path}"


def link_row(stack: ProductionStack, token: str) -> Any:
    """The link's row (id, state, blob_id, expires_at, download_count, max_downloads)."""
    rows = stack.sql(
        "SELECT id, state, blob_id, expires_at, download_count, max_downloads"
        " FROM links WHERE token_hash = :hash",
        hash=token_hash(token),
    )
    assert len(rows) == 1, rows
    return rows[0]


def wait_ready(stack: ProductionStack, token: str, timeout: float = SETTLE_TIMEOUT_SECONDS) -> Any:
    """Wait until the link is sealed; its row."""
    return wait_until(
        lambda: (row := link_row(stack, token)).state == "ready" and row,
        timeout=timeout,
        interval=0.05,
        what="a ready link",
    )


@dataclass
class Fetched:
    """One download as a client saw it."""

    status: int
    headers: dict[str, str]
    body: bytes
    expected_length: int | None
    error: str | None = None
    seconds: float = 0.0
    trace: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """A success status, every promised byte, and no cut connection."""
        return (
            200 <= self.status < 300
            and self.error is None
            and (self.expected_length is None or len(self.body) == self.expected_length)
        )


def fetch(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    bytes_per_second: float | None = None,
    timeout: float = REQUEST_TIMEOUT_SECONDS,
) -> Fetched:
    """GET `url` and read the whole body (slowly, at `bytes_per_second`, if given).

    A connection cut mid-body is recorded in `error`, never raised.
    """
    started = time.monotonic()
    body = bytearray()
    status, answer_headers, length, error = 0, {}, None, None
    try:
        with httpx.stream(
            "GET", url, headers=dict(headers or {}), timeout=timeout, trust_env=False
        ) as answer:
            status, answer_headers = answer.status_code, dict(answer.headers)
            length = (
                int(answer.headers["content-length"])
                if "content-length" in answer.headers
                else None
            )
            for chunk in answer.iter_raw(READ_CHUNK):
                body += chunk
                if bytes_per_second:
                    time.sleep(len(chunk) / bytes_per_second)
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout) as exc:
        error = f"{type(exc).__name__}: {exc}"
    return Fetched(
        status=status,
        headers=answer_headers,
        body=bytes(body),
        expected_length=length,
        error=error,
        seconds=time.monotonic() - started,
    )


def assert_never_wrong(fetched: Fetched, data: bytes, start: int = 0) -> None:
    """The promise: a complete 2xx body is exactly the file (or the range asked for from
    `start`); anything else is an error status or a cut transfer holding a true prefix."""
    if fetched.complete:
        assert fetched.body == data[start : start + len(fetched.body)], "a wrong body completed"
        assert len(fetched.body) == len(data) - start or "content-range" in fetched.headers
        return
    if 200 <= fetched.status < 300:
        assert fetched.body == data[start : start + len(fetched.body)], "wrong bytes before a cut"
        assert fetched.error is not None or len(fetched.body) != fetched.expected_length


def sha256(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def blob_key(stack: ProductionStack, token: str) -> str:
    """The object key of a ready link's blob."""
    row = wait_ready(stack, token)
    return object_keys.blob_object_key(row.blob_id)


_clients: dict[int, S3Client] = {}


def s3_of(stack: ProductionStack) -> S3Client:
    """One boto3 client of the stack's endpoint, kept (making one takes a few tenths of a
    second: too slow to poll with)."""
    return _clients.setdefault(id(stack), stack.s3)


def objects(stack: ProductionStack, prefix: str) -> list[str]:
    """Keys of the objects under `prefix` in the bucket that holds it."""
    pages = (
        s3_of(stack)
        .get_paginator("list_objects_v2")
        .paginate(Bucket=stack.bucket_of(prefix), Prefix=prefix)
    )
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def pending_uploads(stack: ProductionStack, prefix: str) -> list[str]:
    """Upload ids of the unfinished multipart uploads under `prefix`."""
    pages = (
        s3_of(stack)
        .get_paginator("list_multipart_uploads")
        .paginate(Bucket=stack.bucket_of(prefix), Prefix=prefix)
    )
    return sorted(upload["UploadId"] for page in pages for upload in page.get("Uploads", []))


def assert_objects_match_rows(stack: ProductionStack) -> None:
    """Every object under blobs/ has a `blobs` row (nothing half-written is visible)."""
    rows = {object_keys.blob_object_key(row[0]) for row in stack.sql("SELECT id FROM blobs")}
    stray = set(objects(stack, object_keys.BLOBS_PREFIX)) - rows
    assert not stray, f"objects with no blobs row: {sorted(stray)}"


def purge_now(stack: ProductionStack, **env: str) -> str:
    """`sealdrop purge` with no grace and next to no minimum age: sweep everything
    sweepable now."""
    settings = {
        "SEALDROP_PURGE_GRACE_SECONDS": "0",
        **SWEEP_NOW,
        **env,
    }
    result = stack.run_cli("purge", **settings)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def stop_quietly(process: Any) -> None:
    """SIGTERM a process of a stack and reap it, ignoring one already gone."""
    with suppress(ProcessLookupError):
        if process.poll() is None:
            process.terminate()
            process.wait(30)
