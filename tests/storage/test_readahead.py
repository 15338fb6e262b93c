"""Reading ahead: the same chunks in the same order, errors where they were, readers closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from app.storage.readahead import read_ahead


class Reader:
    """An object reader that records what was fetched and whether it was closed."""

    def __init__(self, chunks: list[bytes], fail_at: int | None = None) -> None:
        self.chunks = chunks
        self.fail_at = fail_at
        self.fetched = 0
        self.closed = False

    async def read(self) -> AsyncGenerator[bytes, None]:
        try:
            for index, chunk in enumerate(self.chunks):
                if index == self.fail_at:
                    raise OSError(f"chunk {index} is unreadable")
                await asyncio.sleep(0)
                self.fetched += 1
                yield chunk
        finally:
            self.closed = True


async def test_every_chunk_comes_out_in_order() -> None:
    reader = Reader([b"a", b"bb", b"ccc"])
    assert [chunk async for chunk in read_ahead(reader.read())] == [b"a", b"bb", b"ccc"]
    assert reader.closed


async def test_the_next_chunk_is_fetched_while_the_caller_works() -> None:
    reader = Reader([b"a", b"b", b"c"])
    chunks = read_ahead(reader.read())
    assert await anext(chunks) == b"a"
    await asyncio.sleep(0.01)
    assert reader.fetched == 2
    await chunks.aclose()


async def test_a_read_error_comes_out_after_the_chunks_before_it() -> None:
    reader = Reader([b"a", b"b", b"c"], fail_at=1)
    chunks = read_ahead(reader.read())
    assert await anext(chunks) == b"a"
    with pytest.raises(OSError, match="chunk 1"):
        await anext(chunks)
    assert reader.closed


async def test_leaving_early_closes_the_reader() -> None:
    reader = Reader([b"a", b"b", b"c", b"d"])
    chunks = read_ahead(reader.read())
    assert await anext(chunks) == b"a"
    await chunks.aclose()
    assert reader.closed
    assert reader.fetched <= 2
