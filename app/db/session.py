"""The async engine and sessions, with the settings each database needs.

SQLite (embedded mode) runs in WAL mode with a busy timeout, and write transactions that
claim work start with `BEGIN IMMEDIATE` so two claimers never both read the same row.
PostgreSQL (production) uses psycopg 3 with `pool_pre_ping`, so a database restart costs a
few failed requests and no restart of Sealdrop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """Create the engine for `url`, tuned for SQLite or PostgreSQL."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _tune_sqlite(engine)
        return engine
    return create_async_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=10,
        connect_args={"connect_timeout": 5},
    )


def _tune_sqlite(engine: AsyncEngine) -> None:
    # pysqlite's own transaction handling is switched off so that we can issue
    # BEGIN IMMEDIATE ourselves (the documented SQLAlchemy recipe).
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded values after commit (we never lazy-load)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession], *, immediate: bool = False
) -> AsyncIterator[AsyncSession]:
    """One short transaction: commit on success, roll back on error.

    `immediate=True` takes SQLite's write lock at BEGIN (claims and counters); on
    PostgreSQL it changes nothing, row locks do that work there.
    """
    async with sessions() as session, session.begin():
        if immediate:
            await session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
        yield session


async def ping(engine: AsyncEngine) -> None:
    """Raise if the database cannot answer a trivial query."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
