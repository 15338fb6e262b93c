"""The jobs table as a queue: claim with a lease, renew, and fenced finish, retry, release
or fail.

Every write a worker makes after claiming is one statement conditioned on the job id, the
attempt number and the lease owner, with its row count checked (DESIGN §1, Leases and
fencing): a worker whose lease was taken over can change nothing. Link rows are locked
before job rows everywhere, and link changes are conditioned on `state = 'pending'`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, case, delete, func, insert, or_, select, update

from app.crypto.tokens import new_id
from app.db.clock import as_utc, db_now, db_now_plus, seconds
from app.db.models import HELD_JOB_STATES, Blob, Job, JobState, Link, LinkState
from app.db.session import transaction
from app.domain import storage_cap
from app.infra import metrics
from app.services import Services


class LeaseLost(Exception):
    """Another worker owns this job now, or it is gone (an aborted upload): stop without
    writing anything."""


class _Refused(Exception):
    """A fenced write found its condition false: roll the transaction back."""


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """One attempt at a job, as this worker holds it."""

    id: str
    link_id: str
    attempt: int
    owner: str
    blob_id: str
    staging_key_id: str
    staging_wrapped_key: bytes
    size: int
    previous_blob_id: str | None
    # The link has no SHA-256 yet (the API never saw the plaintext, or saw it across
    # several requests): the worker computes it while resealing.
    needs_digest: bool = False
    # The staged pieces of a resumable upload or of a PUT into S3 staging, in order (JSON,
    # `app.storage.object_keys`; for a body still arriving, those recorded at the claim);
    # None: one staged object.
    staging_pieces: str | None = None
    # Another job was claimable when this one was taken: claim again without a wake-up.
    more: bool = False
    # The upload's body was still arriving at the claim (state `following`): the attempt
    # reads the staging object as it grows, and finishes only once the API has staged it
    # all (the job then `running`).
    following: bool = False


@dataclass(frozen=True, slots=True)
class SealedBlob:
    """What a finished attempt wrote: the `blobs` row's values."""

    key_id: str
    wrapped_key: bytes
    header: bytes
    segment_size: int
    ciphertext_size: int
    # The plaintext's SHA-256 when the worker computed it (`ClaimedJob.needs_digest`).
    sha256: bytes | None = None


@dataclass(frozen=True, slots=True)
class ExhaustedJob:
    """A job with every attempt spent and none running: only failing it is left."""

    id: str
    link_id: str
    attempts: int
    attempt_blob_id: str | None
    staging_pieces: str | None = None


_UNHELD = (JobState.QUEUED, JobState.RECEIVING)


def _abandoned() -> ColumnElement[bool]:
    return and_(Job.state.in_(HELD_JOB_STATES), Job.lease_expires_at < db_now())


def _claimable(max_attempts: int, *, arriving: bool = True) -> ColumnElement[bool]:
    """Runnable now; jobs whose body is still arriving only if `arriving`."""
    if arriving:
        waiting = and_(Job.state.in_(_UNHELD), Job.run_after <= db_now())
        dead = _abandoned()
    else:
        waiting = and_(Job.state == JobState.QUEUED, Job.run_after <= db_now())
        dead = and_(Job.state == JobState.RUNNING, Job.lease_expires_at < db_now())
    return and_(or_(waiting, dead), Job.attempts < max_attempts)


def _exhausted(max_attempts: int) -> ColumnElement[bool]:
    # What no claim will take again (`_claimable`'s complement among live jobs): a queued
    # job waits for nothing once its attempts are spent, whatever its `run_after`.
    return and_(or_(Job.state.in_(_UNHELD), _abandoned()), Job.attempts >= max_attempts)


def _fenced(job: ClaimedJob) -> ColumnElement[bool]:
    return and_(
        Job.id == job.id,
        Job.attempts == job.attempt,
        Job.lease_owner == job.owner,
        Job.state.in_(HELD_JOB_STATES),
    )


def _unheld_state() -> ColumnElement[str]:
    """The state a held job goes back to: `receiving` while its body arrives."""
    return case(
        (Job.state == JobState.FOLLOWING, JobState.RECEIVING.value),
        else_=JobState.QUEUED.value,
    )


