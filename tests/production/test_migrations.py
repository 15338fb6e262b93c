"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL,
and the newest one can be undone and redone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from app import migrate
from app.db.models import Base
from app.db.session import make_engine
from tests.support.services import PgDatabase


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def _check(url: str) -> None:
    engine = make_engine(url)
    try:
        await migrate.upgrade(engine)
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
        async with engine.begin() as connection:
            await connection.run_sync(_downgrade_one)
        await migrate.upgrade(engine)
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
    finally:
        await engine.dispose()


def _downgrade_one(connection: Connection) -> None:
    command.downgrade(migrate.alembic_config(connection), "-1")


async def test_sqlite_schema_matches_the_models(tmp_path: Path) -> None:
    await _check(f"sqlite+aiosqlite:///{tmp_path / 'schema.db'}")


async def test_postgres_schema_matches_the_models(fresh_database: PgDatabase) -> None:
    await _check(fresh_database.url)
