"""The boto3 S3 client as Sealdrop uses it: configured once, called off the event loop.

boto3 blocks, so every call runs in a worker thread, and a capacity limiter bounds how many
run at once (as many as the client's connection pool holds). Errors become StorageError
(ObjectMissing for a missing key) carrying the S3 error code and the HTTP status, never the
request, its signature or the credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from http import HTTPStatus
from itertools import islice
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread
import boto3.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.infra import metrics
from app.storage.base import ObjectMissing, StorageError
from app.storage.urls import S3Location

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 60.0
MAX_ATTEMPTS = 5
MAX_CONCURRENT_CALLS = 16
MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
MISSING_UPLOAD_CODES = frozenset({"NoSuchUpload"})

T = TypeVar("T")


def make_client(
    location: S3Location,
    *,
    read_timeout: float = READ_TIMEOUT_SECONDS,
    max_attempts: int = MAX_ATTEMPTS,
) -> S3Client:
    """A client for `location` with explicit timeouts, standard retries and path-style URLs.

    Credentials come from boto3's own chain (environment, profile, IRSA, instance role).
    Checksums are only sent or checked where S3 requires them: servers other than AWS
    (Ceph over HTTPS) reject boto3's default streaming checksums, and the sealed format
    authenticates every byte anyway.
    """
    config = Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=read_timeout,
        retries={"mode": "standard", "max_attempts": max_attempts},
        max_pool_connections=MAX_CONCURRENT_CALLS,
        # No SHA-256 of every request body for SigV4 (botocore signs bodies that carry no
        # checksum header, on HTTPS too): a second hash pass over every byte written, in
        # the API and in the worker. The sealed format authenticates every byte it reads.
        s3={"addressing_style": "path", "payload_signing_enabled": False},
        # SigV4 for presigned URLs too (botocore may presign with SigV2, which newer AWS
        # regions refuse); ordinary calls are SigV4 already.
        signature_version="s3v4",
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    # A session per client: boto3's default session is shared and not thread-safe.
    session = boto3.session.Session()
    return session.client(
        "s3", endpoint_url=location.endpoint_url, region_name=location.region, config=config
    )


class S3Calls:
    """Runs blocking client calls in threads, mapping botocore errors to StorageError."""

    def __init__(
        self,
        location: S3Location,
        *,
        read_timeout: float = READ_TIMEOUT_SECONDS,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.location = location
        self.client = make_client(location, read_timeout=read_timeout, max_attempts=max_attempts)
        self._limiter = anyio.CapacityLimiter(MAX_CONCURRENT_CALLS)

    async def call(self, action: str, function: Callable[..., T], **kwargs: Any) -> T:
        """`function(**kwargs)` in a worker thread; `action` names it in error messages."""
        return await self.run(action, partial(function, **kwargs))

    async def run(self, action: str, function: Callable[[], T]) -> T:
        """`function()` in a worker thread, with S3 errors mapped to StorageError."""
        try:
            return await anyio.to_thread.run_sync(function, limiter=self._limiter)
        except (ClientError, BotoCoreError) as exc:
            code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
            metrics.S3_ERRORS.labels(code).inc()
            raise storage_error(exc, action, self.location.bucket) from exc

    async def batches(self, action: str, items: Iterator[T], size: int) -> list[T]:
        """The next `size` items of a blocking iterator (a paginator), taken in a thread."""
        return await self.run(action, lambda: list(islice(items, size)))

    def close(self) -> None:
        """Close the client's connection pool."""
        self.client.close()


def error_code(exc: ClientError) -> str:
    """The S3 error code of a failed call (`NoSuchKey`, `AccessDenied`, `404`, …)."""
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def storage_error(exc: ClientError | BotoCoreError, action: str, bucket: str) -> StorageError:
    """A StorageError that says what failed and why, without the request or any secret."""
    if isinstance(exc, BotoCoreError):
        # botocore's own messages name the problem (no credentials, endpoint unreachable,
        # timeout) and never include secrets.
        return StorageError(f"S3 {action} in bucket {bucket!r} failed: {exc}")
    code = error_code(exc)
    error_class = ObjectMissing if code in MISSING_KEY_CODES else StorageError
    return error_class(f"S3 {action} in bucket {bucket!r} failed: {_describe(code)}", code=code)


def _describe(code: str) -> str:
    # HEAD answers have no body, so their "code" is only the HTTP status.
    if code.isdigit() and int(code) in HTTPStatus._value2member_map_:
        return f"HTTP {code} {HTTPStatus(int(code)).phrase}"
    return code
