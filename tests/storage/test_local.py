"""The local-folder store: the shared contract, and what only a folder shows.

Files and their modes, temporaries left by a writer that really crashed, and memory that
stays small while large objects stream through.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import pytest

from app.storage import StorageError, open_store
from app.storage.local import LocalStore
from tests.storage.store_behaviours import MIB, StoreBehaviours, pending_under, write_object

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(local_store: LocalStore) -> LocalStore:
    """The store the shared contract runs against."""
    return local_store


class TestLocalStore(StoreBehaviours):
    """The ObjectStore contract on a local folder."""


async def test_object_is_a_file_at_root_slash_key(
    local_store: LocalStore, local_root: Path
) -> None:
    await write_object(local_store, "blobs/abc", b"sealed bytes")
    assert (local_root / "blobs" / "abc").read_bytes() == b"sealed bytes"


async def test_files_are_0600_and_folders_0700(local_store: LocalStore, local_root: Path) -> None:
    await write_object(local_store, "staging/job-7", b"x")
    modes = {
        path: stat.S_IMODE(path.stat().st_mode)
        for path in (local_root.parent, local_root, local_root / "staging")
    }
    assert modes == dict.fromkeys(modes, 0o700)
    assert stat.S_IMODE((local_root / "staging" / "job-7").stat().st_mode) == 0o600


async def test_temporary_of_a_crashed_writer_is_pending_until_abort_upload(
    local_store: LocalStore, local_root: Path
) -> None:
    upload_id = _crash_while_writing(local_root, "staging/job-9", 3 * MIB)
    temporary = local_root / "staging" / upload_id
    assert temporary.stat().st_size == 3 * MIB
    assert await pending_under(local_store, "staging/") == {("staging/job-9", upload_id)}
    assert await local_store.size("staging/job-9") is None
    await local_store.abort_upload("staging/job-9", upload_id)
    assert not temporary.exists()


async def test_abort_upload_refuses_an_id_that_is_not_a_temporary_of_the_key(
    local_store: LocalStore, local_root: Path
) -> None:
    await write_object(local_store, "staging/other", b"keep me")
    for upload_id in ("other", "../other", ".other.0123456789abcdef.tmp", ".job.xyz.tmp"):
        with pytest.raises(StorageError, match="not an upload id"):
            await local_store.abort_upload("staging/job", upload_id)
    assert (local_root / "staging" / "other").exists()


async def test_read_closed_early_releases_its_file(local_store: LocalStore) -> None:
    await write_object(local_store, "blobs/big", os.urandom(3 * MIB))
    open_before = len(os.listdir("/proc/self/fd"))
    reader = local_store.read("blobs/big")
    await anext(reader)
    await reader.aclose()
    assert len(os.listdir("/proc/self/fd")) == open_before


async def test_streaming_32_mib_through_stays_within_a_few_mib(local_store: LocalStore) -> None:
    piece = os.urandom(64 * 1024)
    tracemalloc.start()
    try:
        writer = await local_store.open_writer("blobs/large")
        for _ in range(32 * MIB // len(piece)):
            await writer.write(piece)
        await writer.commit()
        async for _chunk in local_store.read("blobs/large"):
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MIB


async def test_check_fails_when_the_root_is_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(StorageError, match="not usable"):
        await LocalStore(tmp_path / "file" / "objects").check()


async def test_check_creates_a_missing_root(local_store: LocalStore, local_root: Path) -> None:
    await local_store.check()
    assert local_root.is_dir()


def test_relative_root_is_refused() -> None:
    with pytest.raises(StorageError, match="absolute"):
        LocalStore(Path("objects"))


def test_file_url_opens_a_local_store_at_its_path(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}/objects")
    assert isinstance(store, LocalStore)
    assert store.root == tmp_path / "objects"


def _crash_while_writing(root: Path, key: str, size: int) -> str:
    """Write `size` bytes of `key` in another process that dies before it commits."""
    script = textwrap.dedent(
        f"""
        import asyncio, os, sys
        from pathlib import Path
        from app.storage.local import LocalStore

        async def main():
            writer = await LocalStore(Path({str(root)!r})).open_writer({key!r})
            await writer.write(b"x" * {size})
            await writer.write(b"")
            print(writer.upload_id, flush=True)
            os._exit(9)

        asyncio.run(main())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 9, result.stderr
    return result.stdout.strip()
