"""The SHA-256 of an upload, computed in a worker thread beside the sealing.

Hashing is the largest CPU cost of receiving a file (SHA-256 runs at a fifth of AES-GCM's
speed), and hashlib releases the GIL while it hashes. So the body's chunks are gathered
into batches of about 1 MiB and each batch is hashed in a thread while the event loop
goes on receiving, sealing and writing the next: on a machine with a core to spare the
upload takes about the time of everything but the hash. Batches are hashed in order, one at
a time; memory holds at most two batches. The chunks must not change once handed over
(request bodies are immutable `bytes`, or views of them).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence

from app.crypto.sealing import Buffer

BATCH_BYTES = 1 << 20


def _hash_batch(digest: hashlib._Hash, chunks: Sequence[Buffer]) -> None:
    for chunk in chunks:
        digest.update(chunk)


class BackgroundDigest:
    """A SHA-256 fed from the event loop and computed in a worker thread, batch by batch."""

    def __init__(self, batch_bytes: int = BATCH_BYTES) -> None:
        self._digest = hashlib.sha256()
        self._batch: list[Buffer] = []
        self._batch_bytes = 0
        self._limit = batch_bytes
        self._running: asyncio.Future[None] | None = None

    async def update(self, chunk: Buffer) -> None:
        """Add `chunk`; waits only when a full batch is ready and the last is still hashing."""
        self._batch.append(chunk)
        self._batch_bytes += memoryview(chunk).nbytes
        if self._batch_bytes >= self._limit:
            await self._start_batch()

    async def digest(self) -> bytes:
        """The SHA-256 of everything added, once the last batch is hashed."""
        await self._start_batch()
        await self._wait()
        return self._digest.digest()

    async def _wait(self) -> None:
        if self._running is not None:
            running, self._running = self._running, None
            await running

    async def _start_batch(self) -> None:
        await self._wait()
        if not self._batch:
            return
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        loop = asyncio.get_running_loop()
        self._running = loop.run_in_executor(None, _hash_batch, self._digest, batch)
