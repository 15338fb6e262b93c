"""Deciding about links: resolve a token, spend a download, delete a link.

Every decision about time is made in SQL against the database clock. A protected link's
password and its lock after failures are `app.domain.link_passwords`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.crypto.tokens import is_token_shaped, log_name, same_hash, token_hash
from app.db.clock import as_utc, db_now
from app.db.models import ENDED_LINK_STATES, LIVE_JOB_STATES, Blob, Job, Link, LinkState
from app.db.session import transaction
from app.domain import staged, storage_cap
from app.errors import (
    Forbidden,
    LinkGone,
    LinkNotFound,
    NotReady,
)
from app.infra import metrics
from app.services import Services
from app.storage.object_keys import staging_object_key

log = logging.getLogger("sealdrop.links")


@dataclass(frozen=True, slots=True)
class BlobRef:
    """Where a ready link's bytes are and how to open them."""

    id: str
    key_id: str
    wrapped_key: bytes
    header: bytes
    segment_size: int
    ciphertext_size: int


@dataclass(frozen=True, slots=True)
class LinkView:
    """A snapshot of one live (not expired, not gone) link."""

    id: str
    token_hash: bytes
    filename: str
    content_type: str
    size: int
    sha256: bytes
    protected: bool
    password_hash: str | None
    max_downloads: int | None
    download_count: int
    expires_at: datetime
    state: LinkState
    blob: BlobRef | None
    locked_for: float = 0.0  # seconds the password lock still runs, by the database clock

    @property
    def realm(self) -> str:
        """The Basic realm: names the link without revealing its token."""
        return f"sealdrop {log_name(self.token_hash)}"

    @property
    def downloads_left(self) -> int | None:
        """Downloads still allowed, or None without a limit."""
        if self.max_downloads is None:
            return None
        return max(0, self.max_downloads - self.download_count)


async def resolve(services: Services, token: str) -> LinkView:
    """The live link for `token`; LinkNotFound, LinkGone otherwise (negatives are cached)."""
    if not is_token_shaped(token):
        raise LinkNotFound()
    hashed = token_hash(token)
    cached = await services.cache.get(hashed)
    metrics.NEGATIVE_CACHE.labels("miss" if cached is None else "hit").inc()
    if cached == 404:
        raise LinkNotFound()
    if cached == 410:
        raise LinkGone()
    async with services.sessions() as session:
        row = (
            await session.execute(
                select(Link, Blob, (Link.expires_at > db_now()).label("alive"), db_now())
                .outerjoin(Blob, Blob.id == Link.blob_id)
                .where(Link.token_hash == hashed)
            )
        ).first()
    if row is None:
        await services.cache.put(hashed, 404)
        raise LinkNotFound()
    link, blob, alive, now = row
    if not alive or link.state in ENDED_LINK_STATES or link.purged_at is not None:
        await services.cache.put(hashed, 410)
        raise LinkGone()
    if link.max_downloads is not None and link.download_count >= link.max_downloads:
        await services.cache.put(hashed, 410)
        raise LinkGone("this link has been downloaded as many times as allowed")
    return view(link, blob, now)


def view(link: Link, blob: Blob | None, now: datetime) -> LinkView:
    """A snapshot of `link` as loaded, with its blob (`now` by the database clock)."""
    locked_for = 0.0
    if link.locked_until is not None:
        locked_for = max(0.0, (as_utc(link.locked_until) - as_utc(now)).total_seconds())
    return LinkView(
        locked_for=locked_for,
        id=link.id,
        token_hash=link.token_hash,
        filename=link.filename or "file",
        content_type=link.content_type or "application/octet-stream",
        size=link.size or 0,
        sha256=link.sha256 or b"",
        protected=link.password_hash is not None,
        password_hash=link.password_hash,
        max_downloads=link.max_downloads,
        download_count=link.download_count,
        expires_at=as_utc(link.expires_at),
        state=link.state,
        blob=None
        if blob is None
        else BlobRef(
            id=blob.id,
            key_id=blob.key_id,
            wrapped_key=blob.wrapped_key,
            header=blob.header,
            segment_size=blob.segment_size,
            ciphertext_size=blob.ciphertext_size,
        ),
    )