async def claim(services: Services, owner: str, *, arriving: bool = True) -> ClaimedJob | None:
    """Take the oldest runnable job (or one whose lease ran out), if any, and tell whether
    another one was runnable too (`ClaimedJob.more`). Jobs whose body is still arriving
    are taken only if `arriving`."""
    settings = services.settings
    claimable = _claimable(settings.job_max_attempts, arriving=arriving)
    async with transaction(services.sessions, immediate=True) as session:
        candidate = (
            await session.execute(
                select(
                    Job.id,
                    Job.attempts,
                    Job.attempt_blob_id,
                    Job.run_after,
                    Job.state,
                    db_now().label("now"),
                )
                .where(claimable)
                .order_by(Job.run_after)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
        ).first()
        if candidate is None:
            return None
        blob_id = new_id()
        following = candidate.state in (JobState.RECEIVING, JobState.FOLLOWING)
        claimed = (
            await session.execute(
                update(Job)
                .where(
                    Job.id == candidate.id,
                    Job.attempts == candidate.attempts,
                    Job.state == candidate.state,
                )
                .values(
                    state=JobState.FOLLOWING if following else JobState.RUNNING,
                    attempts=Job.attempts + 1,
                    lease_owner=owner,
                    lease_expires_at=db_now_plus(seconds(settings.job_lease_seconds)),
                    attempt_blob_id=blob_id,
                    attempt_upload_id=None,
                    updated_at=db_now(),
                )
                .returning(
                    Job.attempts,
                    Job.link_id,
                    Job.staging_key_id,
                    Job.staging_wrapped_key,
                    Job.staging_pieces,
                )
            )
        ).first()
        if claimed is None:
            return None
        link = (
            await session.execute(select(Link.size, Link.sha256).where(Link.id == claimed.link_id))
        ).one()
        # Cheaper than a second claim that finds nothing, which is what follows most jobs.
        more = (await session.execute(select(Job.id).where(claimable).limit(1))).first() is not None
    waited = as_utc(candidate.now) - as_utc(candidate.run_after)
    metrics.QUEUE_WAIT_SECONDS.observe(max(0.0, waited.total_seconds()))
    return ClaimedJob(
        id=candidate.id,
        link_id=claimed.link_id,
        attempt=claimed.attempts,
        owner=owner,
        blob_id=blob_id,
        staging_key_id=claimed.staging_key_id or "",
        staging_wrapped_key=claimed.staging_wrapped_key or b"",
        size=link.size or 0,
        previous_blob_id=candidate.attempt_blob_id,
        # A body still arriving is hashed by the API as it arrives.
        needs_digest=link.sha256 is None and not following,
        staging_pieces=claimed.staging_pieces,
        more=more,
        following=following,
    )


async def depth(services: Services) -> int:
    """How many jobs are queued (runnable now or after a back-off)."""
    async with services.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(Job).where(Job.state == JobState.QUEUED)
        )
    return int(count or 0)


async def record_upload_id(services: Services, job: ClaimedJob, upload_id: str) -> bool:
    """Record the attempt's unfinished write in its row (for operators); False means the
    lease was lost."""
    return await _fenced_update(services, job, attempt_upload_id=upload_id)


async def renew(services: Services, job: ClaimedJob) -> bool:
    """Extend the lease; False means it was lost and the attempt must stop at once."""
    lease = seconds(services.settings.job_lease_seconds)
    return await _fenced_update(services, job, lease_expires_at=db_now_plus(lease))


async def release(services: Services, job: ClaimedJob) -> bool:
    """Give the job back at once (graceful shutdown): another worker may take it now.

    The attempt is handed back, not spent: the claim's increment is undone in the same
    fenced UPDATE, so workers stopping during a seal can never use up a job's attempts
    (the next claim is this attempt again). The attempt number alone may therefore
    recur, but never with this owner: a worker's name is its own, and it releases only
    while stopping, once the attempt has ended, and claims nothing afterwards.
    """
    return await _fenced_update(
        services,
        job,
        state=_unheld_state(),
        attempts=Job.attempts - 1,
        lease_owner=None,
        lease_expires_at=None,
        run_after=db_now(),
    )


async def held_state(services: Services, job: ClaimedJob) -> JobState | None:
    """The job's state if this attempt still holds it (`following` while the body
    arrives, `running` once it is staged); None if the lease was lost or the job is gone."""
    async with services.sessions() as session:
        return await session.scalar(select(Job.state).where(_fenced(job)))


async def held_pieces(services: Services, job: ClaimedJob) -> tuple[JobState, str | None] | None:
    """Like `held_state`, with the pieces recorded so far (`Job.staging_pieces`), read
    together: once the state is `running`, every piece of the body is in the list."""
    async with services.sessions() as session:
        row = (
            await session.execute(select(Job.state, Job.staging_pieces).where(_fenced(job)))
        ).first()
    return None if row is None else (row.state, row.staging_pieces)


