"""A PUT whose body stops part-way until the test lets it go on: an upload still arriving."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import httpx

from tests.support.asgi import AppClient

CHUNK = 1 << 20


class HeldBody:
    """A PUT of `size` random bytes (with its Content-Length) whose body stops after
    `first` bytes until `go` is set; with `short`, it then ends there instead (fewer bytes
    than announced)."""

    def __init__(self, client: AppClient, size: int, first: int, *, short: bool = False) -> None:
        self.data = os.urandom(size)
        self.first = first
        self.go = asyncio.Event()
        self.short = short
        self.answer: asyncio.Task[httpx.Response] = asyncio.create_task(
            client.put(
                "/big.bin",
                content=self._chunks(),
                headers={"Content-Length": str(size), "Accept": "application/json"},
            )
        )

    async def _chunks(self) -> AsyncIterator[bytes]:
        for start in range(0, self.first, CHUNK):
            yield self.data[start : min(start + CHUNK, self.first)]
        await self.go.wait()
        if not self.short:
            yield self.data[self.first :]
