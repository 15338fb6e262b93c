"""The negative-lookup cache: remembers tokens that answer 404 or 410.

Unknown, expired, deleted and used-up tokens are asked for again and again (retrying
scripts, link previewers, guessers); answering them from memory keeps that load off the
database. Entries are keyed by token hash, live a short while, and are forgotten whenever a
link changes state. Losing the cache is harmless: it only holds what the database would say.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol


class NegativeCache(Protocol):
    """Where negative answers are remembered (in process, or Redis in production)."""

    async def get(self, token_hash: bytes) -> int | None:
        """The remembered status (404 or 410) for this token hash, if any."""
        ...

    async def put(self, token_hash: bytes, status: int) -> None:
        """Remember that this token hash answers `status`."""
        ...

    async def forget(self, token_hash: bytes) -> None:
        """Drop what is remembered for this token hash (its link changed)."""
        ...


class MemoryNegativeCache:
    """A bounded in-process LRU with a time to live."""

    def __init__(self, *, ttl_seconds: float, max_entries: int = 100_000) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: OrderedDict[bytes, tuple[float, int]] = OrderedDict()

    async def get(self, token_hash: bytes) -> int | None:
        """The remembered status for this token hash, if still fresh."""
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        deadline, status = entry
        if deadline < time.monotonic():
            del self._entries[token_hash]
            return None
        return status

    async def put(self, token_hash: bytes, status: int) -> None:
        """Remember a negative answer, evicting the oldest entry when full."""
        self._entries[token_hash] = (time.monotonic() + self._ttl, status)
        self._entries.move_to_end(token_hash)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def forget(self, token_hash: bytes) -> None:
        """Drop the entry for this token hash."""
        self._entries.pop(token_hash, None)
