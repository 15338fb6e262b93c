"""Tests of the upload digest hashed in a worker thread, batch by batch."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest

from app.crypto import digests
from app.crypto.digests import BackgroundDigest

BATCH = 1000


@pytest.mark.parametrize(
    "sizes",
    [
        [],
        [0],
        [1],
        [BATCH - 1],
        [BATCH],
        [BATCH + 1],
        [BATCH - 1, 1, BATCH, 0, 1],
        [7] * 1000,
        [3 * BATCH, 1, 2 * BATCH + 5],
    ],
)
async def test_digest_equals_hashing_the_chunks_in_order(sizes: list[int]) -> None:
    chunks = [os.urandom(size) for size in sizes]
    background = BackgroundDigest(batch_bytes=BATCH)
    for chunk in chunks:
        await background.update(memoryview(chunk) if len(chunk) % 2 else chunk)
    assert await background.digest() == hashlib.sha256(b"".join(chunks)).digest()


async def test_batches_are_hashed_off_the_event_loop_one_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop_thread = threading.get_ident()
    seen: list[tuple[int, int]] = []
    hash_batch = digests._hash_batch

    hashing = threading.Lock()

    def recording(digest: hashlib._Hash, chunks: list[bytes]) -> None:
        # A second batch started while one is still hashing would find the lock taken.
        assert hashing.acquire(blocking=False), "two batches were hashed at once"
        try:
            seen.append((threading.get_ident(), sum(len(c) for c in chunks)))
            time.sleep(0.01)  # room for an overlapping batch to show itself
            hash_batch(digest, chunks)
        finally:
            hashing.release()

    monkeypatch.setattr(digests, "_hash_batch", recording)
    background = BackgroundDigest(batch_bytes=BATCH)
    data = os.urandom(5 * BATCH + 10)
    for start in range(0, len(data), 100):
        await background.update(data[start : start + 100])
    assert await background.digest() == hashlib.sha256(data).digest()
    assert [size for _, size in seen] == [BATCH] * 5 + [10]
    assert all(thread != loop_thread for thread, _ in seen)


async def test_digest_with_nothing_added_is_the_empty_hash() -> None:
    assert await BackgroundDigest().digest() == hashlib.sha256().digest()
