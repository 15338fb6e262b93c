"""The janitor, one pass at a time (`worker.janitor.run_once`), against the real app.

Time passes in the database (expiry, purge date) or in file times (`os.utime`) for
objects; the janitor must purge what is over, sweep what no row knows, and never touch an
object a row still uses.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from sqlalchemy import select

from app.db.clock import db_now_plus, seconds
from app.db.models import Blob
from app.settings import Settings
from app.storage.base import ObjectStore
from tests.conftest import AppClient
from tests.support.asgi import Uploaded, upload
from tests.support.datadir import blob_files, objects_root, staging_files
from tests.support.jobs import seal_queued
from tests.support.rows import jobs_of, link_row, update_job, update_link
from worker import janitor, queue

DAY = 86400


async def _blob_row(client: AppClient, blob_id: str) -> Blob | None:
    async with client.services.sessions() as session:
        row: Blob | None = await session.scalar(select(Blob).where(Blob.id == blob_id))
        return row


async def _ready(client: AppClient, **headers: str) -> tuple[Uploaded, str]:
    created = await upload(client, b"bytes to purge", headers=headers)
    row = await link_row(client.services, created.token)
    assert row is not None
    assert row.blob_id is not None
    return created, row.blob_id


def _backdate(settings: Settings, path: Path) -> None:
    """Make a file look older than the janitor's sweep age (an hour past it)."""
    then = time.time() - settings.sweep_age_seconds - 3600
    os.utime(path, (then, then))


def _blob_path(settings: Settings, blob_id: str) -> Path:
    return objects_root(settings) / "blobs" / blob_id


async def _write(store: ObjectStore, key: str) -> None:
    writer = await store.open_writer(key)
    await writer.write(b"no row knows me")
    await writer.commit()


async def _purge_past_grace(client: AppClient, token: str) -> None:
    grace = client.services.settings.purge_grace_seconds
    await update_link(client.services, token, expires_at=db_now_plus(seconds(-grace - 5)))


# Purging links


async def test_expired_link_past_grace_loses_its_blob_row_and_object(
    client: AppClient, settings: Settings
) -> None:
    created, blob_id = await _ready(client)
    assert _blob_path(settings, blob_id).exists()
    await _purge_past_grace(client, created.token)
    report = await janitor.run_once(client.services)
    assert report.links_purged == 1
    assert await _blob_row(client, blob_id) is None
    assert not _blob_path(settings, blob_id).exists()
    assert (await client.get(f"/d/{created.token}")).status_code == 410


async def test_purged_link_keeps_a_tombstone_with_its_file_fields_cleared(
    client: AppClient,
) -> None:
    created, _ = await _ready(client, **{"Link-Password": "pw"})
    await _purge_past_grace(client, created.token)
    await janitor.run_once(client.services)
    row = await link_row(client.services, created.token)
    assert row is not None
    assert row.purged_at is not None
    cleared = (
        row.filename,
        row.content_type,
        row.size,
        row.sha256,
        row.password_hash,
        row.blob_id,
    )
    assert cleared == (None,) * 6


async def test_expired_link_within_grace_is_not_purged_yet(
    client: AppClient, settings: Settings
) -> None:
    created, blob_id = await _ready(client)
    await update_link(client.services, created.token, expires_at=db_now_plus(seconds(-1)))
    report = await janitor.run_once(client.services)
    assert report.links_purged == 0
    assert _blob_path(settings, blob_id).exists()
    assert (await client.get(f"/d/{created.token}")).status_code == 410


async def test_deleted_link_is_purged(client: AppClient, settings: Settings) -> None:
    created, blob_id = await _ready(client)
    await client.delete(
        f"/api/v1/links/{created.token}",
        headers={"Authorization": f"Bearer {created.manage_token}"},
    )
    await janitor.run_once(client.services)
    assert await _blob_row(client, blob_id) is None
    assert not _blob_path(settings, blob_id).exists()


async def test_used_up_link_is_purged(client: AppClient, settings: Settings) -> None:
    created, blob_id = await _ready(client, **{"Max-Downloads": "1"})
    assert (await client.get(f"/d/{created.token}")).status_code == 200
    await janitor.run_once(client.services)
    assert await _blob_row(client, blob_id) is None
    assert not _blob_path(settings, blob_id).exists()


async def test_live_link_is_not_purged(client: AppClient) -> None:
    created, blob_id = await _ready(client)
    report = await janitor.run_once(client.services)
    assert report.links_purged == 0
    assert await _blob_row(client, blob_id) is not None
    assert (await client.get(f"/d/{created.token}")).content == b"bytes to purge"


# Jobs with no attempt left


async def _spent(client: AppClient) -> tuple[Uploaded, str]:
    """A queued job whose every attempt is spent (left so by releases before they were
    free, or by a lowered SEALDROP_JOB_MAX_ATTEMPTS): no claim will ever take it."""
    created = await upload(client, b"never sealed")
    [job] = await jobs_of(client.services, created.token)
    attempts = client.services.settings.job_max_attempts
    await update_job(client.services, job.id, attempts=attempts, attempt_blob_id="spent-blob")
    assert await queue.claim(client.services, "worker") is None
    return created, job.id


async def test_queued_job_with_no_attempt_left_is_failed_and_its_link_answers_410(
    idle_client: AppClient, idle_settings: Settings
) -> None:
    created, _ = await _spent(idle_client)
    report = await janitor.run_once(idle_client.services)
    assert report.jobs_failed == 1
    assert staging_files(idle_settings) == []
    assert (await idle_client.get(f"/d/{created.token}")).status_code == 410


