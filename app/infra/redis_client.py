"""The Redis client: every call bounded in time, every failure counted, Redis never required.

Redis holds only what may be lost (the negative cache, per-client counters; DESIGN §1), so a
Redis that is down or slow must cost a request at most one short timeout. After a failure
the client stops asking Redis for a moment (`pause_seconds`): while it is down, requests go
straight to their fallback instead of each waiting out a timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

log = logging.getLogger("sealdrop.redis")

T = TypeVar("T")


class RedisDown(Exception):
    """Redis did not answer in time, or at all: the caller uses its fallback."""


class GuardedRedis:
    """A Redis client whose calls are bounded and fail fast while Redis is away."""

    def __init__(
        self, client: Redis, *, prefix: str, timeout: float, pause_seconds: float = 1.0
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.timeout = timeout
        self.pause_seconds = pause_seconds
        self.failures = 0
        self._paused_until = 0.0
        self._last_failure = float("-inf")

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str, timeout: float, pause_seconds: float = 1.0
    ) -> GuardedRedis:
        """A client for `url`, with socket timeouts of `timeout` and no retries."""
        client = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # A retry would double the time a request waits for a Redis that is away.
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client, prefix=prefix, timeout=timeout, pause_seconds=pause_seconds)

    @property
    def degraded(self) -> bool:
        """True while the last call failed recently (calls are skipped for a moment)."""
        return time.monotonic() < self._paused_until

    def key(self, *parts: str) -> str:
        """A key under this deployment's prefix."""
        return self.prefix + ":".join(parts)

    async def run(
        self, operation: str, call: Callable[[Redis], Awaitable[T]], *, force: bool = False
    ) -> T:
        """Run `call` within the timeout; RedisDown if it fails, times out, or Redis is away.

        While Redis is paused after a failure the call is skipped, unless `force` is set.
        """
        if self.degraded and not force:
            raise RedisDown()
        try:
            result = await asyncio.wait_for(call(self.client), self.timeout)
        except (RedisError, OSError, TimeoutError) as error:
            self._failed(operation, error)
            raise RedisDown() from None
        self._paused_until = 0.0
        return result

    async def ping(self) -> bool:
        """Whether Redis answers now (asked even while paused: readiness wants the truth)."""
        try:
            await self.run("ping", lambda client: client.ping(), force=True)
        except RedisDown:
            return False
        return True

    async def close(self) -> None:
        """Close every connection."""
        await self.client.aclose()

    def _failed(self, operation: str, error: BaseException) -> None:
        self.failures += 1
        now = time.monotonic()
        if now - self._last_failure > 60:
            # Once per outage, not once per request.
            log.warning(
                "redis %s failed (%s); serving without it, limits counted in this process",
                operation,
                type(error).__name__,
            )
        self._last_failure = now
        self._paused_until = now + self.pause_seconds
