"""The local-folder object store (embedded mode, DESIGN §7).

The object with key `K` lives at `<root>/K`. A write goes to a temporary file
`.<name>.<16 hex>.tmp` beside it (its name is the writer's `upload_id`), is fsynced,
renamed over the final name and its folder fsynced, so an object is either absent or
complete, even across a power cut. Files are 0600 and folders 0700: the objects are
sealed, but nobody else on the machine needs to see even their sizes. File I/O runs in
worker threads, in chunks of about 1 MiB, except `stream`'s reads of what is already in
memory (`app.storage.page_cache`) and writes to a memory file system (tmpfs), which a
thread hand-off would only slow down.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from itertools import islice
from pathlib import Path
from typing import BinaryIO, TypeVar

import anyio.lowlevel
import anyio.to_thread

from app.storage.base import (
    GrowingObject,
    ObjectInfo,
    ObjectMissing,
    ObjectStore,
    ObjectWriter,
    PendingUpload,
    StorageError,
    check_key,
    check_prefix,
    check_range,
)
from app.storage.page_cache import memory_backed, read_cached, read_full

FILE_MODE = 0o600
DIR_MODE = 0o700
WRITE_BUFFER_BYTES = 1 << 20
LIST_BATCH = 500
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?P<random>[0-9a-f]{16})\.tmp")

T = TypeVar("T")


class LocalStore(ObjectStore):
    """Objects as files under one root folder."""

    def __init__(self, root: Path) -> None:
        if not root.is_absolute():
            raise StorageError(f"local storage root must be absolute: {root}")
        self.root = root
        self._in_memory = memory_backed(root)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def path(self, key: str) -> Path:
        """The file that holds (or will hold) the object `key`."""
        return self.root / check_key(key)

    async def open_writer(self, key: str, *, size_hint: int | None = None) -> LocalWriter:
        """Open a temporary file beside the object's final place."""
        final = self.path(key)
        temporary = final.with_name(f".{final.name}.{secrets.token_hex(8)}.tmp")

        def open_temporary() -> int:
            _make_dirs(final.parent)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
            return os.open(temporary, flags, FILE_MODE)

        fd = await _in_thread(open_temporary, f"cannot open a writer for {key!r}")
        return LocalWriter(fd, temporary, final, in_memory=self._in_memory)

    async def read(
        self,
        key: str,
        start: int = 0,
        length: int | None = None,
        *,
        chunk_size: int = 1 << 20,
    ) -> AsyncGenerator[bytes, None]:
        """Stream a byte range of the object from its file."""
        check_range(start, length, chunk_size)
        path = self.path(key)

        def open_at_start() -> BinaryIO:
            try:
                file = path.open("rb")
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise ObjectMissing(f"no object {key!r}") from None
            file.seek(start)
            return file

        file = await _in_thread(open_at_start, f"cannot read {key!r}")
        try:
            remaining = length
            while remaining is None or remaining > 0:
                want = chunk_size if remaining is None else min(chunk_size, remaining)
                # BufferedReader.read(n) returns n bytes unless the file ends first.
                chunk = await _in_thread(partial(file.read, want), f"cannot read {key!r}")
                if chunk:
                    yield chunk
                if len(chunk) < want:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
        finally:
            # Closing a regular file does not block; doing it here also covers aclose().
            file.close()

    async def stream(
        self, key: str, start: int = 0, length: int | None = None, *, chunk_size: int = 1 << 20
    ) -> AsyncGenerator[memoryview, None]:
        """Stream a byte range into one reused buffer, reading in the event loop what is in
        memory and in a worker thread only what must come from a disk."""
        check_range(start, length, chunk_size)
        path = self.path(key)

        def open_file() -> int:
            try:
                return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise ObjectMissing(f"no object {key!r}") from None

        fd = await _in_thread(open_file, f"cannot read {key!r}")
        try:
            buffer = memoryview(
                bytearray(chunk_size if length is None else min(chunk_size, length))
            )
            offset, remaining = start, length
            while remaining is None or remaining > 0:
                view = buffer[: chunk_size if remaining is None else min(chunk_size, remaining)]
                got = await self._read_at(fd, view, offset, key)
                if got:
                    yield view[:got]
                if got < len(view):
                    return
                offset += got
                if remaining is not None:
                    remaining -= got
        finally:
            os.close(fd)

    async def _read_at(self, fd: int, view: memoryview, offset: int, key: str) -> int:
        try:
            got, done = read_cached(fd, view, offset, in_memory=self._in_memory)
        except OSError as exc:
            raise StorageError(f"cannot read {key!r}: {exc.strerror or exc}") from exc
        if done:
            # A read that never waits never yields to the event loop: let other requests
            # (and a cancellation) in between chunks.
            await anyio.lowlevel.checkpoint()
            return got
        # Not in memory: the rest from a worker thread.
        rest = view[got:]
        return got + await _in_thread(
            lambda: read_full(fd, rest, offset + got), f"cannot read {key!r}"
        )

    follows_writes = True

    async def open_growing(self, key: str) -> LocalGrowingObject:
        """Open the writer's temporary file, or the object if it was committed already.

        The file descriptor outlives the rename that commits the write: reading goes on
        from the same file, whatever its name becomes.
        """
        final = self.path(key)

        def open_either() -> int:
            # Twice: a write committed between the look for its temporary and the open of
            # the final name would be missed once, never twice.
            for _ in range(2):
                for path in [*_temporaries_of(final), final]:
                    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            raise ObjectMissing(f"no object or write under way {key!r}")

        fd = await _in_thread(open_either, f"cannot open {key!r}")
        return LocalGrowingObject(fd, key, in_memory=self._in_memory)

    async def size(self, key: str) -> int | None:
        """The file's size, or None if there is no such object."""
        path = self.path(key)

        def file_size() -> int | None:
            try:
                info = path.stat()
            except (FileNotFoundError, NotADirectoryError):
                return None
            return info.st_size if stat.S_ISREG(info.st_mode) else None

        return await _in_thread(file_size, f"cannot stat {key!r}")

    async def delete(self, key: str) -> None:
        """Remove the file if it exists."""
        path = self.path(key)

        def unlink() -> None:
            with contextlib.suppress(IsADirectoryError, NotADirectoryError):
                path.unlink(missing_ok=True)

        await _in_thread(unlink, f"cannot delete {key!r}")

    async def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """Walk the folders that can hold keys under `prefix`, skipping temporaries."""
        async for _path, key, info in self._scan(prefix, temporaries=False):
            yield ObjectInfo(key=key, size=info.st_size, modified=_utc(info.st_mtime))

    async def list_pending_uploads(self, prefix: str) -> AsyncIterator[PendingUpload]:
        """Every temporary file left by a writer that neither committed nor aborted."""
        async for path, key, info in self._scan(prefix, temporaries=True):
            yield PendingUpload(key=key, upload_id=path.name, started=_utc(info.st_mtime))

    async def abort_upload(self, key: str, upload_id: str) -> None:
        """Delete one temporary file, named by the writer's `upload_id`."""
        final = self.path(key)
        match = _TEMPORARY.fullmatch(upload_id)
        if match is None or match["name"] != final.name:
            raise StorageError(f"{upload_id!r} is not an upload id of {key!r}")
        temporary = final.with_name(upload_id)
        await _in_thread(lambda: temporary.unlink(missing_ok=True), f"cannot abort {key!r}")

    async def check(self) -> None:
        """Make sure the root folder exists and is writable."""

        def writable() -> None:
            _make_dirs(self.root)
            if not os.access(self.root, os.W_OK | os.X_OK):
                raise StorageError(f"storage folder {self.root} is not writable")

        await _in_thread(writable, f"storage folder {self.root} is not usable")

    async def close(self) -> None:
        """Nothing to release: every operation opens and closes its own files."""

    async def _scan(
        self, prefix: str, *, temporaries: bool
    ) -> AsyncIterator[tuple[Path, str, os.stat_result]]:
        # The walk is a plain generator advanced in batches in a worker thread: a large
        # folder never blocks the event loop nor sits whole in memory.
        walk = _walk(self.root, check_prefix(prefix), temporaries=temporaries)
        while batch := await _in_thread(lambda: list(islice(walk, LIST_BATCH)), "cannot list"):
            for item in batch:
                yield item


