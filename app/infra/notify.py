"""Wake-ups between the API and the workers: "a job was queued", "a link settled", and
"an upload's staging grew" (a local write in this process only; a piece staged in S3, in
every process).

In embedded mode both sides live in one process and asyncio primitives are enough. In
production, `app.infra.notify_pg` relays the signals across processes with PostgreSQL
LISTEN/NOTIFY and feeds them into this class. A lost wake-up costs latency, never work:
workers also poll slowly, and upload waiters re-check the database when they wake.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Notifier:
    """In-process wake-ups; subclasses also publish them to other processes."""

    def __init__(self) -> None:
        self._job_event = asyncio.Event()
        self._link_events: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self._growth_events: defaultdict[str, set[asyncio.Event]] = defaultdict(set)

    async def job_queued(self) -> None:
        """Tell workers that there is work."""
        self.deliver_job_queued()

    async def link_settled(self, link_id: str) -> None:
        """Tell upload waiters that a link became ready or failed."""
        self.deliver_link_settled(link_id)

    def deliver_job_queued(self) -> None:
        """Wake this process's workers."""
        self._job_event.set()

    def deliver_link_settled(self, link_id: str) -> None:
        """Wake this process's waiters for `link_id`."""
        for event in self._link_events.get(link_id, ()):
            event.set()

    def forget_job_queued(self) -> None:
        """Drop a wake-up already heard: called before a claim, whose query sees every job
        queued until then, so that only jobs queued after it wake the workers again."""
        self._job_event.clear()

    async def wait_for_job(self, at_most: float) -> None:
        """Return when a job may be waiting, or after `at_most` seconds."""
        try:
            await asyncio.wait_for(self._job_event.wait(), at_most)
        except TimeoutError:
            return
        self._job_event.clear()

    @asynccontextmanager
    async def watching_link(self, link_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set when `link_id` settles; register before checking the database."""
        event = asyncio.Event()
        self._link_events[link_id].add(event)
        try:
            yield event
        finally:
            waiters = self._link_events[link_id]
            waiters.discard(event)
            if not waiters:
                del self._link_events[link_id]

    def staging_grew(self, job_id: str) -> None:
        """Wake this process's worker following the upload of `job_id` (a worker in
        another process looks again on its own, a few milliseconds later)."""
        for event in self._growth_events.get(job_id, ()):
            event.set()

    async def pieces_staged(self, job_id: str) -> None:
        """Tell the worker following the upload of `job_id`, wherever it runs, that a new
        piece of it was recorded (`app.domain.piece_staging`)."""
        self.staging_grew(job_id)

    @asynccontextmanager
    async def watching_staging(self, job_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set when the staging of `job_id` grows: a write in this process, or a
        piece recorded by any process."""
        event = asyncio.Event()
        self._growth_events[job_id].add(event)
        try:
            yield event
        finally:
            waiters = self._growth_events[job_id]
            waiters.discard(event)
            if not waiters:
                del self._growth_events[job_id]

    async def start(self) -> None:
        """Start relaying (nothing to do in process)."""

    async def close(self) -> None:
        """Stop relaying (nothing to do in process)."""
