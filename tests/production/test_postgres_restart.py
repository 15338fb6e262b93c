"""PostgreSQL restarted mid-test: requests fail only while it is down, and only with a 503;
then everything works again without restarting Sealdrop, wake-ups included.

The cluster is the test's own (`own_pg`), restarted with `pg_ctl restart -m fast`, which
ends every session: pooled connections and the LISTEN connections all die.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable

import pytest

from app.infra.notify_pg import PostgresNotifier
from app.services import Services, open_services
from app.settings import Settings
from tests.conftest import AppClient
from tests.production.apps import running
from tests.production.conftest import migrate_database
from tests.support.asgi import upload
from tests.support.services import PgServer, database
from worker.runner import Worker

RECONNECT_TIMEOUT_SECONDS = 60.0


@pytest.fixture
async def restart_settings(
    make_prod_settings: Callable[..., Settings], own_pg: PgServer
) -> AsyncIterator[Settings]:
    """API settings (no worker) on a database in the test's own cluster."""
    with database(own_pg) as created:
        await migrate_database(created.url)
        yield make_prod_settings(database_url=created.url, worker="off")


@pytest.fixture
async def worker_services(restart_settings: Settings) -> AsyncIterator[Services]:
    """A worker process's services, with its worker running."""
    services = await open_services(restart_settings)
    worker = Worker(services, concurrency=1)
    task = asyncio.create_task(worker.run())
    try:
        yield services
    finally:
        worker.stop()
        await task
        await services.close()


async def statuses_while(client: AppClient, path: str, until: asyncio.Task[None]) -> list[str]:
    """GET `path` again and again until `until` is done: each status with its Retry-After."""
    seen = []
    while not until.done():
        answer = await client.get(path)
        seen.append(f"{answer.status_code} {answer.headers.get('Retry-After', '-')}")
        await asyncio.sleep(0.02)
    await until
    return seen


async def reconnected(notifier: PostgresNotifier) -> None:
    """Return once the notifier listens on a new connection."""
    async with asyncio.timeout(RECONNECT_TIMEOUT_SECONDS):
        while not (notifier.connections >= 2 and notifier.listening.is_set()):
            await asyncio.sleep(0.05)


async def test_requests_fail_only_with_503_during_a_restart_and_succeed_after_it(
    restart_settings: Settings, worker_services: Services, own_pg: PgServer
) -> None:
    data = os.urandom(70_000)
    async with running(restart_settings) as app, app.client() as client:
        link = await upload(client, data)
        restart = asyncio.create_task(asyncio.to_thread(own_pg.restart))
        during = await statuses_while(client, f"/d/{link.token}", restart)
        after = await client.get(f"/d/{link.token}")
    assert set(during) <= {"200 -", "503 5"}, during
    assert after.status_code == 200
    assert after.content == data


async def test_after_a_restart_an_upload_is_sealed_by_a_worker_woken_by_notify(
    restart_settings: Settings, worker_services: Services, own_pg: PgServer
) -> None:
    notifier = worker_services.notifier
    assert isinstance(notifier, PostgresNotifier)
    async with running(restart_settings) as app, app.client() as client:
        await asyncio.to_thread(own_pg.restart)
        await reconnected(notifier)
        heard = notifier.received
        created = await upload(client, b"after the restart\n")
        download = await client.get(f"/d/{created.token}")
    assert created.status == 201
    assert download.content == b"after the restart\n"
    assert notifier.received > heard