def require_ready(link: LinkView) -> BlobRef:
    """The link's blob, or NotReady while it is still being sealed."""
    if link.state != LinkState.READY or link.blob is None:
        raise NotReady()
    return link.blob


def live() -> ColumnElement[bool]:
    """A link that still serves or is being sealed: pending or ready, not purged, not
    expired, not used up. The one definition the owner's edit, the operator's list and the
    uploaders' live-link counts share."""
    return and_(
        Link.state.in_((LinkState.PENDING, LinkState.READY)),
        Link.purged_at.is_(None),
        Link.expires_at > db_now(),
        or_(Link.max_downloads.is_(None), Link.download_count < Link.max_downloads),
    )


def _servable(link_id: str) -> ColumnElement[bool]:
    """The link may still be downloaded: ready, not expired, not used up."""
    return and_(
        Link.id == link_id,
        Link.state == LinkState.READY,
        Link.expires_at > db_now(),
        or_(Link.max_downloads.is_(None), Link.download_count < Link.max_downloads),
    )


async def spend_download(services: Services, link: LinkView) -> None:
    """Count one download; LinkGone if the link expired or was used up meanwhile."""
    async with transaction(services.sessions, immediate=True) as session:
        counted = await session.scalar(
            update(Link)
            .where(_servable(link.id))
            .values(download_count=Link.download_count + 1)
            .returning(Link.download_count)
        )
    if counted is None:
        raise LinkGone()


async def serves_blob(services: Services, link_id: str, blob_id: str) -> bool:
    """Whether the link may still be downloaded and its blob row is still there.

    False once the link expired, was used up, deleted or purged (a purge clears the
    link's `blob_id` and deletes the blob row before the object).
    """
    async with services.sessions() as session:
        found = await session.scalar(
            select(Blob.id)
            .join(Link, Link.blob_id == Blob.id)
            .where(_servable(link_id), Blob.id == blob_id)
        )
    return found is not None


async def delete_link(services: Services, token: str, manage_token: str | None) -> None:
    """Delete a link with its manage token: it answers 410 at once, its bytes are purged."""
    if not is_token_shaped(token):
        raise LinkNotFound()
    hashed = token_hash(token)
    async with transaction(services.sessions, immediate=True) as session:
        link = (
            await session.execute(
                select(Link.id, Link.manage_token_hash, Link.state).where(Link.token_hash == hashed)
            )
        ).first()
        if link is None:
            raise LinkNotFound()
        if manage_token is None or not is_manage_token(link.manage_token_hash, manage_token):
            raise Forbidden()
        if link.state == LinkState.DELETED:
            raise LinkGone()
        cancelled = await mark_deleted(session, link.id)
    await after_delete(services, hashed, cancelled)
    log.info("link=%s deleted by its owner", log_name(hashed))


async def mark_deleted(session: AsyncSession, link_id: str) -> list[str]:
    """In the caller's transaction: the link becomes `deleted` (the janitor purges it) and
    its live job is cancelled, its stored bytes uncounted. Returns the cancelled jobs' ids,
    whose staged objects `after_delete` removes once the transaction has committed."""
    await session.execute(update(Link).where(Link.id == link_id).values(state=LinkState.DELETED))
    cancelled = (
        (
            await session.execute(
                delete(Job)
                .where(Job.link_id == link_id, Job.state.in_(LIVE_JOB_STATES))
                .returning(Job.id)
            )
        )
        .scalars()
        .all()
    )
    for job_id in cancelled:
        await storage_cap.release_job(session, job_id)
    return list(cancelled)


async def after_delete(services: Services, hashed: bytes, cancelled: list[str]) -> None:
    """After a deletion's commit: its staged objects go, and its token answers 410 at once
    wherever the negative cache is shared (a process's own cache never held the live
    link: only negative answers are cached, and the row says `deleted` now)."""
    for job_id in cancelled:
        await services.staging.delete(staging_object_key(job_id))
        await staged.delete_pieces(services, job_id)  # a resumable upload's
    await services.cache.put(hashed, 410)


def is_manage_token(manage_token_hash: bytes, candidate: str) -> bool:
    """Whether `candidate` is the manage token of that hash (compared in constant time)."""
    # The shape first, as for link tokens: only a token of ours can be hashed (ASCII).
    return is_token_shaped(candidate) and same_hash(manage_token_hash, token_hash(candidate))
