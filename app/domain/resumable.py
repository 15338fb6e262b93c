"""Resumable (tus) uploads: creating one, reading its state, terminating it, expiring it.

An upload is a `tus_uploads` row, created with its length, link options and a one-time
staging key (wrapped), and the storage cap and daily quota reserved for its whole length,
as a PUT with a Content-Length reserves them. Its bytes arrive in pieces
(`app.domain.resumable_append`), each sealed under that key into its own staging object;
the row lists them and counts the bytes acknowledged. State lives only in the database, so
any API process can take the next request. The URL's id is stored as its SHA-256 only.

An open upload that receives nothing for `unfinished_upload_seconds`, or is still open
`max_upload_seconds` after its creation, expires; the janitor then removes its pieces, its
row, and gives back what it reserved — as a termination (DELETE) does at once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.crypto.keys import new_data_key, staging_key_context
from app.crypto.tokens import (
    derived_token,
    is_token_shaped,
    log_name,
    new_id,
    new_token,
    token_hash,
)
from app.db.clock import as_utc, db_now, db_now_plus, seconds
from app.db.models import Link, LinkState, StorageReservation, TusState, TusUpload
from app.db.session import transaction
from app.domain import staged, storage_cap, upload_policy, upload_quota
from app.domain.upload_rows import UploadOptions
from app.domain.uploaders import Admitted
from app.domain.uploads import check_declared_size
from app.errors import UploadGone, UploadNotFound
from app.services import Services
from app.storage.object_keys import piece_object_key

log = logging.getLogger("sealdrop.resumable")

LINK_TOKEN_PURPOSE = "sealdrop/tus-link-token/v1"  # noqa: S105 - a label, no secret
BATCH = 100


@dataclass(frozen=True, slots=True)
class Opened:
    """A new upload: its id (the URL's last part, shown once) and when it expires."""

    upload_id: str
    job_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LinkView:
    """A completed upload's link, as its JSON shows it (never the manage token)."""

    token: str
    filename: str
    expires_at: datetime
    state: LinkState
    size: int
    sha256: bytes | None


@dataclass(frozen=True, slots=True)
class Status:
    """What HEAD and GET answer about an upload."""

    job_id: str
    state: TusState
    length: int
    offset: int
    metadata: str | None
    expires_at: datetime | None  # None once complete: it no longer expires
    link: LinkView | None


def link_token(upload_id: str) -> str:
    """The link token of the upload `upload_id` (computable only from the URL's id)."""
    return derived_token(upload_id, LINK_TOKEN_PURPOSE)


async def create(
    services: Services,
    *,
    length: int,
    options: UploadOptions,
    metadata: str | None,
    uploader: Admitted | None,
) -> Opened:
    """Open an upload of `length` bytes: 413 if too large, 507 if the stores cannot hold
    it, 429 past the uploader's quota or live links. Nothing is kept on a refusal."""
    check_declared_size(length, services)
    upload_policy.check_declared_size(length, uploader)
    if uploader is not None:
        async with transaction(services.sessions, immediate=True) as session:
            await upload_policy.hold_for_link(session, uploader)
    password_hash = (
        await services.passwords.hash(options.password) if options.password is not None else None
    )
    upload_id, job_id = new_token(), new_id()
    reservation = storage_cap.Reservation(services, job_id=job_id)
    allowance = upload_quota.Allowance(services, uploader)
    try:
        await reservation.cover(length, exact=True)
        await allowance.reserve(length)
        key_id, wrapped = services.keys.wrap(new_data_key(), staging_key_context(job_id))
        settings = services.settings
        first_expiry = min(settings.unfinished_upload_seconds, settings.max_upload_seconds)
        async with transaction(services.sessions) as session:
            await session.execute(
                insert(TusUpload).values(
                    id=job_id,
                    id_hash=token_hash(upload_id),
                    state=TusState.OPEN,
                    length=length,
                    received=0,
                    pieces="[]",
                    staging_key_id=key_id,
                    staging_wrapped_key=wrapped,
                    upload_metadata=metadata,
                    filename=options.filename,
                    content_type=options.content_type,
                    ttl_seconds=options.ttl_seconds,
                    max_ttl_seconds=upload_policy.max_ttl(settings, uploader),
                    max_downloads=options.max_downloads,
                    password_hash=password_hash,
                    uploader_id=uploader.id if uploader else None,
                    quota_day=allowance.day,
                    deadline_at=db_now_plus(seconds(settings.max_upload_seconds)),
                    expires_at=db_now_plus(seconds(first_expiry)),
                )
            )
            expires_at = await session.scalar(
                select(TusUpload.expires_at).where(TusUpload.id == job_id)
            )
    except BaseException:
        await asyncio.shield(allowance.give_back(0))
        await asyncio.shield(reservation.release())
        raise
    assert expires_at is not None
    log.info("resumable upload %s opened, %d bytes", log_name(token_hash(upload_id)), length)
    return Opened(upload_id, job_id, as_utc(expires_at))


def lookup_hash(upload_id: str) -> bytes:
    """The stored hash of an upload id; 404 at once for an id of the wrong shape."""
    if not is_token_shaped(upload_id):
        raise UploadNotFound()
    return token_hash(upload_id)


async def status(services: Services, upload_id: str) -> Status:
    """The upload's state; 404 for an unknown id, 410 once it expired."""
    hashed = lookup_hash(upload_id)
    async with services.sessions() as session:
        row = (
            await session.execute(
                select(
                    TusUpload.id,
                    TusUpload.state,
                    TusUpload.length,
                    TusUpload.received,
                    TusUpload.upload_metadata,
                    TusUpload.expires_at,
                    TusUpload.link_id,
                    (TusUpload.expires_at < db_now()).label("expired"),
                ).where(TusUpload.id_hash == hashed)
            )
        ).one_or_none()
        if row is None:
            raise UploadNotFound()
        if row.state == TusState.OPEN and row.expired:
            raise UploadGone()
        link = await _link_view(session, upload_id, row.link_id)
    complete = row.state == TusState.COMPLETE
    return Status(
        job_id=row.id,
        state=row.state,
        length=row.length,
        offset=row.received,
        metadata=row.upload_metadata,
        expires_at=None if complete else as_utc(row.expires_at),
        link=link,
    )


async def _link_view(session: AsyncSession, upload_id: str, link_id: str | None) -> LinkView | None:
    if link_id is None:
        return None
    link = (
        await session.execute(
            select(Link.filename, Link.expires_at, Link.state, Link.size, Link.sha256).where(
                Link.id == link_id
            )
        )
    ).one_or_none()
    if link is None:
        return None
    return LinkView(
        token=link_token(upload_id),
        filename=link.filename or "file",
        expires_at=as_utc(link.expires_at),
        state=link.state,
        size=link.size or 0,
        sha256=link.sha256,
    )


async def terminate(services: Services, upload_id: str) -> None:
    """Remove an open upload and everything it staged (tus termination); 404 for an
    unknown id. A completed upload is its link's now: delete that with its manage token."""
    hashed = lookup_hash(upload_id)
    async with transaction(services.sessions, immediate=True) as session:
        row = (
            await session.execute(
                select(TusUpload.id, TusUpload.state).where(TusUpload.id_hash == hashed)
            )
        ).one_or_none()
        if row is None:
            raise UploadNotFound()
        if row.state != TusState.OPEN:
            raise UploadGone("this upload is complete; delete its link with the manage token")
        removed = await _remove_row(session, row.id)
    if removed:
        await staged.delete_pieces(services, row.id)
        log.info("resumable upload %s terminated", log_name(hashed))


async def _remove_row(session: AsyncSession, job_id: str) -> bool:
    """In the caller's transaction: delete an open upload's row and give back its
    reservation and the quota it did not use. False if it was no longer open (completed
    meanwhile)."""
    gone = (
        await session.execute(
            delete(TusUpload)
            .where(TusUpload.id == job_id, TusUpload.state == TusState.OPEN)
            .returning(
                TusUpload.uploader_id, TusUpload.quota_day, TusUpload.length, TusUpload.received
            )
        )
    ).one_or_none()
    if gone is None:
        return False
    if gone.uploader_id is not None and gone.quota_day is not None:
        # What was received counts against the day's bytes, finished or not.
        unsent = gone.length - gone.received
        await upload_quota.give_back_day(session, gone.uploader_id, gone.quota_day, unsent)
    freed = await session.scalar(
        delete(StorageReservation)
        .where(StorageReservation.id == job_id, StorageReservation.in_flight)
        .returning(StorageReservation.bytes)
    )
    await storage_cap.add(session, -(freed or 0))
    return True


async def expire(services: Services) -> int:
    """Remove open uploads past their expiry, with their pieces (the janitor's pass)."""
    async with services.sessions() as session:
        ids = (
            (
                await session.execute(
                    select(TusUpload.id)
                    .where(TusUpload.state == TusState.OPEN, TusUpload.expires_at < db_now())
                    .limit(BATCH)
                )
            )
            .scalars()
            .all()
        )
    removed = 0
    for job_id in ids:
        async with transaction(services.sessions, immediate=True) as session:
            # Still expired (a PATCH may have landed since the list was read).
            still = await session.scalar(
                select(TusUpload.id).where(
                    TusUpload.id == job_id,
                    TusUpload.state == TusState.OPEN,
                    TusUpload.expires_at < db_now(),
                )
            )
            gone = still is not None and await _remove_row(session, job_id)
        if gone:
            await staged.delete_pieces(services, job_id)
            removed += 1
    if removed:
        log.info("expired %d unfinished resumable uploads", removed)
    return removed


def piece_key(job_id: str, piece_id: str) -> str:
    """Where one piece of an upload is staged."""
    return piece_object_key(job_id, piece_id)