class LocalGrowingObject(GrowingObject):
    """A file read while its writer may still append to it."""

    def __init__(self, fd: int, key: str, *, in_memory: bool) -> None:
        self._fd = fd
        self._key = key
        self._in_memory = in_memory

    async def available(self) -> int:
        """The file's size now (an fstat does not wait for a disk)."""
        try:
            return os.fstat(self._fd).st_size
        except OSError as exc:
            raise StorageError(f"cannot stat {self._key!r}: {exc.strerror or exc}") from exc

    async def read_into(self, view: memoryview, offset: int) -> int:
        """Read in the event loop what is in memory, the rest in a worker thread."""
        try:
            got, done = read_cached(self._fd, view, offset, in_memory=self._in_memory)
        except OSError as exc:
            raise StorageError(f"cannot read {self._key!r}: {exc.strerror or exc}") from exc
        if done:
            await anyio.lowlevel.checkpoint()
            return got
        rest = view[got:]
        return got + await _in_thread(
            lambda: read_full(self._fd, rest, offset + got), f"cannot read {self._key!r}"
        )

    async def close(self) -> None:
        """Close the file (does not block)."""
        os.close(self._fd)


def _temporaries_of(final: Path) -> list[Path]:
    """The temporary files of writes under way to `final` (normally one at most)."""
    try:
        with os.scandir(final.parent) as scan:
            names = [entry.name for entry in scan]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [
        final.with_name(name)
        for name in names
        if (match := _TEMPORARY.fullmatch(name)) is not None and match["name"] == final.name
    ]


