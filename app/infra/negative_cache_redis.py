"""The negative-lookup cache in Redis, shared by every pod, with a small in-process tier.

The in-process tier answers repeats from one client within a couple of seconds without a
network round trip; Redis shares what one pod learned with the others. A Redis that fails
or is slow is a miss (the database answers instead), never an error: the cache only ever
holds what the database would say.
"""

from __future__ import annotations

from app.infra.negative_cache import MemoryNegativeCache
from app.infra.redis_client import GuardedRedis, RedisDown

LOCAL_TTL_SECONDS = 2.0
LOCAL_MAX_ENTRIES = 10_000
_STATUSES = frozenset({404, 410})


class RedisNegativeCache:
    """`NegativeCache` in Redis (`<prefix>neg:<hex hash>`), with a local tier."""

    def __init__(
        self,
        redis: GuardedRedis,
        *,
        ttl_seconds: float,
        local_ttl_seconds: float = LOCAL_TTL_SECONDS,
    ) -> None:
        self._redis = redis
        self._ttl = max(1, round(ttl_seconds))
        self.local = MemoryNegativeCache(
            ttl_seconds=min(local_ttl_seconds, ttl_seconds), max_entries=LOCAL_MAX_ENTRIES
        )

    def _key(self, token_hash: bytes) -> str:
        return self._redis.key("neg", token_hash.hex())

    async def get(self, token_hash: bytes) -> int | None:
        """The remembered status (404 or 410), from this process or from Redis."""
        status = await self.local.get(token_hash)
        if status is not None:
            return status
        try:
            raw = await self._redis.run("cache_get", lambda r: r.get(self._key(token_hash)))
        except RedisDown:
            return None
        status = _status(raw)
        if status is not None:
            await self.local.put(token_hash, status)
        return status

    async def put(self, token_hash: bytes, status: int) -> None:
        """Remember `status` here and in Redis (a failing Redis is only counted)."""
        await self.local.put(token_hash, status)
        try:
            await self._redis.run(
                "cache_put", lambda r: r.set(self._key(token_hash), str(status), ex=self._ttl)
            )
        except RedisDown:
            return

    async def forget(self, token_hash: bytes) -> None:
        """Drop the entry here and in Redis."""
        await self.local.forget(token_hash)
        try:
            await self._redis.run("cache_forget", lambda r: r.delete(self._key(token_hash)))
        except RedisDown:
            return


def _status(raw: object) -> int | None:
    if not isinstance(raw, bytes | str):
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value in _STATUSES else None
