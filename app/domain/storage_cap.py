"""The global storage cap: how many bytes the stores hold, and refusing what would not fit.

`storage_usage.stored_bytes` counts, in ciphertext bytes, every sealed blob
(`blobs.ciphertext_size`) plus every reservation (`storage_reservations.bytes`):

- an upload reserves before a byte of it is staged, and more as its body arrives when
  its length is unknown: twice the sealed size of what it may hold, for its staged copy
  and the blob it becomes, which both exist while its job runs;
- the transaction that writes its link and job rows turns that into the job's
  reservation, of exactly twice the sealed size of the body received;
- the transaction that ends the job (sealed, failed, cancelled) releases it, and a sealed
  job's blob is counted in its place; a purge uncounts the blob it deletes;
- an upload the API seals into its blob itself (the embedded mode, or with
  `SEALDROP_SEAL_IN_REQUEST`) has no staged copy and no job: the transaction that writes
  its blob and link rows counts the blob in place of its reservation (which held twice as
  much while the body arrived, like any upload's).

Each of these changes the total in the same transaction as the rows it follows, so the
total is always the sum over the rows. Reserving is one conditional UPDATE
(`stored_bytes + n <= cap`), so two processes racing for the last bytes cannot both win.
An upload whose process died leaves its reservation in flight: the janitor releases it
once it is older than the longest upload allows (the sweep age, when its unfinished write
is removed too), and recounts the total from the rows as a safety net.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from sqlalchemy import and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Update

from app.crypto.sealing import Buffer, Layout
from app.db.clock import db_now_plus, seconds
from app.db.models import LIVE_JOB_STATES, Blob, Job, StorageReservation, StorageUsage
from app.db.session import transaction
from app.errors import StorageFull
from app.services import Services

log = logging.getLogger("sealdrop.storage")


class _Full(Exception):
    """The reservation does not fit under the cap: roll its transaction back."""


USAGE_ROW = 1
# A body of unknown length is reserved ahead of its bytes, in steps that double from the
# first to the largest: few transactions for a large file, little held back for a small one.
FIRST_STEP_BYTES = 8 * 1024 * 1024
LARGEST_STEP_BYTES = 256 * 1024 * 1024


def charge(size: int, segment_log2: int) -> int:
    """The bytes counted for an upload of `size` plaintext bytes: its staged copy and its
    blob, each sealed (header and one tag per segment)."""
    return 2 * Layout(size, segment_log2).ciphertext_size


class Reservation:
    """One upload's reservation while its body arrives, under its job's id.

    `cover(n)` makes sure the first `n` plaintext bytes are reserved before they are
    staged; `release()` gives the reservation back when the upload fails. Once the link
    and job rows are written, `hold_for_job` has turned it into the job's.
    """

    def __init__(self, services: Services, job_id: str) -> None:
        self.services = services
        self.job_id = job_id
        self.covered = 0  # plaintext bytes reserved for
        self.reserved = 0  # bytes counted for them
        self._tight = False  # a step ahead was refused: reserve only what arrives

    async def cover(self, size: int, *, exact: bool = False) -> None:
        """Reserve for the first `size` plaintext bytes; StorageFull if they do not fit.

        Unless `exact`, reserve a step ahead, so that most chunks need no transaction.
        Bytes past the largest upload are not reserved (that upload is refused with 413).
        """
        settings = self.services.settings
        size = min(size, settings.max_upload_bytes)
        if self.reserved and size <= self.covered:
            return
        if not exact and not self._tight:
            step = min(max(self.covered, FIRST_STEP_BYTES), LARGEST_STEP_BYTES)
            ahead = min(settings.max_upload_bytes, max(size, self.covered + step))
            if ahead > size and await self._grow_to(ahead):
                return
            self._tight = True
        if not await self._grow_to(size):
            log.warning("upload refused: the storage cap (%d bytes) is reached", self._cap)
            raise StorageFull()

    async def covering(self, body: AsyncIterator[Buffer]) -> AsyncIterator[Buffer]:
        """`body`, each chunk reserved for before it is passed on to be staged."""
        received = 0
        async for chunk in body:
            received += len(chunk)
            await self.cover(received)
            yield chunk

    @property
    def _cap(self) -> int:
        return self.services.settings.max_stored_bytes

    async def _grow_to(self, size: int) -> bool:
        total = charge(size, self.services.settings.segment_log2)
        try:
            async with transaction(self.services.sessions, immediate=True) as session:
                # The reservation's row before the total's: every writer takes them in
                # this order.
                extra = await self._hold(session, total)
                counted = await session.execute(_add_within_cap(extra, self._cap))
                if counted.rowcount != 1:  # type: ignore[attr-defined]
                    raise _Full
        except _Full:
            return False
        self.covered, self.reserved = size, total
        return True

    async def _hold(self, session: AsyncSession, total: int) -> int:
        """Make the reservation's row hold `total` bytes; how many more it holds now."""
        if self.reserved:
            grown = await session.execute(
                update(StorageReservation)
                .where(StorageReservation.id == self.job_id, StorageReservation.in_flight)
                .values(bytes=total)
            )
            if grown.rowcount == 1:  # type: ignore[attr-defined]
                return total - self.reserved
            # Released by the janitor (an upload slower than allowed): reserve it all again.
        await session.execute(
            insert(StorageReservation).values(id=self.job_id, bytes=total, in_flight=True)
        )
        return total

    async def release(self) -> None:
        """Give the reservation back (the upload failed); nothing if it was never made."""
        if not self.reserved:
            return
        async with transaction(self.services.sessions, immediate=True) as session:
            freed = await session.scalar(
                delete(StorageReservation)
                .where(StorageReservation.id == self.job_id, StorageReservation.in_flight)
                .returning(StorageReservation.bytes)
            )
            await add(session, -(freed or 0))
        self.covered = self.reserved = 0


