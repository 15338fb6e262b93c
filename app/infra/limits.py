"""Per-client-address limits: uploads per minute, wrong passwords per window.

Counters live in Redis (shared by every pod; INCR with an expiry set when the window opens)
and fall back to counters in this process whenever Redis fails, so a limit is never
silently off; this process counts alongside Redis all the time, so its fallback count is
warm. Password attempts are counted before their hash is computed, and right ones given
back, so parallel guesses cannot all pass one check. The client address is
`request.client.host`, which uvicorn takes from `X-Forwarded-For` only when the connection
comes from `SEALDROP_TRUSTED_PROXIES`.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from app.errors import TooManyAttempts
from app.infra.redis_client import GuardedRedis, RedisDown
from app.settings import Settings

MEMORY_MAX_KEYS = 100_000
_TAKE_BACK = """
if redis.call('exists', KEYS[1]) == 1 and tonumber(redis.call('get', KEYS[1])) > 0 then
  return redis.call('decr', KEYS[1])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Window:
    """A limit: at most `limit` events per `seconds` (0 turns it off)."""

    name: str
    limit: int
    seconds: int


@dataclass(frozen=True, slots=True)
class Count:
    """Events in the current window, and seconds until the window closes."""

    events: int
    resets_in: int


class MemoryCounters:
    """Fixed-window counters in this process (the fallback, and the embedded mode's)."""

    def __init__(self, max_keys: int = MEMORY_MAX_KEYS) -> None:
        self._max = max_keys
        self._windows: dict[str, tuple[float, int]] = {}

    def add(self, key: str, seconds: int) -> Count:
        """Count one event and return the new count."""
        closes, events = self._current(key, seconds)
        if key not in self._windows and len(self._windows) >= self._max:
            self._evict()
        self._windows[key] = (closes, events + 1)
        return Count(events + 1, _remaining(closes))

    def take_back(self, key: str) -> None:
        """Remove one event from the key's window, if that window is still open."""
        closes, events = self._windows.get(key, (0.0, 0))
        if closes > time.monotonic() and events > 0:
            self._windows[key] = (closes, events - 1)

    def _current(self, key: str, seconds: int) -> tuple[float, int]:
        now = time.monotonic()
        closes, events = self._windows.get(key, (0.0, 0))
        if closes <= now:
            return now + seconds, 0
        return closes, events

    def _evict(self) -> None:
        now = time.monotonic()
        for key in [k for k, (closes, _) in self._windows.items() if closes <= now]:
            del self._windows[key]
        while len(self._windows) >= self._max:
            # Still full of live windows (a flood of addresses): drop the longest-known keys.
            del self._windows[next(iter(self._windows))]


def _remaining(closes: float) -> int:
    return max(1, int(closes - time.monotonic()) + 1)


class ClientLimits:
    """The limits one client address is held to."""

    def __init__(self, settings: Settings, redis: GuardedRedis | None) -> None:
        self.uploads = Window("uploads", settings.upload_rate_per_minute, 60)
        self.passwords = Window(
            "password-failures",
            settings.client_password_failures,
            settings.client_password_window_seconds,
        )
        self._redis = redis
        self.memory = MemoryCounters()

    async def check_upload(self, client: str) -> None:
        """Count an upload from `client`; TooManyAttempts past the limit."""
        if self.uploads.limit <= 0:
            return
        count = await self._add(self.uploads, client)
        if count.events > self.uploads.limit:
            raise TooManyAttempts(
                count.resets_in, "too many uploads from this address; try again later"
            )

    async def take_password_attempt(self, client: str) -> None:
        """Count a password attempt of `client` before it is checked; TooManyAttempts once
        its wrong ones are used up for now.

        Counting first, and giving right ones back, keeps parallel guesses from all
        passing a check made before any of them was counted.
        """
        if self.passwords.limit <= 0:
            return
        count = await self._add(self.passwords, client)
        if count.events > self.passwords.limit:
            raise TooManyAttempts(count.resets_in)

    async def give_back_password_attempt(self, client: str) -> None:
        """Return an attempt that was right, or that was never checked."""
        if self.passwords.limit <= 0:
            return
        key = f"limit:{self.passwords.name}:{client}"
        self.memory.take_back(key)
        with contextlib.suppress(RedisDown):
            await self._take_back_in_redis(key)

    async def _add(self, window: Window, client: str) -> Count:
        key = f"limit:{window.name}:{client}"
        # Counted in this process too, always: when Redis fails midway (a timeout under a
        # flood), the fallback goes on from what this process has seen, not from zero.
        local = self.memory.add(key, window.seconds)
        try:
            return await self._add_in_redis(key, window.seconds)
        except RedisDown:
            return local

    async def _take_back_in_redis(self, key: str) -> None:
        if self._redis is None:
            raise RedisDown()
        full_key = self._redis.key(key)

        async def take_back(client: Redis) -> Any:
            # Only within a window still open: a decrement of a key gone with its window
            # would leave a key without an expiry.
            return await client.eval(_TAKE_BACK, 1, full_key)

        await self._redis.run("limit_take_back", take_back)

    async def _add_in_redis(self, key: str, seconds: int) -> Count:
        if self._redis is None:
            raise RedisDown()
        full_key = self._redis.key(key)

        async def count(client: Redis) -> list[Any]:
            # One round trip, as a transaction, so the window's expiry is set with its first
            # event and never missing (a key without one would block forever).
            async with client.pipeline(transaction=True) as pipe:
                pipe.set(full_key, 0, ex=seconds, nx=True)
                pipe.incr(full_key)
                pipe.ttl(full_key)
                return await pipe.execute()

        *_, events, ttl = await self._redis.run("limit_add", count)
        return Count(int(events or 0), max(1, int(ttl)))
