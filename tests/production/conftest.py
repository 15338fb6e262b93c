"""Fixtures of the production tests: the app on real PostgreSQL and Redis, isolated per run.

`pg_server` / `shared_redis` are found on the usual ports or started throw-away for the
session; `migrated_database` is one database per session, migrated by Alembic the way
`sealdrop migrate` does it; `redis_prefix` is one key prefix per session. `own_pg` /
`own_redis` are private instances a test may restart, stop or freeze. A service that cannot
be reached fails the tests under CI and skips them elsewhere.

`make_prod_settings` builds production settings (PostgreSQL, Redis, a master key from the
environment) with objects still in a local folder: S3 has tests of its own. Every test of
the session shares one key ring and one object folder, so a job left queued by one test
can be finished by any later test's worker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app import migrate
from app.crypto.keys import new_key_entry
from app.db.session import make_engine
from app.settings import Settings
from tests.conftest import AppClient
from tests.support.asgi import running_app
from tests.support.services import (
    PgDatabase,
    PgServer,
    RedisServer,
    database,
    delete_prefix,
    private_postgres,
    private_redis,
    running_postgres,
    running_redis,
    unique_prefix,
)


async def migrate_database(url: str) -> None:
    """Apply the migrations to the database at `url` (what `sealdrop migrate` does)."""
    engine = make_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's PostgreSQL server (shared on :5432, or a throw-away cluster)."""
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def pg_database(pg_server: PgServer) -> Iterator[PgDatabase]:
    """A database of the session's own, empty."""
    with database(pg_server) as created:
        yield created


@pytest.fixture(scope="session")
async def migrated_database(pg_database: PgDatabase) -> PgDatabase:
    """The session's database with the schema applied."""
    await migrate_database(pg_database.url)
    return pg_database


@pytest.fixture
async def fresh_database(pg_server: PgServer) -> AsyncIterator[PgDatabase]:
    """A migrated database of one test's own (for tests that count every row)."""
    with database(pg_server) as created:
        await migrate_database(created.url)
        yield created


@pytest.fixture(scope="session")
def shared_redis() -> Iterator[RedisServer]:
    """The session's Redis server (shared on :6379, or a throw-away one)."""
    with running_redis() as server:
        yield server


@pytest.fixture(scope="session")
def redis_prefix(shared_redis: RedisServer) -> Iterator[str]:
    """A key prefix of the session's own, whose keys are deleted at the end."""
    prefix = unique_prefix()
    yield prefix
    delete_prefix(shared_redis, prefix)


@pytest.fixture
def own_pg() -> Iterator[PgServer]:
    """A private PostgreSQL cluster for one test (it may be restarted or stopped)."""
    with private_postgres() as server:
        yield server


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A private redis-server for one test (it may be stopped or frozen)."""
    with private_redis() as server:
        yield server


@pytest.fixture(scope="session")
def master_keys() -> str:
    """The session's key ring, as production passes it (SEALDROP_MASTER_KEYS)."""
    return new_key_entry("prodtest")


@pytest.fixture(scope="session")
def objects_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's object folder (blobs and staging)."""
    return tmp_path_factory.mktemp("objects")


@pytest.fixture
def make_prod_settings(
    tmp_path: Path,
    migrated_database: PgDatabase,
    shared_redis: RedisServer,
    redis_prefix: str,
    master_keys: str,
    objects_dir: Path,
) -> Callable[..., Settings]:
    """Production settings on the session's database and Redis, with overrides."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "database_url": migrated_database.url,
            "redis_url": shared_redis.url(),
            "redis_prefix": redis_prefix,
            "storage_url": f"file://{objects_dir}",
            "master_keys": master_keys,
            "segment_log2": 16,
            "janitor_interval_seconds": 3600,
            "job_retry_base_seconds": 0.05,
            # Every test's requests come from 127.0.0.1 and share the session's counters:
            # limits high enough that only the tests about limits meet them.
            "upload_rate_per_minute": 10_000,
            "client_password_failures": 10_000,
        }
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture
def prod_settings(make_prod_settings: Callable[..., Settings]) -> Settings:
    """Production settings with the defaults of `make_prod_settings`."""
    return make_prod_settings()


@pytest.fixture
async def prod_client(prod_settings: Settings) -> AsyncIterator[AppClient]:
    """The real app on PostgreSQL and Redis (worker embedded), behind an httpx client."""
    async with running_app(prod_settings) as client:
        yield client
