"""The janitor: purges what has expired or been deleted, sweeps what no row knows, and
releases the stored-bytes reservations of uploads whose process died.

Every worker runs it; it is safe to run twice at once and to kill at any point, because
each step is a conditional write whose row count says who acts, and deleting an object
twice is harmless. Purging deletes the `blobs` row first (the wrapped key is gone, the
blob is unreadable: crypto-shredding) and the object after. The link row stays as a
tombstone answering 410 for a while.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, delete, exists, or_, select, update

from app.db.clock import db_now, db_now_plus, seconds
from app.db.models import (
    ENDED_LINK_STATES,
    HELD_JOB_STATES,
    LIVE_JOB_STATES,
    Blob,
    Job,
    Link,
    LinkState,
    TusState,
    TusUpload,
)
from app.db.session import transaction
from app.domain import arriving, direct_uploads, resumable, staged, storage_cap
from app.services import Services
from app.storage.object_keys import (
    BLOBS_PREFIX,
    STAGING_PREFIX,
    blob_id_of,
    blob_object_key,
    job_id_of,
)
from worker import queue

log = logging.getLogger("sealdrop.janitor")

BATCH = 100
NO_ATTEMPT_LEFT = "no attempt left: the last one stopped without finishing"


@dataclass
class Report:
    """What one janitor pass did (for logs and tests)."""

    jobs_failed: int = 0
    uploads_cancelled: int = 0
    resumable_expired: int = 0
    links_purged: int = 0
    tombstones_removed: int = 0
    objects_swept: list[str] = field(default_factory=list)
    uploads_aborted: int = 0
    direct_uploads_expired: int = 0
    reservations_released: int = 0
    stored_bytes_drift: int = 0


async def run_once(services: Services) -> Report:
    """One full pass; returns what it did."""
    report = Report()
    report.jobs_failed = await fail_exhausted_jobs(services)
    report.uploads_cancelled = await cancel_dead_uploads(services)
    report.resumable_expired = await resumable.expire(services)
    report.links_purged = await purge_links(services)
    report.tombstones_removed = await remove_old_tombstones(services)
    report.objects_swept = await sweep_orphans(services)
    report.direct_uploads_expired = await direct_uploads.expire_idle(services)
    report.uploads_aborted = await abort_stale_uploads(services)
    report.reservations_released = await storage_cap.release_abandoned(services)
    report.stored_bytes_drift = await storage_cap.recount(services)
    done = (
        report.jobs_failed,
        report.uploads_cancelled,
        report.resumable_expired,
        report.direct_uploads_expired,
        report.links_purged,
        report.objects_swept,
    )
    if any((*done, report.reservations_released, report.stored_bytes_drift)):
        log.info("janitor: %s", report)
    return report


async def fail_exhausted_jobs(services: Services) -> int:
    """Jobs with every attempt spent and none running (the last one's lease ran out, or
    it was handed back as the last): link and job become `failed`, their objects go."""
    failed = 0
    for job in await queue.exhausted(services, BATCH):
        if not await queue.fail_exhausted(services, job, NO_ATTEMPT_LEFT):
            continue
        failed += 1
        await _delete_attempt(services, job.attempt_blob_id)
        await staged.delete_staged(services, job.id, job.staging_pieces)
        await services.notifier.link_settled(job.link_id)
    return failed


async def cancel_dead_uploads(services: Services) -> int:
    """Uploads sealed as they arrive whose body stopped coming with their API process (it
    would have ended them within the longest upload): their rows and staged bytes (its
    one object, or every piece) go, as for any failed upload. A worker following one
    stops at its next check."""
    cancelled = 0
    for link_id, job_id, pieces in await arriving.dead(services, BATCH):
        if await arriving.cancel(services, link_id, job_id, only_arriving=True):
            cancelled += 1
            # An upload staged as pieces: every piece under the job's id goes, those
            # committed after `dead` read the row and the one left unfinished too.
            await staged.delete_staged(services, job_id, pieces)
    return cancelled


async def _delete_attempt(services: Services, blob_id: str | None) -> None:
    if blob_id is not None:
        await services.blobs.discard(blob_object_key(blob_id))


def _needs_purge(grace: float) -> object:
    past_grace = db_now_plus(seconds(-grace))
    used_up = and_(Link.max_downloads.is_not(None), Link.download_count >= Link.max_downloads)
    return and_(
        Link.purged_at.is_(None),
        or_(
            Link.expires_at < past_grace,
            Link.state.in_(ENDED_LINK_STATES),
            and_(used_up, Link.state == LinkState.READY),
        ),
    )


async def purge_links(services: Services) -> int:
    """Expired, used-up, deleted and failed links lose their blob and file fields."""
    grace = services.settings.purge_grace_seconds
    async with services.sessions() as session:
        rows = (
            await session.execute(
                select(Link.id, Link.blob_id).where(_needs_purge(grace)).limit(BATCH)  # type: ignore[arg-type]
            )
        ).all()
    purged = 0
    for row in rows:
        if await _purge_one(services, row.id, row.blob_id):
            purged += 1
    return purged


async def _purge_one(services: Services, link_id: str, blob_id: str | None) -> bool:
    async with transaction(services.sessions, immediate=True) as session:
        result = await session.execute(
            update(Link)
            .where(Link.id == link_id, Link.purged_at.is_(None))
            .values(
                state=LinkState.DELETED,
                filename=None,
                content_type=None,
                size=None,
                sha256=None,
                password_hash=None,
                blob_id=None,
                purged_at=db_now(),
            )
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return False
        # A failed job stays (its staging key is already gone) so that operators can read
        # its last_error until the tombstone goes; live jobs are cancelled.
        jobs = (
            await session.execute(
                delete(Job)
                .where(Job.link_id == link_id, Job.state.in_(LIVE_JOB_STATES))
                .returning(Job.id, Job.attempt_blob_id, Job.staging_pieces)
            )
        ).all()
        for job in jobs:
            await storage_cap.release_job(session, job.id)
        if blob_id is not None:
            sealed = await session.scalar(
                delete(Blob).where(Blob.id == blob_id).returning(Blob.ciphertext_size)
            )
            await storage_cap.add(session, -(sealed or 0))
    # The rows are gone (keys shredded); now the objects.
    if blob_id is not None:
        await services.blobs.delete(blob_object_key(blob_id))
    for job in jobs:
        await _delete_attempt(services, job.attempt_blob_id)
        await staged.delete_staged(services, job.id, job.staging_pieces)
    return True


async def remove_old_tombstones(services: Services) -> int:
    """Tombstones older than the configured days go; their tokens then answer 404."""
    cutoff = db_now_plus(seconds(-services.settings.tombstone_days * 86400))
    async with transaction(services.sessions, immediate=True) as session:
        result = await session.execute(
            delete(Link).where(Link.purged_at.is_not(None), Link.purged_at < cutoff)
        )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _old(modified: datetime, max_age: float) -> bool:
    # Object timestamps come from the store, not the database; a generous age makes the
    # comparison with this pod's clock harmless.
    return modified < datetime.now(UTC) - timedelta(seconds=max_age)


async def sweep_orphans(services: Services) -> list[str]:
    """Delete staging and blob objects that no row knows, once they are old enough."""
    max_age = services.settings.sweep_age_seconds
    swept: list[str] = []
    async for info in services.staging.list(STAGING_PREFIX):
        if _old(info.modified, max_age) and not await _staging_object_known(services, info.key):
            await services.staging.delete(info.key)
            swept.append(info.key)
    async for info in services.blobs.list(BLOBS_PREFIX):
        if _old(info.modified, max_age) and not await _blob_object_known(services, info.key):
            await services.blobs.delete(info.key)
            swept.append(info.key)
    return swept


async def _staging_object_known(services: Services, key: str) -> bool:
    job_id = job_id_of(key)
    if job_id is None:
        return False
    # A direct upload's object is written by its client and named by its row.
    return await _job_uses_staging(services, job_id) or await direct_uploads.known_job(
        services, job_id
    )


async def _blob_object_known(services: Services, key: str) -> bool:
    blob_id = blob_id_of(key)
    return blob_id is not None and await _blob_known(services, blob_id)


async def _job_uses_staging(services: Services, job_id: str) -> bool:
    async with services.sessions() as session:
        found = await session.scalar(
            select(
                or_(
                    exists().where(Job.id == job_id, Job.state.in_(LIVE_JOB_STATES)),
                    # An open resumable upload's pieces (it expires before the sweep age,
                    # and removes them itself then).
                    exists().where(TusUpload.id == job_id, TusUpload.state == TusState.OPEN),
                )
            )
        )
    return bool(found)


async def _blob_known(services: Services, blob_id: str) -> bool:
    async with services.sessions() as session:
        found = await session.scalar(
            select(
                or_(
                    exists().where(Blob.id == blob_id),
                    exists().where(Job.attempt_blob_id == blob_id, Job.state.in_(HELD_JOB_STATES)),
                )
            )
        )
    return bool(found)


async def abort_stale_uploads(services: Services) -> int:
    """Abort unfinished writes (multipart uploads, temporary files) that no row knows,
    older than the sweep age.

    An upload's write has no row until it is complete, so the sweep age is longer than the
    longest upload (the API ends any that lasts longer). A job's write has one, however
    long the job runs: its running row names the blob it writes.
    """
    max_age = services.settings.sweep_age_seconds
    aborted = 0
    stores = {id(services.staging): services.staging, id(services.blobs): services.blobs}
    for store in stores.values():
        for prefix in (STAGING_PREFIX, BLOBS_PREFIX):
            async for pending in store.list_pending_uploads(prefix):
                # Only a job's write is known by a row (its running attempt's blob id).
                old = _old(pending.started, max_age)
                if not old or await _write_known(services, pending.key):
                    continue
                await store.abort_upload(pending.key, pending.upload_id)
                aborted += 1
    return aborted


async def _write_known(services: Services, key: str) -> bool:
    """Whether a row owns this unfinished write: a running job's blob, or a direct upload
    (which `direct_uploads.expire_idle` removes when it goes idle)."""
    job_id = job_id_of(key)
    if job_id is not None:
        return await direct_uploads.known_job(services, job_id)
    return await _blob_object_known(services, key)
