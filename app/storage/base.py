"""The object-store interface that the domain and the worker code against.

An object store keeps immutable objects under full keys (`staging/<job id>`,
`blobs/<blob id>`: `app.storage.object_keys` builds them). Objects are written through an
`ObjectWriter` and appear atomically under their key on `commit`; reads are ranged and
streamed in fixed-size chunks, so memory stays bounded whatever the object size.
Backends: `local` (a folder) and `s3`.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Self

from app.storage.readahead import read_ahead

# Keys name files on disk and objects in S3: each part must be a plain file name (no
# `.`/`..`, nothing hidden — names starting with a dot are the local backend's
# temporaries), short enough to leave room for the temporary's suffix.
_KEY_PART = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_\-.=+~@]*")
MAX_KEY_PART_BYTES = 200
MAX_KEY_BYTES = 1024


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One stored object, as listed."""

    key: str
    size: int
    modified: datetime  # aware, UTC


@dataclass(frozen=True, slots=True)
class PendingUpload:
    """An unfinished write: a local temporary file or an S3 multipart upload."""

    key: str
    upload_id: str
    started: datetime  # aware, UTC


class StorageError(Exception):
    """A storage operation failed. Messages never contain credentials or secrets.

    `code` is the backend's own error code when it gave one (S3: `AccessDenied`, …).
    """

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class ObjectMissing(StorageError):
    """The object asked for does not exist."""


def check_key(key: str) -> str:
    """Return `key` if it is a valid object key, else raise StorageError.

    A key is `/`-separated parts, each starting with a letter, digit, `_` or `-` and made
    of letters, digits and `_-.=+~@`: no empty, hidden, `.` or `..` parts, no absolute
    path, no backslash, no control characters.
    """
    if not key or len(key.encode()) > MAX_KEY_BYTES:
        raise StorageError(f"invalid object key (empty or longer than {MAX_KEY_BYTES} bytes)")
    for part in key.split("/"):
        if not _KEY_PART.fullmatch(part) or len(part) > MAX_KEY_PART_BYTES:
            raise StorageError(f"invalid object key {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """Return `prefix` if it can start a valid key (`""`, `staging/`, `blobs/ab`), else raise."""
    if prefix == "":
        return prefix
    # A prefix is a key with an optional trailing slash, or a key cut short.
    check_key(prefix.removesuffix("/"))
    return prefix


class ObjectWriter(ABC):
    """Writes one object; nothing is visible under the key until `commit`.

    `upload_id` identifies the unfinished write from the moment the writer is open, so a
    caller can record it and have `ObjectStore.abort_upload` clean up after a crash. Use as
    `async with`: leaving the block without a commit aborts.
    """

    upload_id: str

    @abstractmethod
    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append `data`. The caller may reuse its buffer once this returns."""

    @abstractmethod
    async def commit(self) -> int:
        """Make the object appear atomically under its key; return its size in bytes."""

    @abstractmethod
    async def abort(self) -> None:
        """Discard the write, leaving nothing behind. Idempotent; a no-op after commit."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.abort()


class GrowingObject(ABC):
    """An object whose write may still be under way, read as it grows (`open_growing`).

    Bytes below `available()` are final: a writer only appends, so what is there now is
    what the object will hold there once committed.
    """

    @abstractmethod
    async def available(self) -> int:
        """How many bytes from the start can be read now."""

    @abstractmethod
    async def read_into(self, view: memoryview, offset: int) -> int:
        """Fill `view` from `offset` with bytes already there; how many were read."""

    @abstractmethod
    async def close(self) -> None:
        """Release the file or connection."""


class ObjectStore(ABC):
    """A flat namespace of immutable objects under full keys."""

    @abstractmethod
    async def open_writer(self, key: str, *, size_hint: int | None = None) -> ObjectWriter:
        """Start writing the object `key`; `size_hint` (bytes), when known, sizes S3 parts."""

    @abstractmethod
    def read(
        self,
        key: str,
        start: int = 0,
        length: int | None = None,
        *,
        chunk_size: int = 1 << 20,
    ) -> AsyncGenerator[bytes, None]:
        """Stream `length` bytes (default: to the end) of `key` from `start`, in one read.

        Every chunk but the last has exactly `chunk_size` bytes; nothing beyond the range is
        yielded. If the object is shorter than asked the last chunk is short (or nothing is
        yielded when `start` is past the end): the caller checks. Raises ObjectMissing (on
        the first iteration) when the object does not exist. A reader that stops early calls
        `aclose()` (or uses `contextlib.aclosing`) to release the file or connection at once.
        """

    def stream(
        self, key: str, start: int = 0, length: int | None = None, *, chunk_size: int = 1 << 20
    ) -> AsyncGenerator[bytes | memoryview, None]:
        """Like `read`, for a reader that is done with each chunk before it asks for the next.

        A chunk may be a view of a buffer that the next one overwrites. The default reads one
        chunk ahead (`read_ahead`) while the caller works on this one; a backend that can
        read faster in place overrides it.
        """
        return read_ahead(self.read(key, start, length, chunk_size=chunk_size))

    # Whether `open_growing` can read a write still under way (the upload's worker then
    # seals while the body arrives).
    follows_writes = False
    # Whether an upload is instead followed as a series of pieces, each its own object
    # committed as soon as it is whole (`app.domain.piece_staging`): S3, whose unfinished
    # multipart upload no other process can read.
    follows_pieces = False

    async def open_growing(self, key: str) -> GrowingObject:
        """The object `key` as it is being written, or once committed (ObjectMissing if
        neither). Only for stores whose `follows_writes` is true."""
        raise StorageError(f"{type(self).__name__} cannot read a write under way")

    @abstractmethod
    async def size(self, key: str) -> int | None:
        """The object's size in bytes, or None if it does not exist."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Delete the object; deleting a missing object is not an error."""

    @abstractmethod
    def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """Every committed object whose key starts with `prefix` (order not promised)."""

    @abstractmethod
    def list_pending_uploads(self, prefix: str) -> AsyncIterator[PendingUpload]:
        """Every unfinished write whose key starts with `prefix`."""

    @abstractmethod
    async def abort_upload(self, key: str, upload_id: str) -> None:
        """Discard one unfinished write, by the id its writer had. Idempotent."""

    async def discard(self, key: str) -> None:
        """Delete the object `key` and abort every unfinished write of it.

        For what a dead writer may have left: it can die after opening its write and
        before anyone recorded the write's id, so the writes are found by listing.
        """
        async for pending in self.list_pending_uploads(key):
            if pending.key == key:
                await self.abort_upload(key, pending.upload_id)
        await self.delete(key)

    @abstractmethod
    async def check(self) -> None:
        """Readiness: raise StorageError if the store cannot be used."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections and threads; the store is not used afterwards."""


def check_range(start: int, length: int | None, chunk_size: int) -> None:
    """Refuse a negative range or a non-positive chunk size (a caller bug)."""
    if start < 0 or (length is not None and length < 0) or chunk_size <= 0:
        raise ValueError(f"bad range: start={start} length={length} chunk_size={chunk_size}")
