"""The rows a new upload writes: its link, and either the job that will seal it or the
blob it was sealed into already.

An upload staged for a worker writes its link (`pending`) and its job in one transaction,
which also turns the upload's storage reservation into the job's (`create_job_rows`). An
upload the API sealed itself, straight into its blob (the embedded mode), writes the blob
row and its link `ready` in one transaction, which counts the blob in place of the
reservation (`create_ready_rows`). Either way a link exists only with what serves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.crypto.tokens import new_id, new_token, token_hash
from app.db.clock import as_utc, db_now_plus, seconds
from app.db.models import Blob, Job, JobState, Link, LinkState
from app.db.session import transaction
from app.domain import storage_cap, upload_policy
from app.domain.uploaders import Admitted
from app.infra import metrics
from app.services import Services
from app.storage.object_keys import Piece, dump_pieces


@dataclass(frozen=True, slots=True)
class UploadOptions:
    """What the uploader asked for, already validated."""

    filename: str
    content_type: str
    ttl_seconds: int
    max_downloads: int | None = None
    password: str | None = None


@dataclass(frozen=True, slots=True)
class CreatedLink:
    """The answer to an upload: the secrets are shown once, here, and never again."""

    link_id: str
    token: str
    manage_token: str
    expires_at: datetime
    state: LinkState
    size: int
    sha256: bytes | None  # None until the worker computes it (direct uploads)


@dataclass(frozen=True, slots=True)
class StagedBody:
    """An upload's body in the staging store, for its job to seal."""

    job_id: str
    key_id: str
    wrapped_key: bytes
    size: int
    sha256: bytes | None  # None until the body is staged (an upload sealed as it arrives)


@dataclass(frozen=True, slots=True)
class SealedBody:
    """An upload's body sealed into its blob already, and what its blob row records."""

    blob_id: str
    key_id: str
    wrapped_key: bytes
    header: bytes
    segment_size: int
    ciphertext_size: int
    size: int
    sha256: bytes


@dataclass(frozen=True, slots=True)
class NewLink:
    """Who asked for a link and how: the uploader's options, the password's hash (made
    before the transaction: argon2id takes a while), the uploader's policy if any."""

    options: UploadOptions
    password_hash: str | None
    uploader: Admitted | None


async def create_job_rows(
    services: Services,
    new: NewLink,
    staged: StagedBody,
    *,
    state: JobState = JobState.QUEUED,
    pieces: list[Piece] | None = None,
) -> CreatedLink:
    """Write the pending link and the job that seals `staged`; the upload's reservation
    becomes the job's."""
    async with transaction(services.sessions, immediate=new.uploader is not None) as session:
        created = await _insert_link(session, services, new, staged.size, staged.sha256)
        await session.execute(
            insert(Job).values(
                id=staged.job_id,
                kind="seal",
                link_id=created.link_id,
                state=state,
                staging_key_id=staged.key_id,
                staging_wrapped_key=staged.wrapped_key,
                staging_pieces=None if pieces is None else dump_pieces(pieces),
            )
        )
        await storage_cap.hold_for_job(
            session, staged.job_id, staged.size, services.settings.segment_log2
        )
    _count_uploader(new.uploader, staged.size)
    return created


async def create_ready_rows(
    services: Services, new: NewLink, sealed: SealedBody, reservation_id: str
) -> CreatedLink:
    """Write the blob row and its link, ready; the blob is counted in place of the
    upload's reservation (`reservation_id`)."""
    async with transaction(services.sessions, immediate=True) as session:
        await session.execute(
            insert(Blob).values(
                id=sealed.blob_id,
                key_id=sealed.key_id,
                wrapped_key=sealed.wrapped_key,
                header=sealed.header,
                segment_size=sealed.segment_size,
                ciphertext_size=sealed.ciphertext_size,
            )
        )
        created = await _insert_link(
            session, services, new, sealed.size, sealed.sha256, blob_id=sealed.blob_id
        )
        await storage_cap.release_in_flight(
            session, reservation_id, blob_bytes=sealed.ciphertext_size
        )
    _count_uploader(new.uploader, sealed.size)
    return created


async def _insert_link(
    session: AsyncSession,
    services: Services,
    new: NewLink,
    size: int,
    sha256: bytes | None,
    *,
    blob_id: str | None = None,
) -> CreatedLink:
    """Insert the link (ready when it has its blob, else pending) under the uploader's
    hold, in the caller's transaction."""
    options, uploader = new.options, new.uploader
    if uploader is not None:
        await upload_policy.hold_for_link(session, uploader)
    token, manage_token, link_id = new_token(), new_token(), new_id()
    state = LinkState.PENDING if blob_id is None else LinkState.READY
    await session.execute(
        insert(Link).values(
            id=link_id,
            token_hash=token_hash(token),
            manage_token_hash=token_hash(manage_token),
            filename=options.filename,
            content_type=options.content_type,
            size=size,
            sha256=sha256,
            password_hash=new.password_hash,
            max_downloads=options.max_downloads,
            expires_at=db_now_plus(seconds(options.ttl_seconds)),
            max_expires_at=db_now_plus(seconds(upload_policy.max_ttl(services.settings, uploader))),
            state=state,
            blob_id=blob_id,
            uploader_id=uploader.id if uploader else None,
        )
    )
    expires_at = (
        await session.execute(select(Link.expires_at).where(Link.id == link_id))
    ).scalar_one()
    return CreatedLink(
        link_id=link_id,
        token=token,
        manage_token=manage_token,
        expires_at=as_utc(expires_at),
        state=state,
        size=size,
        sha256=sha256 or b"",
    )


def _count_uploader(uploader: Admitted | None, size: int) -> None:
    if uploader is not None:
        metrics.UPLOADER_LINKS.labels(uploader.name).inc()
        metrics.UPLOADER_BYTES.labels(uploader.name).inc(size)