def _add_within_cap(extra: int, cap: int) -> Update:
    statement = (
        update(StorageUsage)
        .where(StorageUsage.id == USAGE_ROW)
        .values(stored_bytes=StorageUsage.stored_bytes + extra)
    )
    if cap:
        statement = statement.where(StorageUsage.stored_bytes + extra <= cap)
    return statement


async def add(session: AsyncSession, delta: int) -> None:
    """Change the total by `delta` bytes, in the caller's transaction (last, after the rows)."""
    if delta:
        await session.execute(
            update(StorageUsage)
            .where(StorageUsage.id == USAGE_ROW)
            .values(stored_bytes=StorageUsage.stored_bytes + delta)
        )


async def hold_for_job(session: AsyncSession, job_id: str, size: int, segment_log2: int) -> None:
    """In the transaction writing the job's row: its upload's reservation becomes the
    job's, of exactly `charge(size)`. Counted even if the janitor took the reservation
    meanwhile (an upload slower than allowed): the bytes are staged, they exist."""
    freed = await session.scalar(
        delete(StorageReservation)
        .where(StorageReservation.id == job_id, StorageReservation.in_flight)
        .returning(StorageReservation.bytes)
    )
    held = charge(size, segment_log2)
    await session.execute(insert(StorageReservation).values(id=job_id, bytes=held, in_flight=False))
    await add(session, held - (freed or 0))


async def release_job(session: AsyncSession, job_id: str, *, blob_bytes: int = 0) -> None:
    """In the transaction that ends a job: release its reservation and count the blob it
    sealed (`blob_bytes`, none if it failed or was cancelled)."""
    freed = await session.scalar(
        delete(StorageReservation)
        .where(StorageReservation.id == job_id, StorageReservation.in_flight.is_(False))
        .returning(StorageReservation.bytes)
    )
    await add(session, blob_bytes - (freed or 0))


async def release_abandoned(services: Services) -> int:
    """Release reservations nobody will release: uploads in flight for longer than the
    sweep age (their process died), and jobs' whose job is no longer live. How many."""
    cutoff = db_now_plus(seconds(-services.settings.sweep_age_seconds))
    live_job = exists().where(Job.id == StorageReservation.id, Job.state.in_(LIVE_JOB_STATES))
    abandoned = or_(
        and_(StorageReservation.in_flight, StorageReservation.created_at < cutoff),
        and_(StorageReservation.in_flight.is_(False), ~live_job),
    )
    async with transaction(services.sessions, immediate=True) as session:
        freed = (
            (
                await session.execute(
                    delete(StorageReservation).where(abandoned).returning(StorageReservation.bytes)
                )
            )
            .scalars()
            .all()
        )
        await add(session, -sum(freed))
    return len(freed)


async def recount(services: Services) -> int:
    """Set the total to the sum over the rows; returns the difference it corrected,
    which is 0 unless something changed rows without the total (a bug, a hand edit)."""
    async with transaction(services.sessions, immediate=True) as session:
        # The total's row first: writers that change rows wait for it, so the sums below
        # see every change already counted and none that is not.
        counted = await session.scalar(
            select(StorageUsage.stored_bytes).where(StorageUsage.id == USAGE_ROW).with_for_update()
        )
        blobs = await session.scalar(select(func.coalesce(func.sum(Blob.ciphertext_size), 0)))
        held = await session.scalar(select(func.coalesce(func.sum(StorageReservation.bytes), 0)))
        truth = int(blobs or 0) + int(held or 0)
        if counted is None:
            await session.execute(insert(StorageUsage).values(id=USAGE_ROW, stored_bytes=truth))
        elif counted != truth:
            await session.execute(
                update(StorageUsage).where(StorageUsage.id == USAGE_ROW).values(stored_bytes=truth)
            )
    drift = truth - int(counted or 0)
    if drift:
        log.warning("stored bytes recounted: %d, the total said %d", truth, counted)
    return drift


async def stored_bytes(services: Services) -> int:
    """The bytes the stores hold, as counted."""
    async with services.sessions() as session:
        total = await session.scalar(
            select(StorageUsage.stored_bytes).where(StorageUsage.id == USAGE_ROW)
        )
    return int(total or 0)


async def release_in_flight(session: AsyncSession, job_id: str, *, blob_bytes: int = 0) -> None:
    """In the caller's transaction: give back an upload's reservation while its bytes are
    still arriving (a direct upload cancelled or expired), or once the API has sealed it
    into its blob itself, counting the blob (`blob_bytes`) in its place. Counted even if
    the janitor took the reservation meanwhile: the blob exists."""
    freed = await session.scalar(
        delete(StorageReservation)
        .where(StorageReservation.id == job_id, StorageReservation.in_flight)
        .returning(StorageReservation.bytes)
    )
    await add(session, blob_bytes - (freed or 0))
