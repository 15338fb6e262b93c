"""An uploader's daily byte quota, taken atomically from its `uploader_usage` row.

Bytes are reserved before they are staged: the declared size at once (so an
`Expect: 100-continue` client hears the 429 before it sends), a body of unknown length in
steps as it arrives. Each reservation is one conditional UPDATE (`bytes + n <= max`), so
any number of API processes sharing the database can never grant more than the quota
together. What an upload did not use, or all of it when the upload fails, is given back.
The day is the database clock's UTC date, so pods with skewed clocks agree on midnight.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, timedelta

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.crypto import sealing
from app.db.models import UploaderUsage
from app.db.session import transaction
from app.domain.uploaders import Admitted, db_clock
from app.errors import TooManyAttempts, UploadTooLarge
from app.services import Services

# How much a body of unknown length reserves at a time: few round trips for large files,
# and at most this much held back from other uploads of the same uploader meanwhile.
STEP_BYTES = 8 * 1024 * 1024


class Allowance:
    """The bytes one upload has reserved from its uploader's quota, and has used."""

    def __init__(self, services: Services, uploader: Admitted | None) -> None:
        self._services = services
        self._uploader = uploader
        self._day: date | None = None
        self.reserved = 0
        self.used = 0

    async def reserve(self, needed: int, *, step: bool = False) -> None:
        """Reserve `needed` more bytes (a whole step if asked and it fits); 429 when the
        quota cannot give them."""
        limit = self._limit()
        if limit is None or needed <= 0:
            return
        if step and needed < STEP_BYTES and await self._take(STEP_BYTES, limit):
            return
        if not await self._take(needed, limit):
            raise TooManyAttempts(
                await self._seconds_to_midnight(),
                f"this upload would pass your daily quota of {limit} bytes; "
                "it renews at midnight UTC",
            )

    @property
    def day(self) -> date | None:
        """The day whose quota the reserved bytes were taken from (None: nothing taken)."""
        return self._day

    def metered(self, body: AsyncIterator[sealing.Buffer]) -> AsyncIterator[sealing.Buffer]:
        """`body`, each chunk reserved before it passes, held to the uploader's file size
        (`body` itself when there is no uploader: nothing to count)."""
        return body if self._uploader is None else self._metered(body, self._uploader)

    async def _metered(
        self, body: AsyncIterator[sealing.Buffer], uploader: Admitted
    ) -> AsyncIterator[sealing.Buffer]:
        largest = uploader.limits.max_file_size
        async for chunk in body:
            self.used += len(chunk)
            if largest is not None and self.used > largest:
                raise UploadTooLarge(f"your uploads may be at most {largest} bytes")
            await self.reserve(self.used - self.reserved, step=True)
            yield chunk

    async def give_back(self, kept: int) -> None:
        """Return what was reserved beyond the `kept` bytes."""
        surplus = self.reserved - kept
        if surplus <= 0 or self._uploader is None or self._day is None:
            return
        async with transaction(self._services.sessions) as session:
            await session.execute(
                update(UploaderUsage)
                .where(
                    UploaderUsage.uploader_id == self._uploader.id, UploaderUsage.day == self._day
                )
                .values(bytes=UploaderUsage.bytes - surplus)
            )
        self.reserved = kept

    def _limit(self) -> int | None:
        return self._uploader.limits.max_bytes_per_day if self._uploader else None

    async def _take(self, amount: int, limit: int) -> bool:
        assert self._uploader is not None
        insert = sqlite_insert if self._services.settings.is_sqlite else pg_insert
        async with transaction(self._services.sessions, immediate=True) as session:
            day = (await db_clock(session)).date()
            if self._day is not None and day != self._day:
                return False  # past midnight mid-upload: the rest comes from no day's quota
            await session.execute(
                insert(UploaderUsage)
                .values(uploader_id=self._uploader.id, day=day, bytes=0)
                .on_conflict_do_nothing()
            )
            result = await session.execute(
                update(UploaderUsage)
                .where(
                    UploaderUsage.uploader_id == self._uploader.id,
                    UploaderUsage.day == day,
                    UploaderUsage.bytes + amount <= limit,
                )
                .values(bytes=UploaderUsage.bytes + amount)
            )
        if not getattr(result, "rowcount", 0):
            return False
        self._day = day
        self.reserved += amount
        return True

    async def _seconds_to_midnight(self) -> int:
        async with self._services.sessions() as session:
            now = await db_clock(session)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        return max(1, int((midnight - now).total_seconds()) + 1)


@asynccontextmanager
async def allowance(
    services: Services, uploader: Admitted | None, declared_size: int | None
) -> AsyncIterator[Allowance]:
    """An upload's allowance, the declared size reserved; what it leaves unused is given
    back when the block ends (everything, if the block raises)."""
    held = Allowance(services, uploader)
    await held.reserve(declared_size or 0)
    try:
        yield held
    except BaseException:
        await asyncio.shield(held.give_back(0))
        raise
    await asyncio.shield(held.give_back(held.used))


async def give_back_day(session: AsyncSession, uploader_id: str, day: date, amount: int) -> None:
    """In the caller's transaction: return `amount` bytes to an uploader's quota of `day`
    (a resumable upload that never finished gives back what it reserved)."""
    if amount > 0:
        await session.execute(
            update(UploaderUsage)
            .where(UploaderUsage.uploader_id == uploader_id, UploaderUsage.day == day)
            .values(bytes=UploaderUsage.bytes - amount)
        )
