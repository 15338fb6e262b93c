"""Wake-ups across processes through PostgreSQL LISTEN/NOTIFY.

Each process keeps one listening connection (autocommit) on `sealdrop_jobs`,
`sealdrop_links` (payload: the link id) and `sealdrop_staging` (payload: the job id of an
upload that staged one more piece) and feeds what it hears into the in-process
`Notifier`. Sending goes through the engine's pool. When the database goes away the
listener reconnects with backoff; after reconnecting it wakes this process's workers once,
since jobs may have been queued while it was deaf. A lost wake-up costs latency, never work
(workers poll slowly, upload waiters re-check).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.infra.notify import Notifier

log = logging.getLogger("sealdrop.notify")

JOBS_CHANNEL = "sealdrop_jobs"
LINKS_CHANNEL = "sealdrop_links"
STAGING_CHANNEL = "sealdrop_staging"
# Without traffic a dead connection can look alive; a trivial query now and then tells.
KEEPALIVE_SECONDS = 15.0
BACKOFF_FIRST_SECONDS = 0.1
BACKOFF_MAX_SECONDS = 5.0
START_WAIT_SECONDS = 5.0


def libpq_url(sqlalchemy_url: str) -> str:
    """The libpq URL psycopg connects to, from SQLAlchemy's `postgresql+psycopg://…`."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class PostgresNotifier(Notifier):
    """A `Notifier` whose signals reach every process using the same database.

    `listening` is set while the LISTEN connection is up; `connections` counts the
    connections made (more than one: it reconnected) and `received` the notifications heard.
    """

    def __init__(self, engine: AsyncEngine, database_url: str) -> None:
        super().__init__()
        self._engine = engine
        self._conninfo = libpq_url(database_url)
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        self.connections = 0
        self.received = 0

    async def job_queued(self) -> None:
        """Wake workers here and in every other process."""
        self.deliver_job_queued()
        await self._send(JOBS_CHANNEL, "")

    async def link_settled(self, link_id: str) -> None:
        """Wake upload waiters for `link_id` here and in every other process."""
        self.deliver_link_settled(link_id)
        await self._send(LINKS_CHANNEL, link_id)

    async def pieces_staged(self, job_id: str) -> None:
        """Wake the worker following `job_id`'s upload, here or in another process."""
        self.staging_grew(job_id)
        await self._send(STAGING_CHANNEL, job_id)

    async def start(self) -> None:
        """Start listening; waits briefly for the first connection, never fails start-up."""
        self._task = asyncio.create_task(self._listen_forever(), name="sealdrop-listen")
        with suppress(TimeoutError):
            await asyncio.wait_for(self.listening.wait(), START_WAIT_SECONDS)

    async def close(self) -> None:
        """Stop listening and close the listening connection."""
        if self._task is None:
            return
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _send(self, channel: str, payload: str) -> None:
        try:
            async with self._engine.begin() as connection:
                await connection.execute(
                    text("SELECT pg_notify(:channel, :payload)"),
                    {"channel": channel, "payload": payload},
                )
        except (SQLAlchemyError, OSError) as error:
            # The wake-up is lost; polling and re-checks cover for it.
            log.warning("NOTIFY %s failed: %s", channel, type(error).__name__)

    async def _listen_forever(self) -> None:
        failures = 0
        while True:
            try:
                await self._listen_once()
            except (psycopg.Error, OSError) as error:
                if self.listening.is_set():
                    failures = 0
                self.listening.clear()
                if failures == 0:
                    log.warning("LISTEN connection lost (%s); reconnecting", type(error).__name__)
                failures += 1
            delay = BACKOFF_FIRST_SECONDS * 2 ** min(failures, 10)
            await asyncio.sleep(min(delay, BACKOFF_MAX_SECONDS))

    async def _listen_once(self) -> None:
        """Connect, LISTEN, and deliver until the connection fails (it always ends raising)."""
        connection = await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=5
        )
        async with connection:
            await connection.execute(f"LISTEN {JOBS_CHANNEL}")
            await connection.execute(f"LISTEN {LINKS_CHANNEL}")
            await connection.execute(f"LISTEN {STAGING_CHANNEL}")
            self.connections += 1
            self.listening.set()
            if self.connections > 1:
                log.info("LISTEN connection re-established")
                self.deliver_job_queued()
            while True:
                async for notification in connection.notifies(timeout=KEEPALIVE_SECONDS):
                    self._deliver(notification.channel, notification.payload)
                await connection.execute("SELECT 1")

    def _deliver(self, channel: str, payload: str) -> None:
        self.received += 1
        if channel == JOBS_CHANNEL:
            self.deliver_job_queued()
        elif channel == LINKS_CHANNEL and payload:
            self.deliver_link_settled(payload)
        elif channel == STAGING_CHANNEL and payload:
            self.staging_grew(payload)
