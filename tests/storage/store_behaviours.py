"""What every ObjectStore backend must do; each backend's test module subclasses this.

A subclass provides the fixture `store` (an ObjectStore) and `key_prefix` (keys no other
test uses). The tests never depend on a backend's internals.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from app.storage import ObjectMissing, ObjectStore, StorageError

MIB = 1 << 20


async def write_object(store: ObjectStore, key: str, data: bytes, piece: int = 100_003) -> int:
    """Write `data` in odd-sized pieces and commit; return the committed size."""
    writer = await store.open_writer(key, size_hint=len(data))
    async with writer:
        for start in range(0, len(data), piece):
            await writer.write(memoryview(data)[start : start + piece])
        return await writer.commit()


async def write_then_fail(store: ObjectStore, key: str) -> None:
    """Start writing `key`, then fail inside the writer's block."""
    async with await store.open_writer(key) as writer:
        await writer.write(b"partial")
        raise RuntimeError("client went away")


async def read_chunks(
    store: ObjectStore, key: str, start: int = 0, length: int | None = None, chunk_size: int = MIB
) -> list[bytes]:
    """Every chunk of one read."""
    return [chunk async for chunk in store.read(key, start, length, chunk_size=chunk_size)]


async def stream_copies(
    store: ObjectStore, key: str, start: int = 0, length: int | None = None, chunk_size: int = MIB
) -> list[bytes]:
    """Every chunk of one `stream`, copied as it comes (a chunk may be overwritten next)."""
    return [bytes(chunk) async for chunk in store.stream(key, start, length, chunk_size=chunk_size)]


async def keys_under(store: ObjectStore, prefix: str) -> set[str]:
    """The keys that list() gives for `prefix`."""
    return {info.key async for info in store.list(prefix)}


async def pending_under(store: ObjectStore, prefix: str) -> set[tuple[str, str]]:
    """(key, upload id) of every unfinished write under `prefix`."""
    return {(up.key, up.upload_id) async for up in store.list_pending_uploads(prefix)}


