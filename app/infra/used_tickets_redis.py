"""Spent download tickets in Redis, so that a ticket opens a file once across every pod.

`SET <prefix>ticket:<id> 1 NX EX <seconds left>`: the first pod to record a ticket wins.
This process also remembers what it saw, so a ticket replayed to the same pod is refused
without a round trip. When Redis fails, that local memory decides alone: a ticket is then
single-use per process, and still dies within its minute (DESIGN §1: Redis holds only what
may be lost, and no limit is silently off).
"""

from __future__ import annotations

import math

from app.infra.redis_client import GuardedRedis, RedisDown
from app.infra.used_tickets import MemoryUsedTickets


class RedisUsedTickets:
    """`app.infra.used_tickets.UsedTickets` in Redis, with an in-process tier."""

    def __init__(self, redis: GuardedRedis) -> None:
        self._redis = redis
        self.local = MemoryUsedTickets()

    async def first_use(self, ticket_id: bytes, ttl_seconds: float) -> bool:
        """True for the first use of `ticket_id` anywhere (here, when Redis is away)."""
        if not await self.local.first_use(ticket_id, ttl_seconds):
            return False
        key = self._redis.key("ticket", ticket_id.hex())
        seconds = max(1, math.ceil(ttl_seconds))
        try:
            recorded = await self._redis.run(
                "ticket_spend", lambda r: r.set(key, b"1", nx=True, ex=seconds)
            )
        except RedisDown:
            return True
        return bool(recorded)
