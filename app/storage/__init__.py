"""Object storage: one interface (`ObjectStore`) with a local-folder and an S3 backend.

`open_store(url)` turns `SEALDROP_STORAGE_URL` / `SEALDROP_STAGING_URL` into a store. The
S3 backend is imported only when used, so the embedded mode never loads boto3.
"""

from __future__ import annotations

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
    "StorageError",
    "open_store",
]


def open_store(url: str, *, s3_read_timeout: float | None = None) -> ObjectStore:
    """The store for a `file:///abs/path` or `s3://bucket?endpoint_url=…&region=…` URL.

    `s3_read_timeout` bounds each wait for an S3 answer or body bytes (the client's
    default when None); a stalled call then ends in a retry or an error, never a hang.

    Building an S3 store creates its boto3 client (a blocking call of a few tens of
    milliseconds): call this at startup (lifespan, worker start), not per request.
    """
    location = parse_store_url(url)
    if isinstance(location, LocalLocation):
        return LocalStore(location.root)
    from app.storage.s3 import S3Store

    if s3_read_timeout is None:
        return S3Store(location)
    return S3Store(location, read_timeout=s3_read_timeout)