async def _fenced_update(services: Services, job: ClaimedJob, **values: object) -> bool:
    async with transaction(services.sessions) as session:
        result = await session.execute(
            update(Job).where(_fenced(job)).values(updated_at=db_now(), **values)
        )
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]


def _digest(blob: SealedBlob) -> dict[str, bytes]:
    return {} if blob.sha256 is None else {"sha256": blob.sha256}


async def finish(services: Services, job: ClaimedJob, blob: SealedBlob) -> bool:
    """Commit the attempt: blobs row, link ready, job row gone; all or nothing.

    False when the link is no longer pending (deleted meanwhile) or the lease was lost; then
    nothing was written and the attempt's object is left for whoever cleans it.
    """
    try:
        async with transaction(services.sessions, immediate=True) as session:
            await session.execute(
                insert(Blob).values(
                    id=job.blob_id,
                    key_id=blob.key_id,
                    wrapped_key=blob.wrapped_key,
                    header=blob.header,
                    segment_size=blob.segment_size,
                    ciphertext_size=blob.ciphertext_size,
                )
            )
            link = await session.execute(
                update(Link)
                .where(Link.id == job.link_id, Link.state == LinkState.PENDING)
                .values(state=LinkState.READY, blob_id=job.blob_id, **_digest(blob))
            )
            # Only once the whole body is staged (`running`), never while it arrives.
            done = await session.execute(
                delete(Job).where(_fenced(job), Job.state == JobState.RUNNING)
            )
            if link.rowcount != 1 or done.rowcount != 1:  # type: ignore[attr-defined]
                raise _Refused
            # The staged copy is uncounted here; its delete follows the commit at once.
            await storage_cap.release_job(session, job.id, blob_bytes=blob.ciphertext_size)
    except _Refused:
        return False
    return True


async def retry_later(services: Services, job: ClaimedJob, error: str) -> bool:
    """Put the job back in the queue with exponential backoff."""
    backoff = services.settings.job_retry_base_seconds * 2 ** (job.attempt - 1)
    return await _fenced_update(
        services,
        job,
        state=_unheld_state(),
        lease_owner=None,
        lease_expires_at=None,
        run_after=db_now_plus(seconds(min(backoff, 600))),
        last_error=error[:500],
    )


async def fail(services: Services, job: ClaimedJob, error: str) -> bool:
    """Give up on the attempt held: the link and the job become `failed`."""
    return await _fail(services, job.link_id, _fenced(job), error)


async def exhausted(services: Services, limit: int) -> list[ExhaustedJob]:
    """Up to `limit` jobs with every attempt spent and none running (the janitor fails them)."""
    async with services.sessions() as session:
        rows = (
            await session.execute(
                select(
                    Job.id,
                    Job.link_id,
                    Job.attempts,
                    Job.attempt_blob_id,
                    Job.staging_pieces,
                )
                .where(_exhausted(services.settings.job_max_attempts))
                .limit(limit)
            )
        ).all()
    return [ExhaustedJob(*row) for row in rows]


async def fail_exhausted(services: Services, job: ExhaustedJob, error: str) -> bool:
    """Fail `job` if it is still as `exhausted` saw it: attempts spent, none running.

    False when it changed meanwhile (another janitor failed it, its link was deleted, or
    a late worker renewed its lease and may still finish).
    """
    still = and_(
        Job.id == job.id,
        Job.attempts == job.attempts,
        _exhausted(services.settings.job_max_attempts),
    )
    return await _fail(services, job.link_id, still, error)


async def _fail(
    services: Services, link_id: str, job_condition: ColumnElement[bool], error: str
) -> bool:
    """The one way a job fails, all or nothing: the link (if still pending) and the job
    become `failed`, the lease is cleared, the staging key destroyed and the job's
    stored bytes uncounted."""
    try:
        async with transaction(services.sessions, immediate=True) as session:
            await session.execute(
                update(Link)
                .where(Link.id == link_id, Link.state == LinkState.PENDING)
                .values(state=LinkState.FAILED)
            )
            failed = (
                await session.execute(
                    update(Job)
                    .where(job_condition)
                    .values(
                        state=JobState.FAILED,
                        lease_owner=None,
                        lease_expires_at=None,
                        staging_key_id=None,
                        staging_wrapped_key=None,
                        last_error=error[:500],
                        updated_at=db_now(),
                    )
                    .returning(Job.id)
                )
            ).all()
            if len(failed) != 1:
                raise _Refused
            # Its staged copy is deleted after the commit; it is uncounted with the job.
            await storage_cap.release_job(session, failed[0].id)
    except _Refused:
        return False
    return True
