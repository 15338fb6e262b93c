"""Wake-ups across processes: PostgreSQL NOTIFY from one set of services reaches another's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from app.infra.notify_pg import PostgresNotifier
from app.services import Services, open_services
from app.settings import Settings
from tests.support.asgi import running_app, upload
from worker.runner import Worker

WAKE_TIMEOUT = 20.0


@pytest.fixture
async def two_processes(
    make_prod_settings: Callable[..., Settings],
) -> AsyncIterator[tuple[Services, Services]]:
    """Two sets of services on one database, as two processes have, both listening."""
    settings = make_prod_settings(worker="off")
    first, second = await open_services(settings), await open_services(settings)
    try:
        for services in (first, second):
            assert isinstance(services.notifier, PostgresNotifier)
            await asyncio.wait_for(services.notifier.listening.wait(), WAKE_TIMEOUT)
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_a_job_queued_in_one_process_wakes_the_workers_of_another(
    two_processes: tuple[Services, Services],
) -> None:
    api, worker = two_processes
    woken = asyncio.create_task(worker.notifier.wait_for_job(3600))
    await asyncio.sleep(0)
    await api.notifier.job_queued()
    await asyncio.wait_for(woken, WAKE_TIMEOUT)


async def test_a_link_settled_in_one_process_wakes_its_waiters_in_another(
    two_processes: tuple[Services, Services],
) -> None:
    worker, api = two_processes
    async with api.notifier.watching_link("some-link-id") as settled:
        await worker.notifier.link_settled("some-link-id")
        await asyncio.wait_for(settled.wait(), WAKE_TIMEOUT)


async def test_an_upload_is_sealed_by_a_worker_in_another_process(
    make_prod_settings: Callable[..., Settings],
) -> None:
    settings = make_prod_settings(worker="off")
    worker_services = await open_services(settings)
    worker = Worker(worker_services, concurrency=1)
    running = asyncio.create_task(worker.run())
    try:
        async with running_app(settings) as api:
            created = await upload(api, b"sealed elsewhere\n")
            assert created.status == 201
            assert (await api.get(f"/d/{created.token}")).content == b"sealed elsewhere\n"
    finally:
        worker.stop()
        await running
        await worker_services.close()
