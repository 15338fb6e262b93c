"""Jobs of uploads whose body is still arriving, driven by hand (the app's worker is off).

A large PUT holds its body back half-way: its link and its job (`receiving`) exist. A claim
makes it `following`; while the body arrives the job cannot be finished, and handing it
back makes it `receiving` again. Once the API has the whole body the job is `running`
and the attempt that followed it finishes. An upload whose API is gone for longer than
any upload may last is cancelled by the janitor: no row, no staged byte.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from app.db.clock import db_now_plus, seconds
from app.db.models import Job, Link
from app.domain.uploads import FOLLOW_FROM_BYTES
from tests.conftest import AppClient
from tests.support.datadir import staging_files
from tests.support.held_body import HeldBody
from tests.support.rows import update_job
from worker import janitor, queue, seal
from worker.queue import ClaimedJob, SealedBlob

SIZE = FOLLOW_FROM_BYTES + 300_000


async def _rows(client: AppClient) -> list[tuple[str, str, bytes | None]]:
    """(job state, link state, link sha256) of every job."""
    async with client.services.sessions() as session:
        rows = await session.execute(
            select(Job.state, Link.state, Link.sha256).join(Link, Link.id == Job.link_id)
        )
        return [(row[0], row[1], row[2]) for row in rows]


async def _until_job(client: AppClient) -> None:
    for _ in range(500):
        if await _rows(client):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no job row while the body arrives")


async def _claim(client: AppClient) -> ClaimedJob:
    job = await queue.claim(client.services, "follower")
    assert job is not None
    return job


def _fake_blob() -> SealedBlob:
    return SealedBlob(
        key_id="k", wrapped_key=b"w" * 60, header=b"h" * 16, segment_size=1, ciphertext_size=1
    )


async def test_a_job_is_followed_while_its_body_arrives_and_finished_once_received(
    idle_client: AppClient,
) -> None:
    await check_followed_job(idle_client)


async def test_the_janitor_cancels_an_upload_whose_api_is_gone(idle_client: AppClient) -> None:
    await check_dead_upload_cancelled(idle_client)


async def check_followed_job(idle_client: AppClient) -> None:
    """Claim, hand back, claim again and finish a job whose body arrives meanwhile."""
    put = HeldBody(idle_client, SIZE, SIZE // 2)
    await _until_job(idle_client)
    assert await _rows(idle_client) == [("receiving", "pending", None)]

    job = await _claim(idle_client)
    assert job.following
    assert not job.needs_digest
    assert [row[0] for row in await _rows(idle_client)] == ["following"]
    # While the body arrives, the attempt cannot finish, even with a blob in hand.
    assert not await queue.finish(idle_client.services, job, _fake_blob())
    # Handed back, it waits for a worker again, still receiving.
    assert await queue.release(idle_client.services, job)
    assert [row[0] for row in await _rows(idle_client)] == ["receiving"]

    job = await _claim(idle_client)
    sealing = asyncio.create_task(seal.seal_attempt(idle_client.services, job))
    put.go.set()
    answer = await put.answer
    assert answer.status_code == 202, answer.text
    assert [row[0] for row in await _rows(idle_client)] == ["running"]
    assert await queue.finish(idle_client.services, job, await sealing)

    assert await _rows(idle_client) == []
    token = answer.json()["token"]
    assert (await idle_client.get(f"/d/{token}")).content == put.data


async def check_dead_upload_cancelled(idle_client: AppClient) -> None:
    """An upload older than any may last is cancelled by the janitor, rows and bytes."""
    put = HeldBody(idle_client, SIZE, SIZE // 2)
    await _until_job(idle_client)
    services = idle_client.services
    age = services.settings.sweep_age_seconds + 60
    async with services.sessions() as session:
        job_id = await session.scalar(select(Job.id))
    assert job_id is not None
    await update_job(services, job_id, created_at=db_now_plus(seconds(-age)))

    report = await janitor.run_once(services)
    assert report.uploads_cancelled == 1
    assert await _rows(idle_client) == []
    async with services.sessions() as session:
        assert (await session.scalar(select(Link.id))) is None

    # The body ends after all: the upload is refused, and leaves nothing either.
    put.go.set()
    answer = await put.answer
    assert answer.status_code == 503, answer.text
    assert staging_files(services.settings) == []
    async with services.sessions() as session:
        assert (await session.scalar(select(Link.id))) is None
