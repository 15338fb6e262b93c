"""Reading in the event loop only what no disk has to give: the mount table and the reads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.storage.local import LocalStore
from app.storage.page_cache import memory_backed, read_cached
from tests.storage.store_behaviours import MIB, stream_copies, write_object

SHM = Path("/dev/shm")


def _mount_type(point: str) -> str | None:
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[1] == point:
            return fields[2]
    return None


def test_a_folder_on_tmpfs_is_memory_backed(tmp_path: Path) -> None:
    if _mount_type(str(SHM)) != "tmpfs":
        pytest.skip("/dev/shm is not a tmpfs here")
    assert memory_backed(SHM / "sealdrop" / "not-made-yet")


def test_proc_is_not_memory_backed() -> None:
    assert not memory_backed(Path("/proc/self"))


async def test_a_file_dropped_from_the_page_cache_is_read_in_a_thread(tmp_path: Path) -> None:
    if memory_backed(tmp_path):
        pytest.skip("the temporary folder is in memory: no disk to wait for")
    store = LocalStore(tmp_path / "objects")
    data = os.urandom(3 * MIB + 5)
    await write_object(store, "blobs/cold", data)
    fd = os.open(store.path("blobs/cold"), os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        # Nothing in memory: the read that must not wait gives nothing.
        assert read_cached(fd, memoryview(bytearray(MIB)), 0, in_memory=False) == (0, False)
    finally:
        os.close(fd)
    assert b"".join(await stream_copies(store, "blobs/cold", 5, None)) == data[5:]


async def test_a_store_on_tmpfs_streams_its_objects(tmp_path: Path) -> None:
    if _mount_type(str(SHM)) != "tmpfs":
        pytest.skip("/dev/shm is not a tmpfs here")
    root = SHM / f"sealdrop-test-{os.getpid()}-{tmp_path.name}"
    store = LocalStore(root)
    try:
        data = os.urandom(2 * MIB + 17)
        await write_object(store, "blobs/warm", data)
        chunks = await stream_copies(store, "blobs/warm", 17, 2 * MIB)
        assert [len(chunk) for chunk in chunks] == [MIB, MIB]
        assert b"".join(chunks) == data[17:]
    finally:
        await store.delete("blobs/warm")
        for folder in (root / "blobs", root):
            folder.rmdir()
