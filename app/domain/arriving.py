"""The rows of an upload sealed while it arrives: recording its whole body, or cancelling it.

A PUT of a known length, large enough to gain from it, writes its link (`pending`) and
its job (`receiving`) before the body, so that a worker can follow the staging write and
reseal it segment by segment (`worker.follow`). Once the body is staged the API records
it here (the digest on the link, the job `queued` or, if a worker follows it already,
`running`); an upload that fails before that is cancelled: its link and job rows are
deleted, as if it had never begun. Locks are taken link first, then job, as everywhere.

Into S3 staging the body is staged as pieces (`app.domain.piece_staging`): each piece,
once committed, is recorded on the job row (`record_pieces`) for a worker in another
process to reseal while the next one arrives.
"""

from __future__ import annotations

from sqlalchemy import and_, case, delete, select, update

from app.db.clock import db_now, db_now_plus, seconds
from app.db.models import Job, JobState, Link, LinkState
from app.db.session import transaction
from app.domain import storage_cap
from app.errors import Unavailable
from app.services import Services
from app.storage.object_keys import Piece, dump_pieces

ARRIVING_STATES = (JobState.RECEIVING, JobState.FOLLOWING)


class _Refused(Exception):
    """The link or the job is no longer waiting for its body: roll back."""


async def record_pieces(services: Services, job_id: str, pieces: list[Piece]) -> None:
    """Record the pieces committed so far (the last one new) and wake the worker
    following the job.

    Fenced: only while the job still waits for its body and its row lists exactly the
    pieces before the new one (only this upload writes them). Unavailable (503) if the
    job was given up or cancelled meanwhile: the caller cancels the upload.
    """
    async with transaction(services.sessions) as session:
        result = await session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.state.in_(ARRIVING_STATES),
                Job.staging_pieces == dump_pieces(pieces[:-1]),
            )
            .values(staging_pieces=dump_pieces(pieces), updated_at=db_now())
        )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Unavailable(message="the file could not be sealed; please upload it again")
    await services.notifier.pieces_staged(job_id)


async def record_received(services: Services, link_id: str, job_id: str, sha256: bytes) -> None:
    """The whole body is staged: record its digest and let the job finish.

    Unavailable (503) if the job was given up meanwhile (a failed worker attempt, or
    attempts spent): the caller cancels the upload.
    """
    try:
        async with transaction(services.sessions, immediate=True) as session:
            link = await session.execute(
                update(Link)
                .where(Link.id == link_id, Link.state == LinkState.PENDING)
                .values(sha256=sha256)
            )
            job = await session.execute(
                update(Job)
                .where(Job.id == job_id, Job.state.in_(ARRIVING_STATES))
                .values(
                    state=case(
                        (Job.state == JobState.FOLLOWING, JobState.RUNNING.value),
                        else_=JobState.QUEUED.value,
                    ),
                    updated_at=db_now(),
                )
            )
            if link.rowcount != 1 or job.rowcount != 1:  # type: ignore[attr-defined]
                raise _Refused
    except _Refused:
        raise Unavailable(message="the file could not be sealed; please upload it again") from None
    # The worker following the body waits for this on the link's channel; a job that no
    # worker held yet is queued now.
    await services.notifier.link_settled(link_id)
    await services.notifier.job_queued()


async def cancel(
    services: Services, link_id: str, job_id: str, *, only_arriving: bool = False
) -> bool:
    """Delete an unfinished upload's link and job rows, and uncount what its job held.

    With `only_arriving`, only if the job still waits for its body (False otherwise, and
    nothing changes). A worker following it finds the job gone at its next check and
    stops; its fenced writes change nothing.
    """
    condition = Job.id == job_id
    if only_arriving:
        condition = and_(condition, Job.state.in_(ARRIVING_STATES))
    async with transaction(services.sessions, immediate=True) as session:
        await session.execute(select(Link.id).where(Link.id == link_id).with_for_update())
        gone = (
            (await session.execute(delete(Job).where(condition).returning(Job.id))).scalars().all()
        )
        if not gone and only_arriving:
            return False
        if gone:
            await storage_cap.release_job(session, job_id)
        await session.execute(delete(Link).where(Link.id == link_id))
    await services.notifier.link_settled(link_id)
    return True


async def dead(services: Services, limit: int) -> list[tuple[str, str, str | None]]:
    """Up to `limit` uploads still waiting for their body long after any upload must
    have ended (their API process died): (link id, job id, staged pieces) to cancel."""
    cutoff = db_now_plus(seconds(-services.settings.sweep_age_seconds))
    async with services.sessions() as session:
        rows = (
            await session.execute(
                select(Job.link_id, Job.id, Job.staging_pieces)
                .where(Job.state.in_(ARRIVING_STATES), Job.created_at < cutoff)
                .limit(limit)
            )
        ).all()
    return [(row.link_id, row.id, row.staging_pieces) for row in rows]
