"""Object storage: one interface (`ObjectStore`) with a local-folder and an S3 backend.

`open_store(url)` turns `SEALDROP_STORAGE_URL` / `SEALDROP_STAGING_URL` into a store. The
S3 backend is imported only when used, so the embedded mode never loads boto3.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.storage.base import (
    ObjectInfo,
    ObjectMissing,
    ObjectStore,
    ObjectWriter,
    PendingUpload,
    StorageError,
)
from app.storage.local import LocalStore
from app.storage.urls import LocalLocation, parse_store_url

__all__ = [
    "ObjectInfo",
    "ObjectMissing",
    "ObjectStore",
    "ObjectWriter",
    "PendingUpload",
    "S3Options",
    "StorageError",
    "open_store",
]


@dataclass(frozen=True, slots=True)
class S3Options:
    """How patient the S3 client is: each wait for an answer or body bytes is bounded by
    `read_timeout` seconds, and a call is tried `max_attempts` times in all (backing off
    between tries) before it fails; so a stalled or failing S3 ends in bounded time."""

    read_timeout: float = 60.0
    max_attempts: int = 5


def open_store(url: str, *, s3: S3Options | None = None) -> ObjectStore:
    """The store for a `file:///abs/path` or `s3://bucket?endpoint_url=…&region=…` URL.

    `s3` tunes the S3 client's timeouts and retries (defaults when None).

    Building an S3 store creates its boto3 client (a blocking call of a few tens of
    milliseconds): call this at startup (lifespan, worker start), not per request.
    """
    location = parse_store_url(url)
    if isinstance(location, LocalLocation):
        return LocalStore(location.root)
    from app.storage.s3 import S3Store

    options = s3 or S3Options()
    return S3Store(location, read_timeout=options.read_timeout, max_attempts=options.max_attempts)