async def test_failing_a_queued_job_with_no_attempt_left_destroys_its_staging_key(
    idle_client: AppClient,
) -> None:
    created, _ = await _spent(idle_client)
    assert await janitor.fail_exhausted_jobs(idle_client.services) == 1
    [row] = await jobs_of(idle_client.services, created.token)
    assert (row.state, row.staging_key_id, row.staging_wrapped_key) == ("failed", None, None)
    assert row.last_error


async def test_job_failed_by_the_janitor_keeps_no_lease(idle_client: AppClient) -> None:
    created = await upload(idle_client, b"never sealed")
    services = idle_client.services
    for attempt in range(services.settings.job_max_attempts):
        job = await queue.claim(services, f"dies-{attempt}")
        assert job is not None
        await update_job(services, job.id, lease_expires_at=db_now_plus(seconds(-1)))
    assert await janitor.fail_exhausted_jobs(services) == 1
    [row] = await jobs_of(services, created.token)
    assert (row.state, row.lease_owner, row.lease_expires_at) == ("failed", None, None)


# Tombstones


async def test_tombstone_older_than_tombstone_days_is_removed_and_the_token_answers_404(
    client: AppClient,
) -> None:
    created, _ = await _ready(client)
    await _purge_past_grace(client, created.token)
    await janitor.run_once(client.services)
    days = client.services.settings.tombstone_days
    await update_link(
        client.services, created.token, purged_at=db_now_plus(seconds(-days * DAY - 1))
    )
    report = await janitor.run_once(client.services)
    assert report.tombstones_removed == 1
    assert await link_row(client.services, created.token) is None
    assert (await client.get(f"/d/{created.token}")).status_code == 404


async def test_young_tombstone_is_kept_and_answers_410(client: AppClient) -> None:
    created, _ = await _ready(client)
    await _purge_past_grace(client, created.token)
    await janitor.run_once(client.services)
    await update_link(client.services, created.token, purged_at=db_now_plus(seconds(-DAY)))
    report = await janitor.run_once(client.services)
    assert report.tombstones_removed == 0
    assert (await client.get(f"/d/{created.token}")).status_code == 410


# Objects no row knows (apps with no worker: no background janitor pass races the test)


async def test_old_orphan_blob_object_is_swept(
    idle_client: AppClient, idle_settings: Settings
) -> None:
    await _write(idle_client.services.blobs, "blobs/orphan-blob")
    path = _blob_path(idle_settings, "orphan-blob")
    _backdate(idle_settings, path)
    report = await janitor.run_once(idle_client.services)
    assert report.objects_swept == ["blobs/orphan-blob"]
    assert not path.exists()


async def test_orphan_staging_object_older_than_the_max_age_is_swept(
    idle_client: AppClient, idle_settings: Settings
) -> None:
    await _write(idle_client.services.staging, "staging/orphan-job")
    [staged] = staging_files(idle_settings)
    _backdate(idle_settings, staged)
    report = await janitor.run_once(idle_client.services)
    assert report.objects_swept == ["staging/orphan-job"]
    assert staging_files(idle_settings) == []


async def test_young_orphan_object_is_kept(idle_client: AppClient, idle_settings: Settings) -> None:
    await _write(idle_client.services.blobs, "blobs/young-orphan")
    report = await janitor.run_once(idle_client.services)
    assert report.objects_swept == []
    assert _blob_path(idle_settings, "young-orphan").exists()


async def test_stale_temporary_file_of_an_unfinished_write_is_removed(
    idle_client: AppClient, idle_settings: Settings
) -> None:
    writer = await idle_client.services.blobs.open_writer("blobs/crashed-write")
    await writer.write(b"half written" * 100_000)  # past the buffer: it reaches the file
    [temporary] = blob_files(idle_settings)
    _backdate(idle_settings, temporary)
    report = await janitor.run_once(idle_client.services)
    assert report.uploads_aborted == 1
    assert not temporary.exists()
    await writer.abort()


async def test_unfinished_write_of_a_running_job_is_kept_however_old(
    idle_client: AppClient, idle_settings: Settings
) -> None:
    await upload(idle_client, b"being sealed slowly")
    job = await queue.claim(idle_client.services, "slow-worker")
    assert job is not None
    writer = await idle_client.services.blobs.open_writer(f"blobs/{job.blob_id}")
    await writer.write(b"sealed so far" * 100_000)
    [temporary] = blob_files(idle_settings)
    _backdate(idle_settings, temporary)
    report = await janitor.run_once(idle_client.services)
    assert report.uploads_aborted == 0
    assert temporary.exists()
    await writer.abort()


async def test_young_temporary_file_is_kept(
    idle_client: AppClient, idle_settings: Settings
) -> None:
    writer = await idle_client.services.blobs.open_writer("blobs/writing-now")
    await writer.write(b"still writing" * 100_000)
    report = await janitor.run_once(idle_client.services)
    assert report.uploads_aborted == 0
    assert len(blob_files(idle_settings)) == 1
    await writer.abort()


async def test_referenced_blob_is_never_removed(
    idle_client: AppClient, idle_settings: Settings
) -> None:
    services = idle_client.services
    created = await upload(idle_client, b"sealed and kept")
    assert await seal_queued(services) == 1
    [blob] = blob_files(idle_settings)
    _backdate(idle_settings, blob)
    report = await janitor.run_once(services)
    assert report.objects_swept == []
    assert blob.exists()
    assert (await idle_client.get(f"/d/{created.token}")).content == b"sealed and kept"


async def test_staged_object_of_a_queued_job_is_never_removed(
    idle_client: AppClient, idle_settings: Settings
) -> None:
    created = await upload(idle_client, b"waiting to be sealed")
    [staged] = staging_files(idle_settings)
    _backdate(idle_settings, staged)
    report = await janitor.run_once(idle_client.services)
    assert report.objects_swept == []
    assert staged.exists()
    assert (await idle_client.get(f"/d/{created.token}")).status_code == 503
