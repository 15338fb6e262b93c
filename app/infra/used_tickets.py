"""Where spent download tickets are remembered: the store's protocol and the in-process store.

`app.domain.tickets` decides what a ticket is and when it is spent; the stores here only
record "seen until" (`app.infra.used_tickets_redis` shares them across pods).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol


class UsedTickets(Protocol):
    """Where spent tickets are remembered (in process; Redis in production)."""

    async def first_use(self, ticket_id: bytes, ttl_seconds: float) -> bool:
        """Record the ticket as spent; False if it already was (or cannot be recorded).

        `ticket_id` is the SHA-256 of the ticket's signed message (`redeem` computes it),
        the same for every spelling of one ticket, in every store.
        """
        ...


class MemoryUsedTickets:
    """Spent tickets in this process, each forgotten once it would have expired anyway."""

    def __init__(self, *, max_entries: int = 100_000) -> None:
        self._max = max_entries
        self._deadlines: OrderedDict[bytes, float] = OrderedDict()

    async def first_use(self, ticket_id: bytes, ttl_seconds: float) -> bool:
        """True the first time `ticket_id` is seen within its lifetime."""
        now = time.monotonic()
        self._forget_expired(now)
        if ticket_id in self._deadlines:
            return False
        if len(self._deadlines) >= self._max:
            # Forgetting a live ticket would let it be spent twice: refuse instead.
            return False
        self._deadlines[ticket_id] = now + ttl_seconds
        return True

    def _forget_expired(self, now: float) -> None:
        # Lifetimes are nearly equal, so the oldest entries expire first.
        while self._deadlines:
            ticket_id, deadline = next(iter(self._deadlines.items()))
            if deadline > now:
                return
            del self._deadlines[ticket_id]
