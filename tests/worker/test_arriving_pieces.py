"""Uploads into S3 staging followed piece by piece, driven by hand (the app's worker is off).

The app runs with its staging store on the session's S3 endpoint: a large PUT is staged
as pieces of `PIECE_BYTES`, each recorded on the job once committed. A body held back
past its first piece: the job is `receiving` and lists that piece, already committed in
S3. A claimed attempt reseals the pieces as they are recorded and finishes once the API
has recorded the whole body. A short body, or an upload whose API is gone (the janitor),
leaves no row, no piece and no unfinished multipart upload.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from sqlalchemy import select

from app.db.clock import db_now_plus, seconds
from app.db.models import Job, Link
from app.domain import staged
from app.domain.piece_staging import PIECE_BYTES
from app.services import Services
from app.settings import Settings
from app.storage.object_keys import piece_prefix
from tests.conftest import AppClient
from tests.support.asgi import running_app
from tests.support.held_body import HeldBody
from tests.support.production import (
    production_backends_cleanup,  # noqa: F401 - a session fixture: stops the services
    s3_url,
    shared_backends,
)
from tests.support.rows import update_job
from tests.support.s3 import create_bucket, environment, remove_bucket
from worker import janitor, queue, seal

SIZE = 2 * PIECE_BYTES + 300_000  # three pieces, the last a short one
FIRST = PIECE_BYTES + 100_000  # past the first piece: it is committed and recorded


@pytest.fixture(scope="module")
def s3_staging() -> Iterator[str]:
    """The URL of a staging bucket of this module's own, on the session's S3 endpoint."""
    backends = shared_backends()
    with environment(backends.s3_env):
        bucket = create_bucket(backends.s3_env, "pieces")
        yield s3_url(bucket, backends.endpoint_url)
        remove_bucket(backends.s3_env, bucket)


@pytest.fixture
async def pieces_client(
    make_settings: Callable[..., Settings], s3_staging: str
) -> AsyncIterator[AppClient]:
    """The app (worker off) staging into S3; blobs stay in the local folder."""
    settings = make_settings(worker="off", upload_wait_seconds=0, staging_url=s3_staging)
    with environment(shared_backends().s3_env):
        async with running_app(settings) as client:
            yield client


async def _job_row(services: Services) -> tuple[str, str, list[object]] | None:
    """(id, state, recorded pieces) of the only job, or None."""
    async with services.sessions() as session:
        row = (await session.execute(select(Job.id, Job.state, Job.staging_pieces))).first()
    return None if row is None else (row.id, row.state, json.loads(row.staging_pieces or "[]"))


async def _until_pieces(services: Services, count: int) -> str:
    """The job's id once it lists `count` pieces."""
    for _ in range(3000):
        row = await _job_row(services)
        if row is not None and len(row[2]) >= count:
            return row[0]
        await asyncio.sleep(0.01)
    raise AssertionError(f"no job listing {count} piece(s) while the body arrives")


async def _staged_keys(services: Services, job_id: str) -> tuple[list[str], list[str]]:
    """The job's committed pieces and its unfinished writes, in the staging bucket."""
    prefix = piece_prefix(job_id)
    objects = sorted([info.key async for info in services.staging.list(prefix)])
    pending = sorted([write.key async for write in services.staging.list_pending_uploads(prefix)])
    return objects, pending


async def _nothing_left(services: Services, job_id: str) -> None:
    assert await _job_row(services) is None
    async with services.sessions() as session:
        assert (await session.scalar(select(Link.id))) is None
    assert await _staged_keys(services, job_id) == ([], [])


async def test_a_piece_staged_put_is_followed_and_finished_once_received(
    pieces_client: AppClient,
) -> None:
    services = pieces_client.services
    assert services.staging.follows_pieces
    put = HeldBody(pieces_client, SIZE, FIRST)
    job_id = await _until_pieces(services, 1)
    row = await _job_row(services)
    assert row is not None
    assert row[1] == "receiving"
    # The first piece is committed (readable by any process), the second under way.
    objects, pending = await _staged_keys(services, job_id)
    assert (len(objects), len(pending)) == (1, 1)

    job = await queue.claim(services, "follower")
    assert job is not None
    assert (job.following, job.needs_digest) == (True, False)
    sealing = asyncio.create_task(seal.seal_attempt(services, job))
    await asyncio.sleep(0.5)
    assert not sealing.done()  # it waits for the pieces still to come
    put.go.set()
    answer = await put.answer
    assert answer.status_code == 202, answer.text
    row = await _job_row(services)
    assert row is not None
    assert (row[1], len(row[2])) == ("running", 3)
    assert await queue.finish(services, job, await sealing)
    await staged.delete_staged(services, job.id, job.staging_pieces)

    token = answer.json()["token"]
    assert (await pieces_client.get(f"/d/{token}")).content == put.data
    assert await _staged_keys(services, job_id) == ([], [])


async def test_a_job_nobody_followed_is_sealed_from_its_recorded_pieces(
    pieces_client: AppClient,
) -> None:
    services = pieces_client.services
    put = HeldBody(pieces_client, SIZE, FIRST)
    await _until_pieces(services, 1)
    put.go.set()
    answer = await put.answer
    assert answer.status_code == 202, answer.text

    job = await queue.claim(services, "late")
    assert job is not None
    assert not job.following
    assert await queue.finish(services, job, await seal.seal_attempt(services, job))
    token = answer.json()["token"]
    assert (await pieces_client.get(f"/d/{token}")).content == put.data


async def test_a_short_body_leaves_no_row_no_piece_and_no_multipart_upload(
    pieces_client: AppClient,
) -> None:
    services = pieces_client.services
    put = HeldBody(pieces_client, SIZE, FIRST, short=True)
    job_id = await _until_pieces(services, 1)
    put.go.set()
    answer = await put.answer
    assert answer.status_code == 400, answer.text
    await _nothing_left(services, job_id)


async def test_the_janitor_deletes_the_pieces_of_an_upload_whose_api_is_gone(
    pieces_client: AppClient,
) -> None:
    services = pieces_client.services
    put = HeldBody(pieces_client, SIZE, FIRST)
    job_id = await _until_pieces(services, 1)
    age = services.settings.sweep_age_seconds + 60
    await update_job(services, job_id, created_at=db_now_plus(seconds(-age)))

    report = await janitor.run_once(services)
    assert report.uploads_cancelled == 1
    await _nothing_left(services, job_id)

    # The body ends after all: the upload fails, and leaves nothing either.
    put.go.set()
    answer = await put.answer
    assert answer.status_code >= 500, answer.text
    await _nothing_left(services, job_id)
