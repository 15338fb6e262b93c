"""Fixtures of the production tests: real PostgreSQL and Redis, isolated per run.

`pg_server` / `redis` are found on the usual ports or started throw-away for the session;
`pg_database` is one database per session, migrated by Alembic; `redis_prefix` is one key
prefix per session. `own_pg` / `own_redis_server` are private instances a test may restart,
stop or freeze. A service that cannot be reached fails the tests under CI, skips them
elsewhere (tests.support.services.unavailable).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's PostgreSQL server (shared on :5432, or a throw-away cluster)."""
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def pg_database(pg_server: PgServer) -> Iterator[PgDatabase]:
    """A database of the session's own (not migrated: see the app fixtures)."""
    with database(pg_server) as created:
        yield created


@pytest.fixture(scope="session")
def redis_server_for_run() -> Iterator[RedisServer]:
    """The session's Redis server (shared on :6379, or a throw-away one)."""
    with running_redis() as server:
        yield server


@pytest.fixture(scope="session")
def redis_prefix(redis_server_for_run: RedisServer) -> Iterator[str]:
    """A key prefix of the session's own, whose keys are deleted at the end."""
    prefix = unique_prefix()
    yield prefix
    delete_prefix(redis_server_for_run, prefix)


@pytest.fixture
def own_pg() -> Iterator[PgServer]:
    """A private PostgreSQL cluster for one test (it may be restarted or stopped)."""
    with private_postgres() as server:
        yield server


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A private redis-server for one test (it may be stopped or frozen)."""
    with private_redis() as server:
        yield server