class LocalWriter(ObjectWriter):
    """Writes a temporary file, then renames it into place on commit."""

    def __init__(self, fd: int, temporary: Path, final: Path, *, in_memory: bool = False) -> None:
        self.upload_id = temporary.name
        # On a memory file system a write never waits for a disk: it is done in the event
        # loop, where handing each segment to a thread cost more than the copy itself.
        self._in_memory = in_memory
        self._fd: int | None = fd
        self._temporary = temporary
        self._final = final
        self._buffer = bytearray()
        self._size = 0
        self._committed = False

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer `data`, writing to the file once about 1 MiB has gathered.

        A piece of 1 MiB or more (a whole sealed segment) is written straight from the
        caller's buffer, without a copy.
        """
        if self._fd is None:
            raise StorageError("write to a closed writer")
        if memoryview(data).nbytes >= WRITE_BUFFER_BYTES:
            await self._flush()
            await self._write(data)
            return
        self._buffer += data
        if len(self._buffer) >= WRITE_BUFFER_BYTES:
            await self._flush()

    async def commit(self) -> int:
        """Flush, fsync, rename into place and fsync the folder; return the size."""
        if self._fd is None:
            raise StorageError("commit of a closed writer")
        try:
            await self._flush()
            fd, self._fd = self._fd, None
            await _in_thread(lambda: self._publish(fd), f"cannot commit {self._final.name!r}")
        except BaseException:
            await self.abort()
            raise
        self._committed = True
        return self._size

    async def abort(self) -> None:
        """Close and delete the temporary file; nothing to do after a commit."""
        if self._committed:
            return
        fd, self._fd = self._fd, None
        self._buffer = bytearray()

        def discard() -> None:
            if fd is not None:
                os.close(fd)
            self._temporary.unlink(missing_ok=True)

        with anyio.CancelScope(shield=True):
            await _in_thread(discard, "cannot abort a write")

    async def _flush(self) -> None:
        if not self._buffer:
            return
        data, self._buffer = self._buffer, bytearray()
        await self._write(data)

    async def _write(self, data: bytes | bytearray | memoryview) -> None:
        fd = self._fd
        if fd is None:
            return
        try:
            if self._in_memory:
                _write_now(fd, data)
                await anyio.lowlevel.checkpoint()
            else:
                await _in_thread(lambda: _write_all(fd, data), "cannot write")
        except BaseException:
            await self.abort()
            raise
        self._size += memoryview(data).nbytes

    def _publish(self, fd: int) -> None:
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self._temporary, self._final)
        _fsync_dir(self._final.parent)


def _write_now(fd: int, data: bytes | bytearray | memoryview) -> None:
    """`_write_all` in the caller's thread; OSError becomes StorageError."""
    try:
        _write_all(fd, data)
    except OSError as exc:
        raise StorageError(f"cannot write: {exc.strerror or exc}") from exc


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view) :]


def _make_dirs(folder: Path) -> None:
    """Create `folder` and its missing parents, each 0700 and its entry fsynced."""
    missing: list[Path] = []
    while not folder.is_dir() and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        path.chmod(DIR_MODE)  # mkdir's mode is narrowed by the umask, never widened
        _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _walk(
    root: Path, prefix: str, *, temporaries: bool
) -> Iterator[tuple[Path, str, os.stat_result]]:
    """Yield (file, key, stat) for objects (or temporaries) whose key starts with `prefix`."""
    folder_key, _, _ = prefix.rpartition("/")
    stack = [folder_key]
    while stack:
        folder_key = stack.pop()
        try:
            with os.scandir(root / folder_key) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            yield from _visit(entry, folder_key, prefix, stack, temporaries=temporaries)


def _visit(
    entry: os.DirEntry[str],
    folder_key: str,
    prefix: str,
    stack: list[str],
    *,
    temporaries: bool,
) -> Iterator[tuple[Path, str, os.stat_result]]:
    base = f"{folder_key}/" if folder_key else ""
    if entry.is_dir(follow_symlinks=False):
        key = base + entry.name
        if key.startswith(prefix) or prefix.startswith(key + "/"):
            stack.append(key)
        return
    if not entry.is_file(follow_symlinks=False):
        return
    match = _TEMPORARY.fullmatch(entry.name)
    if temporaries != (match is not None):
        return
    key = base + (match["name"] if match else entry.name)
    if key.startswith(prefix):
        try:
            yield Path(entry.path), key, entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            return  # committed or aborted while we looked


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


async def _in_thread(function: Callable[[], T], failure: str) -> T:
    """Run blocking file work in a worker thread; OSError becomes StorageError."""
    try:
        return await anyio.to_thread.run_sync(function)
    except OSError as exc:
        raise StorageError(f"{failure}: {exc.strerror or exc}") from exc