class StoreBehaviours:
    """The contract of ObjectStore, run against a real backend."""

    @pytest.mark.parametrize("size", [0, 1, MIB - 1, MIB, MIB + 1, 3 * MIB + 5])
    async def test_written_object_reads_back_whole(
        self, store: ObjectStore, key_prefix: str, size: int
    ) -> None:
        data = os.urandom(size)
        key = f"{key_prefix}blobs/round-trip"
        assert await write_object(store, key, data) == size
        chunks = await read_chunks(store, key)
        assert b"".join(chunks) == data
        assert all(len(chunk) == MIB for chunk in chunks[:-1])

    async def test_ranged_read_gives_whole_chunks_then_the_rest(
        self, store: ObjectStore, key_prefix: str
    ) -> None:
        data = os.urandom(300_000)
        key = f"{key_prefix}blobs/ranged"
        await write_object(store, key, data)
        chunks = await read_chunks(store, key, start=1_000, length=250_000, chunk_size=65_552)
        assert [len(chunk) for chunk in chunks] == [65_552, 65_552, 65_552, 53_344]
        assert b"".join(chunks) == data[1_000:251_000]

    async def test_range_longer_than_the_object_ends_with_a_short_chunk(
        self, store: ObjectStore, key_prefix: str
    ) -> None:
        data = os.urandom(10_000)
        key = f"{key_prefix}blobs/short"
        await write_object(store, key, data)
        chunks = await read_chunks(store, key, start=4_000, length=50_000, chunk_size=4_096)
        assert [len(chunk) for chunk in chunks] == [4_096, 1_904]
        assert b"".join(chunks) == data[4_000:]

    async def test_read_starting_past_the_end_yields_nothing(
        self, store: ObjectStore, key_prefix: str
    ) -> None:
        key = f"{key_prefix}blobs/past-end"
        await write_object(store, key, b"abc")
        assert await read_chunks(store, key, start=3, length=10) == []
        assert await read_chunks(store, key, start=100) == []

    async def test_read_of_zero_bytes_yields_nothing(
        self, store: ObjectStore, key_prefix: str
    ) -> None:
        key = f"{key_prefix}blobs/zero-length"
        await write_object(store, key, b"abc")
        assert await read_chunks(store, key, start=1, length=0) == []

    async def test_reading_a_missing_object_raises_object_missing(
        self, store: ObjectStore, key_prefix: str
    ) -> None:
        with pytest.raises(ObjectMissing):
            await read_chunks(store, f"{key_prefix}blobs/never-written")

    @pytest.mark.parametrize(
        ("start", "length", "chunk_size"),
        [(0, None, MIB), (1_000, 250_000, 65_552), (4_000, 50_000, 4_096), (300_000, 5, 7)],
    )
    async def test_stream_gives_the_chunks_of_read(
        self, store: ObjectStore, key_prefix: str, start: int, length: int | None, chunk_size: int
    ) -> None:
        data = os.urandom(300_000)
        key = f"{key_prefix}blobs/streamed"
        await write_object(store, key, data)
        expected = await read_chunks(store, key, start, length, chunk_size)
        assert await stream_copies(store, key, start, length, chunk_size) == expected

    async def test_streaming_a_missing_object_raises_object_missing(
        self, store: ObjectStore, key_prefix: str
    ) -> None:
        with pytest.raises(ObjectMissing):
            await stream_copies(store, f"{key_prefix}blobs/never-written", length=0)

    async def test_zero_byte_read_of_a_missing_object_raises_object_missing(
        self, store: ObjectStore, key_prefix: str
    ) -> None:
        with pytest.raises(ObjectMissing):
            await read_chunks(store, f"{key_prefix}blobs/never-written", length=0)

    async def test_object_is_absent_until_commit(self, store: ObjectStore, key_prefix: str) -> None:
        key = f"{key_prefix}staging/job-1"
        async with await store.open_writer(key) as writer:
            await writer.write(b"x" * 5000)
            assert await store.size(key) is None
            assert await keys_under(store, key_prefix) == set()
            await writer.commit()
        assert await store.size(key) == 5000

    async def test_abort_leaves_no_object_and_no_pending_upload(
        self, store: ObjectStore, key_prefix: str
    ) -> None:
        key = f"{key_prefix}staging/job-2"
        writer = await store.open_writer(key)
        await writer.write(os.urandom(2 * MIB))
        await writer.abort()
        assert await store.size(key) is None
        assert await pending_under(store, key_prefix) == set()

    async def test_failure_inside_the_block_aborts_the_write(
        self, store: ObjectStore, key_prefix: str
    ) -> None:
        key = f"{key_prefix}staging/job-3"
        with pytest.raises(RuntimeError, match="client went away"):
            await write_then_fail(store, key)
        assert await store.size(key) is None
        assert await pending_under(store, key_prefix) == set()

    async def test_abort_twice_is_harmless(self, store: ObjectStore, key_prefix: str) -> None:
        writer = await store.open_writer(f"{key_prefix}staging/aborted")
        await writer.abort()
        await writer.abort()
        assert await pending_under(store, key_prefix) == set()

    async def test_abort_after_commit_keeps_the_object(
        self, store: ObjectStore, key_prefix: str
    ) -> None:
        writer = await store.open_writer(f"{key_prefix}staging/kept")
        await writer.write(b"kept")
        await writer.commit()
        await writer.abort()
        assert await store.size(f"{key_prefix}staging/kept") == 4

    async def test_writing_after_commit_is_refused(
        self, store: ObjectStore, key_prefix: str
    ) -> None:
        writer = await store.open_writer(f"{key_prefix}staging/closed")
        await writer.commit()
        with pytest.raises(StorageError):
            await writer.write(b"late")

    async def test_unfinished_write_is_pending_until_abort_upload(
        self, store: ObjectStore, key_prefix: str
    ) -> None:
        key = f"{key_prefix}blobs/unfinished"
        writer = await store.open_writer(key)
        await writer.write(b"some bytes")
        assert await pending_under(store, key_prefix) == {(key, writer.upload_id)}
        await store.abort_upload(key, writer.upload_id)
        assert await pending_under(store, key_prefix) == set()
        await store.abort_upload(key, writer.upload_id)  # again: nothing left, no error

    async def test_discard_removes_the_object_and_every_write_of_that_key_only(
        self, store: ObjectStore, key_prefix: str
    ) -> None:
        # What a dead attempt leaves: its object, or writes whose ids nobody recorded.
        key = f"{key_prefix}blobs/dead"
        await write_object(store, key, b"committed")
        for _ in range(2):
            await (await store.open_writer(key)).write(b"unrecorded")
        other = await store.open_writer(f"{key_prefix}blobs/dead-not")
        await other.write(b"someone else's")

        await store.discard(key)

        assert await store.size(key) is None
        assert await pending_under(store, key_prefix) == {
            (f"{key_prefix}blobs/dead-not", other.upload_id)
        }
        await store.discard(key)  # again: nothing left, no error
        await other.abort()

    async def test_pending_upload_tells_when_it_started(
        self, store: ObjectStore, key_prefix: str
    ) -> None:
        writer = await store.open_writer(f"{key_prefix}blobs/started")
        [pending] = [up async for up in store.list_pending_uploads(key_prefix)]
        assert pending.started.utcoffset() is not None
        await writer.abort()

    async def test_committed_object_is_not_a_pending_upload(
        self, store: ObjectStore, key_prefix: str
    ) -> None:
        await write_object(store, f"{key_prefix}blobs/done", b"done")
        assert await pending_under(store, key_prefix) == set()

    async def test_second_commit_under_a_key_replaces_the_object(
        self, store: ObjectStore, key_prefix: str
    ) -> None:
        key = f"{key_prefix}blobs/replaced"
        await write_object(store, key, b"first version")
        await write_object(store, key, b"second")
        assert b"".join(await read_chunks(store, key)) == b"second"

    async def test_delete_removes_the_object_and_is_idempotent(
        self, store: ObjectStore, key_prefix: str
    ) -> None:
        key = f"{key_prefix}blobs/deleted"
        await write_object(store, key, b"bytes")
        await store.delete(key)
        await store.delete(key)
        assert await store.size(key) is None

    async def test_size_of_a_missing_object_is_none(
        self, store: ObjectStore, key_prefix: str
    ) -> None:
        assert await store.size(f"{key_prefix}blobs/none") is None

    async def test_list_gives_objects_under_the_prefix_only(
        self, store: ObjectStore, key_prefix: str
    ) -> None:
        await write_object(store, f"{key_prefix}staging/job", b"s")
        await write_object(store, f"{key_prefix}blobs/b1", b"one")
        await write_object(store, f"{key_prefix}blobs/b2", b"two!")
        await write_object(store, f"{key_prefix}blobsmith", b"x")
        infos = {info.key: info async for info in store.list(f"{key_prefix}blobs/")}
        assert {key: info.size for key, info in infos.items()} == {
            f"{key_prefix}blobs/b1": 3,
            f"{key_prefix}blobs/b2": 4,
        }
        assert all(info.modified.utcoffset() == timedelta(0) for info in infos.values())

    async def test_list_by_a_partial_name_matches_its_start(
        self, store: ObjectStore, key_prefix: str
    ) -> None:
        await write_object(store, f"{key_prefix}blobs/ab1", b"1")
        await write_object(store, f"{key_prefix}blobs/ac2", b"2")
        assert await keys_under(store, f"{key_prefix}blobs/ab") == {f"{key_prefix}blobs/ab1"}

    @pytest.mark.parametrize(
        "key",
        ["", "/etc/passwd", "../escape", "blobs/../../escape", "blobs//x", "blobs\\x", "blobs/",
         ".hidden", "blobs/./x", "blobs/\x00", "blobs/a b"],
    )  # fmt: skip
    async def test_invalid_key_is_refused(self, store: ObjectStore, key: str) -> None:
        with pytest.raises(StorageError, match="invalid object key"):
            await store.open_writer(key)
        with pytest.raises(StorageError, match="invalid object key"):
            await store.delete(key)

    async def test_check_passes_on_a_usable_store(self, store: ObjectStore) -> None:
        await store.check()
