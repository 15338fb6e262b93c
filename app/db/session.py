"""The async engine and sessions, with the settings each database needs.

SQLite (embedded mode) runs in WAL mode with a busy timeout, and write transactions that
claim work start with `BEGIN IMMEDIATE` so two claimers never both read the same row. Its
files are private to their owner (0600), like the objects and the key file.
PostgreSQL (production) uses psycopg 3 with `pool_pre_ping`, so a database restart costs a
few failed requests and no restart of Sealdrop.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, make_url, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

log = logging.getLogger("sealdrop.db")

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_FILE_MODE = 0o600
# SQLite opens these next to the database, each with the database file's mode.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """Create the engine for `url`, tuned for SQLite or PostgreSQL."""
    if url.startswith("sqlite"):
        _make_sqlite_files_private(url)
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


def _make_sqlite_files_private(url: str) -> None:
    """Create the database file 0600 before SQLite does, and narrow existing files to 0600.

    SQLite would create the database 0644 less the umask (readable by every user of the
    machine in a 0755 folder), and gives its -wal and -shm the database file's mode; so
    the database file is created here first. Files left more open, by an earlier version
    or by hand, are narrowed: they hold file names, digests and password hashes.
    """
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return  # in memory, or a URI whose options we leave to SQLite
    path = Path(database)
    if not path.parent.is_dir():
        return  # SQLite reports it ("unable to open database file") on first connect
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, SQLITE_FILE_MODE))
    for file in (path, *(path.with_name(path.name + suffix) for suffix in SQLITE_COMPANIONS)):
        _narrow_to_owner(file)


def _narrow_to_owner(path: Path) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if not mode & (stat.S_IRWXG | stat.S_IRWXO):
        return
    try:
        path.chmod(SQLITE_FILE_MODE)
    except PermissionError:
        log.warning("%s can be read by other users than its owner; run: chmod 600 %s", path, path)
        return
    log.warning("%s could be read by other users than its owner; made it 0600", path)


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
