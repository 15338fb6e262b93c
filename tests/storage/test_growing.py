"""Reading a local object while its write is under way (`open_growing`), on a disk and on
tmpfs (where the writer writes in the event loop): what is there is final, the reader
keeps its file across the commit's rename, and a key with neither is missing."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.storage.base import GrowingObject, ObjectMissing
from app.storage.local import LocalStore

MIB = 1 << 20
SHM = Path("/dev/shm")


@pytest.fixture(params=["disk", "tmpfs"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LocalStore]:
    """A local store on the test's folder, or on /dev/shm."""
    if request.param == "disk":
        yield LocalStore(tmp_path / "objects")
        return
    if not SHM.is_dir():
        pytest.skip("no /dev/shm here")
    root = SHM / f"sealdrop-growing-{os.getpid()}-{tmp_path.name}"
    try:
        yield LocalStore(root)
    finally:
        for path in sorted(root.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        root.rmdir()


async def _read(growing: GrowingObject, offset: int, length: int) -> bytes:
    view = memoryview(bytearray(length))
    got = await growing.read_into(view, offset)
    return bytes(view[:got])


async def test_a_write_is_read_as_it_grows_and_after_its_commit(store: LocalStore) -> None:
    data = os.urandom(3 * MIB + 5)
    writer = await store.open_writer("staging/job")
    await writer.write(data[: 2 * MIB])  # straight to the file (1 MiB or more)
    growing = await store.open_growing("staging/job")
    try:
        assert await growing.available() == 2 * MIB
        assert await _read(growing, MIB - 3, 10) == data[MIB - 3 : MIB + 7]
        await writer.write(data[2 * MIB : 2 * MIB + 100])  # buffered: not in the file yet
        assert await growing.available() == 2 * MIB
        await writer.write(data[2 * MIB + 100 :])
        await writer.commit()
        # The same file, now under the object's name.
        assert await growing.available() == len(data)
        assert await _read(growing, 0, len(data)) == data
    finally:
        await growing.close()
    assert await store.size("staging/job") == len(data)


async def test_a_committed_object_is_opened_when_no_write_is_under_way(
    store: LocalStore,
) -> None:
    writer = await store.open_writer("staging/done")
    await writer.write(b"sealed bytes")
    await writer.commit()
    growing = await store.open_growing("staging/done")
    try:
        assert await _read(growing, 0, 100) == b"sealed bytes"
    finally:
        await growing.close()


async def test_neither_a_write_nor_an_object_is_missing(store: LocalStore) -> None:
    writer = await store.open_writer("staging/gone")
    await writer.write(b"x")
    await writer.abort()
    with pytest.raises(ObjectMissing):
        await store.open_growing("staging/gone")
