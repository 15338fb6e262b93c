"""The jobs table as a queue, driven by hand: claims, leases, fencing, backoff and failure.

The app runs with its worker off, so nothing but the test claims jobs; lease expiry and
backoff are moved in the database. Every write of a worker that lost its lease must be
refused (DESIGN §1, Leases and fencing).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable

import pytest

from app.db.clock import db_now_plus, seconds
from app.db.models import Job
from app.settings import Settings
from tests.conftest import AppClient
from tests.support.asgi import Uploaded, running_app, upload
from tests.support.datadir import objects_root, staging_files
from tests.support.jobs import settled_by_a_worker
from tests.support.rows import is_future, jobs_of, link_row, update_job, update_link
from worker import janitor, queue, seal
from worker.queue import ClaimedJob

DATA = b"queued bytes " * 12_000  # about 156 KB: three 64 KiB segments


@pytest.fixture
async def two_attempts_client(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[AppClient]:
    """No worker, and a job may be attempted twice."""
    settings = make_settings(worker="off", upload_wait_seconds=0, job_max_attempts=2)
    async with running_app(settings) as client:
        yield client


async def _queued(client: AppClient) -> Uploaded:
    created = await upload(client, DATA)
    assert created.status == 202
    return created


async def _claim(client: AppClient, owner: str) -> ClaimedJob:
    job = await queue.claim(client.services, owner)
    assert job is not None
    return job


async def _expire_lease(client: AppClient, job: ClaimedJob) -> None:
    await update_job(client.services, job.id, lease_expires_at=db_now_plus(seconds(-1)))


async def _job_row(client: AppClient, token: str) -> Job:
    [job] = await jobs_of(client.services, token)
    return job


async def _taken_over(client: AppClient) -> tuple[Uploaded, ClaimedJob, ClaimedJob]:
    created = await _queued(client)
    first = await _claim(client, "first")
    await _expire_lease(client, first)
    second = await _claim(client, "second")
    return created, first, second


# Claims and leases


async def test_claim_records_the_attempt_the_lease_and_the_blob_id(
    idle_client: AppClient,
) -> None:
    created = await _queued(idle_client)
    job = await _claim(idle_client, "owner-a")
    row = await _job_row(idle_client, created.token)
    assert (row.state, row.attempts, row.lease_owner) == ("running", 1, "owner-a")
    assert row.attempt_blob_id == job.blob_id
    assert job.attempt == 1
    assert await is_future(idle_client.services, Job.lease_expires_at, Job.id == job.id)


async def test_claim_carries_the_size_the_api_recorded(idle_client: AppClient) -> None:
    await _queued(idle_client)
    job = await _claim(idle_client, "owner-a")
    assert job.size == len(DATA)


async def test_second_claim_finds_nothing_while_the_lease_is_live(idle_client: AppClient) -> None:
    await _queued(idle_client)
    await _claim(idle_client, "owner-a")
    assert await queue.claim(idle_client.services, "owner-b") is None


async def test_a_claim_tells_whether_another_job_was_waiting(idle_client: AppClient) -> None:
    await _queued(idle_client)
    await _queued(idle_client)
    assert (await _claim(idle_client, "owner-a")).more
    assert not (await _claim(idle_client, "owner-a")).more


async def test_a_worker_seals_a_backlog_without_a_wake_up_per_job(
    idle_client: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Jobs queued before the worker starts: only `more` can take it past the first one,
    # since the poll would come after the test's wait.
    monkeypatch.setattr("worker.runner.IDLE_POLL_SECONDS", 3600.0)
    backlog = [await _queued(idle_client) for _ in range(3)]
    links = [await link_row(idle_client.services, created.token) for created in backlog]
    ids = [link.id for link in links if link is not None]
    assert await settled_by_a_worker(idle_client.services, ids, 60) == ["ready"] * len(links)


async def test_expired_lease_is_claimed_by_another_owner_as_the_next_attempt(
    idle_client: AppClient,
) -> None:
    created, first, second = await _taken_over(idle_client)
    row = await _job_row(idle_client, created.token)
    assert (second.attempt, row.attempts, row.lease_owner) == (2, 2, "second")
    assert second.blob_id != first.blob_id
    assert second.previous_blob_id == first.blob_id


async def test_holder_can_renew_its_lease(idle_client: AppClient) -> None:
    await _queued(idle_client)
    job = await _claim(idle_client, "owner-a")
    await update_job(idle_client.services, job.id, lease_expires_at=db_now_plus(seconds(1)))
    assert await queue.renew(idle_client.services, job)
    assert await is_future(idle_client.services, Job.lease_expires_at, Job.id == job.id, by=30)


# Fencing


async def test_first_owner_cannot_renew_after_another_took_over(idle_client: AppClient) -> None:
    _, first, _ = await _taken_over(idle_client)
    assert not await queue.renew(idle_client.services, first)


async def test_first_owner_cannot_finish_after_another_took_over(
    idle_client: AppClient,
) -> None:
    created = await _queued(idle_client)
    first = await _claim(idle_client, "first")
    sealed = await seal.seal_attempt(idle_client.services, first)
    await _expire_lease(idle_client, first)
    second = await _claim(idle_client, "second")
    assert not await queue.finish(idle_client.services, first, sealed)
    row = await link_row(idle_client.services, created.token)
    assert row is not None
    assert (row.state, row.blob_id) == ("pending", None)
    assert (await _job_row(idle_client, created.token)).lease_owner == "second"
    assert await queue.finish(
        idle_client.services, second, await seal.seal_attempt(idle_client.services, second)
    )
    assert (await idle_client.get(f"/d/{created.token}")).content == DATA


async def test_first_owner_cannot_retry_or_fail_after_another_took_over(
    idle_client: AppClient,
) -> None:
    created, first, _ = await _taken_over(idle_client)
    assert not await queue.retry_later(idle_client.services, first, "late")
    assert not await queue.fail(idle_client.services, first, "late")
    row = await _job_row(idle_client, created.token)
    assert (row.state, row.lease_owner, row.last_error) == ("running", "second", None)
    assert (await idle_client.get(f"/d/{created.token}")).status_code == 503


async def test_holder_seals_and_finishes_and_the_link_becomes_ready(
    idle_client: AppClient,
) -> None:
    created = await _queued(idle_client)
    job = await _claim(idle_client, "owner-a")
    assert await queue.finish(
        idle_client.services, job, await seal.seal_attempt(idle_client.services, job)
    )
    assert await jobs_of(idle_client.services, created.token) == []
    assert (await idle_client.get(f"/d/{created.token}")).content == DATA


async def test_a_link_without_a_digest_gets_the_one_the_worker_computes(
    idle_client: AppClient,
) -> None:
    # An upload received over several requests (tus) or never seen (direct) has no SHA-256.
    created = await _queued(idle_client)
    await update_link(idle_client.services, created.token, sha256=None)
    job = await _claim(idle_client, "owner-a")
    assert job.needs_digest
    blob = await seal.seal_attempt(idle_client.services, job)
    assert blob.sha256 == hashlib.sha256(DATA).digest()
    assert await queue.finish(idle_client.services, job, blob)
    row = await link_row(idle_client.services, created.token)
    assert row is not None
    assert row.sha256 == hashlib.sha256(DATA).digest()


async def test_a_link_with_a_digest_is_not_hashed_again(idle_client: AppClient) -> None:
    await _queued(idle_client)
    job = await _claim(idle_client, "owner-a")
    assert not job.needs_digest
    assert (await seal.seal_attempt(idle_client.services, job)).sha256 is None


async def test_finish_is_refused_once_the_link_was_deleted(idle_client: AppClient) -> None:
    created = await _queued(idle_client)
    job = await _claim(idle_client, "owner-a")
    sealed = await seal.seal_attempt(idle_client.services, job)
    deleted = await idle_client.delete(
        f"/api/v1/links/{created.token}",
        headers={"Authorization": f"Bearer {created.manage_token}"},
    )
    assert deleted.status_code == 204
    assert not await queue.finish(idle_client.services, job, sealed)
    assert (await idle_client.get(f"/d/{created.token}")).status_code == 410


# Graceful release


async def test_a_released_job_is_claimed_again_as_the_same_attempt(
    idle_client: AppClient,
) -> None:
    created = await _queued(idle_client)
    job = await _claim(idle_client, "stopping")
    assert await queue.release(idle_client.services, job)
    row = await _job_row(idle_client, created.token)
    assert (row.state, row.attempts, row.lease_owner) == ("queued", 0, None)
    again = await _claim(idle_client, "next")
    assert again.attempt == 1
    assert again.previous_blob_id == job.blob_id


async def test_a_job_released_as_often_as_it_may_be_attempted_is_still_claimable(
    idle_client: AppClient,
) -> None:
    created = await _queued(idle_client)
    for stop in range(idle_client.services.settings.job_max_attempts):
        job = await _claim(idle_client, f"stopping-{stop}")
        assert await queue.release(idle_client.services, job)
    last = await _claim(idle_client, "last")
    assert await queue.finish(
        idle_client.services, last, await seal.seal_attempt(idle_client.services, last)
    )
    assert (await idle_client.get(f"/d/{created.token}")).content == DATA


# Retries and failure


async def test_retry_later_puts_the_job_back_with_a_backoff(idle_client: AppClient) -> None:
    created = await _queued(idle_client)
    job = await _claim(idle_client, "owner-a")
    assert await queue.retry_later(idle_client.services, job, "storage hiccup")
    row = await _job_row(idle_client, created.token)
    assert (row.state, row.lease_owner, row.last_error) == ("queued", None, "storage hiccup")
    assert await is_future(idle_client.services, Job.run_after, Job.id == job.id)
    assert await queue.claim(idle_client.services, "owner-b") is None


async def test_job_is_claimed_again_once_its_backoff_has_passed(idle_client: AppClient) -> None:
    await _queued(idle_client)
    job = await _claim(idle_client, "owner-a")
    await queue.retry_later(idle_client.services, job, "storage hiccup")
    await update_job(idle_client.services, job.id, run_after=db_now_plus(seconds(-1)))
    again = await _claim(idle_client, "owner-b")
    assert again.attempt == 2


async def _exhausted(client: AppClient) -> Uploaded:
    """A job whose two attempts both died with their leases."""
    created = await _queued(client)
    for owner in ("first", "second"):
        await _expire_lease(client, await _claim(client, owner))
    assert await queue.claim(client.services, "third") is None
    return created


async def test_after_the_last_attempt_the_janitor_fails_the_job_and_the_link_answers_410(
    two_attempts_client: AppClient,
) -> None:
    services = two_attempts_client.services
    created = await _exhausted(two_attempts_client)
    report = await janitor.run_once(services)
    assert report.jobs_failed == 1
    assert staging_files(services.settings) == []
    assert (await two_attempts_client.get(f"/d/{created.token}")).status_code == 410


async def test_failing_an_exhausted_job_destroys_its_staging_key(
    two_attempts_client: AppClient,
) -> None:
    services = two_attempts_client.services
    created = await _exhausted(two_attempts_client)
    assert await janitor.fail_exhausted_jobs(services) == 1
    row = await _job_row(two_attempts_client, created.token)
    assert (row.state, row.staging_key_id, row.staging_wrapped_key) == ("failed", None, None)
    link = await link_row(services, created.token)
    assert link is not None
    assert link.state == "failed"


async def test_an_exhausted_job_whose_late_worker_renewed_its_lease_is_not_failed(
    two_attempts_client: AppClient,
) -> None:
    services = two_attempts_client.services
    created = await _queued(two_attempts_client)
    await _expire_lease(two_attempts_client, await _claim(two_attempts_client, "first"))
    late = await _claim(two_attempts_client, "late")
    await _expire_lease(two_attempts_client, late)
    [seen] = await queue.exhausted(services, 10)
    assert await queue.renew(services, late)
    assert not await queue.fail_exhausted(services, seen, "too late")
    link = await link_row(services, created.token)
    assert link is not None
    assert link.state == "pending"
    assert (await _job_row(two_attempts_client, created.token)).lease_owner == "late"


async def test_corrupted_staging_object_fails_the_job_for_good(
    idle_client: AppClient, idle_settings: Settings
) -> None:
    created = await _queued(idle_client)
    job = await _job_row(idle_client, created.token)
    staged = objects_root(idle_settings) / "staging" / job.id
    corrupted = bytearray(staged.read_bytes())
    corrupted[100] ^= 0x01
    staged.write_bytes(corrupted)
    link = await link_row(idle_client.services, created.token)
    assert link is not None
    assert await settled_by_a_worker(idle_client.services, [link.id]) == ["failed"]
    row = await _job_row(idle_client, created.token)
    assert (row.state, row.attempts) == ("failed", 1)
    assert not staged.exists()
    assert (await idle_client.get(f"/d/{created.token}")).status_code == 410


async def test_a_failed_job_keeps_its_error_after_the_janitor_purges_its_link(
    idle_client: AppClient, idle_settings: Settings
) -> None:
    created = await _queued(idle_client)
    job = await _job_row(idle_client, created.token)
    staged = objects_root(idle_settings) / "staging" / job.id
    staged.write_bytes(staged.read_bytes()[:20])
    link = await link_row(idle_client.services, created.token)
    assert link is not None
    assert await settled_by_a_worker(idle_client.services, [link.id]) == ["failed"]
    await janitor.run_once(idle_client.services)
    row = await _job_row(idle_client, created.token)
    assert row.state == "failed"
    assert row.last_error
