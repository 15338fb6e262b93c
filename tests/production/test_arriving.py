"""Jobs of uploads whose body is still arriving, on PostgreSQL (objects in a local folder, so
the staging write can be followed): the same checks as `tests/worker/test_arriving.py`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from app.settings import Settings
from tests.conftest import AppClient
from tests.support.asgi import running_app
from tests.support.services import PgDatabase
from tests.worker.test_arriving import check_dead_upload_cancelled, check_followed_job


@pytest.fixture
async def pg_idle_client(
    make_prod_settings: Callable[..., Settings], fresh_database: PgDatabase
) -> AsyncIterator[AppClient]:
    """The app on a database of its own, with no worker: the test claims the jobs."""
    settings = make_prod_settings(
        database_url=fresh_database.url, worker="off", upload_wait_seconds=0
    )
    async with running_app(settings) as client:
        yield client


async def test_a_job_is_followed_while_its_body_arrives_and_finished_once_received(
    pg_idle_client: AppClient,
) -> None:
    await check_followed_job(pg_idle_client)


async def test_the_janitor_cancels_an_upload_whose_api_is_gone(
    pg_idle_client: AppClient,
) -> None:
    await check_dead_upload_cancelled(pg_idle_client)
