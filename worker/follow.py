"""Following an upload while its body still arrives: the staging object read as it grows.

The API writes the staged object (v1, sealed under the staging key) front to back and
only appends, so every byte below the object's current length is final: a segment whose
last byte is there can be opened and resealed at once. The attempt waits for more until
the API says the write grew (in the same process), or looks again after a short while
(an fstat of a local file costs microseconds; an API in another process says nothing),
and now and then checks in the database that it still holds the job: an aborted upload
deletes the job's row, and the attempt stops (`LeaseLost`) without writing anything.

An upload staged in S3 cannot be read before its write completes, so the API stages it as
pieces (`app.domain.piece_staging`), each committed and then recorded on the job row:
`recorded_pieces` hands each one over as soon as it is recorded, woken by the API's
notification (from any process) or looking again every `PIECES_POLL_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from app.crypto import sealing
from app.db.models import JobState
from app.services import Services
from app.storage.base import GrowingObject
from app.storage.object_keys import Piece, load_pieces
from worker import queue
from worker.queue import ClaimedJob

# Waits between looks at a staging object that has not grown, unless woken: short at
# first (the body arrives in chunks of a few hundred KiB), then longer for a slow client.
FIRST_WAIT_SECONDS = 0.002
LONGEST_WAIT_SECONDS = 0.05
# How often a waiting attempt checks that it still holds the job (an aborted upload).
CHECK_HELD_SECONDS = 0.5
# How long, at most, between two checks whether the API has recorded the whole body.
RECEIVED_POLL_SECONDS = 0.5
# How long, at most, between two looks at the pieces recorded (a lost notification); each
# look also checks that the attempt still holds the job.
PIECES_POLL_SECONDS = 0.5


class _Growth:
    """Waits until a growing object holds at least so many bytes."""

    def __init__(
        self, services: Services, job: ClaimedJob, staged: GrowingObject, grew: asyncio.Event
    ) -> None:
        self.services = services
        self.job = job
        self.staged = staged
        self.grew = grew
        self._loop = asyncio.get_running_loop()
        self._next_check = self._loop.time() + CHECK_HELD_SECONDS

    async def until(self, length: int) -> None:
        wait = FIRST_WAIT_SECONDS
        while await self.staged.available() < length:
            if self._loop.time() >= self._next_check:
                self._next_check = self._loop.time() + CHECK_HELD_SECONDS
                if await queue.held_state(self.services, self.job) is None:
                    raise queue.LeaseLost()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self.grew.wait()
            self.grew.clear()
            wait = min(wait * 2, LONGEST_WAIT_SECONDS)


@contextlib.asynccontextmanager
async def following(
    services: Services, job: ClaimedJob, staged: GrowingObject
) -> AsyncIterator[Follower]:
    """Read the job's staging write as it grows, woken by the API as it writes."""
    async with services.notifier.watching_staging(job.id) as grew:
        yield Follower(_Growth(services, job, staged, grew), staged)


class Follower:
    """The staged object's header, then its segments, each as soon as it is whole."""

    def __init__(self, growth: _Growth, staged: GrowingObject) -> None:
        self._growth = growth
        self._staged = staged

    async def header(self) -> bytes:
        """The 16-byte header, once it is written."""
        await self._growth.until(sealing.HEADER_SIZE)
        header = memoryview(bytearray(sealing.HEADER_SIZE))
        await self._staged.read_into(header, 0)
        return bytes(header)

    async def segments(self, layout: sealing.Layout) -> AsyncIterator[memoryview]:
        """Each sealed segment in one reused buffer (each is done with before the next is
        asked for)."""
        buffer = memoryview(bytearray(layout.sealed_length(0)))
        for index in range(layout.segment_count):
            start, length = layout.segment_offset(index), layout.sealed_length(index)
            await self._growth.until(start + length)
            view = buffer[:length]
            if await self._staged.read_into(view, start) != length:
                raise queue.LeaseLost()  # the file shrank: only a truncation by hand does that
            yield view


async def recorded_pieces(services: Services, job: ClaimedJob) -> AsyncIterator[Piece]:
    """Each piece of the job's upload, in order, as soon as the API has recorded it; the
    last once the API has recorded the whole body (the job `running`). LeaseLost if the job
    is no longer this attempt's (an upload cancelled, a lease taken over)."""
    handed: list[str] = []
    async with services.notifier.watching_staging(job.id) as grew:
        while True:
            held = await queue.held_pieces(services, job)
            if held is None:
                raise queue.LeaseLost()
            state, text = held
            pieces = load_pieces(text) or []
            if [piece.id for piece in pieces[: len(handed)]] != handed:
                # The API only appends (a fenced update): only an edit by hand does that.
                raise queue.LeaseLost()
            for piece in pieces[len(handed) :]:
                handed.append(piece.id)
                yield piece
            if state == JobState.RUNNING:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PIECES_POLL_SECONDS):
                    await grew.wait()
            grew.clear()


async def until_received(services: Services, job: ClaimedJob) -> None:
    """Return once the API has staged the whole body and recorded it (the job `running`);
    LeaseLost if the job is no longer this attempt's."""
    async with services.notifier.watching_link(job.link_id) as received:
        while True:
            state = await queue.held_state(services, job)
            if state is None:
                raise queue.LeaseLost()
            if state == JobState.RUNNING:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(received.wait(), RECEIVED_POLL_SECONDS)
            received.clear()
