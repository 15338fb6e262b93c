"""Job claims on PostgreSQL: SKIP LOCKED hands each job to one claimer, fencing stops the rest.

Races are tested here, not on SQLite, whose global write lock would hide them (DESIGN §9).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import func, insert, select

from app.crypto.tokens import new_id, new_token, token_hash
from app.db.clock import db_now_plus, seconds
from app.db.models import Blob, Job, Link, LinkState
from app.db.session import transaction
from app.services import Services, open_services
from app.settings import Settings
from tests.support.rows import update_job
from tests.support.services import PgDatabase
from worker import janitor, queue
from worker.queue import ClaimedJob, SealedBlob

JOBS = 50
CLAIMERS = 4


@pytest.fixture
async def claimers(
    make_prod_settings: Callable[..., Settings], fresh_database: PgDatabase
) -> AsyncIterator[list[Services]]:
    """Four sets of services with engines of their own, as four worker processes have."""
    settings = make_prod_settings(database_url=fresh_database.url, worker="off")
    opened = [await open_services(settings) for _ in range(CLAIMERS)]
    try:
        yield opened
    finally:
        for services in opened:
            await services.close()


async def queue_jobs(services: Services, count: int) -> list[str]:
    """Pending links with one queued job each, written as an upload writes them."""
    job_ids = [new_id() for _ in range(count)]
    async with transaction(services.sessions) as session:
        for job_id in job_ids:
            link_id = new_id()
            await session.execute(
                insert(Link).values(
                    id=link_id,
                    token_hash=token_hash(new_token()),
                    manage_token_hash=token_hash(new_token()),
                    size=0,
                    expires_at=db_now_plus(seconds(3600)),
                    state=LinkState.PENDING,
                )
            )
            await session.execute(insert(Job).values(id=job_id, link_id=link_id))
    return job_ids


async def claim_until_empty(services: Services, owner: str) -> list[ClaimedJob]:
    """Claim as one worker does, until nothing is left."""
    taken = []
    while (job := await queue.claim(services, owner)) is not None:
        taken.append(job)
    return taken


async def test_four_concurrent_claimers_take_each_of_fifty_jobs_exactly_once(
    claimers: list[Services],
) -> None:
    job_ids = await queue_jobs(claimers[0], JOBS)
    results = await asyncio.gather(
        *(claim_until_empty(services, f"claimer-{n}") for n, services in enumerate(claimers))
    )
    claimed = [job.id for taken in results for job in taken]
    assert sorted(claimed) == sorted(job_ids)
    async with claimers[0].sessions() as session:
        rows = (await session.execute(select(Job.id, Job.lease_owner, Job.attempts))).all()
    owners = {job.id: job.owner for taken in results for job in taken}
    assert {row.id: row.lease_owner for row in rows} == owners
    assert {row.attempts for row in rows} == {1}


async def test_a_stale_owner_can_change_nothing_once_its_job_was_taken_over(
    claimers: list[Services],
) -> None:
    first, second = claimers[0], claimers[1]
    [job_id] = await queue_jobs(first, 1)
    stale = await queue.claim(first, "stale-owner")
    assert stale is not None
    await update_job(first, job_id, lease_expires_at=db_now_plus(seconds(-1)))
    fresh = await queue.claim(second, "new-owner")
    assert fresh is not None
    assert (fresh.id, fresh.attempt) == (job_id, 2)

    assert not await queue.renew(first, stale)
    assert not await queue.record_upload_id(first, stale, "stale-upload")
    assert not await queue.retry_later(first, stale, "stale retry")
    assert not await queue.fail(first, stale, "stale failure")
    assert not await queue.finish(first, stale, _blob())
    assert not await queue.release(first, stale)

    assert await queue.renew(second, fresh)
    async with first.sessions() as session:
        job = (await session.execute(select(Job).where(Job.id == job_id))).scalar_one()
        link_state = await session.scalar(select(Link.state).where(Link.id == job.link_id))
        blobs = await session.scalar(select(func.count()).select_from(Blob))
    assert (job.state, job.lease_owner, job.attempts) == ("running", "new-owner", 2)
    assert job.attempt_upload_id is None
    assert link_state == "pending"
    assert blobs == 0


async def test_a_job_released_by_as_many_stopping_workers_as_it_has_attempts_is_still_claimed(
    claimers: list[Services],
) -> None:
    [job_id] = await queue_jobs(claimers[0], 1)
    for stop in range(claimers[0].settings.job_max_attempts):
        services = claimers[stop % CLAIMERS]
        job = await queue.claim(services, f"stopping-{stop}")
        assert job is not None
        assert (job.id, job.attempt) == (job_id, 1)
        assert await queue.release(services, job)
    last = await queue.claim(claimers[0], "last")
    assert last is not None
    assert (last.id, last.attempt) == (job_id, 1)


async def test_concurrent_janitors_fail_a_queued_job_with_no_attempt_left_once(
    claimers: list[Services],
) -> None:
    [job_id] = await queue_jobs(claimers[0], 1)
    await update_job(claimers[0], job_id, attempts=claimers[0].settings.job_max_attempts)
    failed = await asyncio.gather(*(janitor.fail_exhausted_jobs(s) for s in claimers))
    assert sum(failed) == 1
    async with claimers[0].sessions() as session:
        job = (await session.execute(select(Job).where(Job.id == job_id))).scalar_one()
        link_state = await session.scalar(select(Link.state).where(Link.id == job.link_id))
    assert (job.state, job.staging_wrapped_key, link_state) == ("failed", None, "failed")


def _blob() -> SealedBlob:
    return SealedBlob(
        key_id="prodtest",
        wrapped_key=bytes(60),
        header=bytes(16),
        segment_size=65536,
        ciphertext_size=32,
    )
