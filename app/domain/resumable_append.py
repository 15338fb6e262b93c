"""One PATCH of a resumable upload: seal what arrives as a new piece, then acknowledge it.

The body is sealed under the upload's staging key into its own staging object
(`staging/<job id>.<piece id>`, a v1 object with its own header and nonce prefix), and the
piece is committed — fsynced, or a completed S3 upload — before one conditional UPDATE
moves the acknowledged offset: `received = received + n WHERE received = <offset read>`.
Of two PATCHes racing at one offset only one moves it; the other's piece is deleted and
it gets 409. A body cut off early (the client went away, or went silent) is sealed as far
as it arrived, its tail as the piece's last segment, and acknowledged: that is what
resumes. With `Upload-Checksum`, nothing is acknowledged unless the whole body arrived and
matches. The PATCH that acknowledges the last byte also writes the link (pending) and its
job in the same transaction, the job listing the pieces in order: the worker reads them
as one upload, exactly as it reads a PUT's.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import case, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.crypto import sealing
from app.crypto.keys import KeyRingError, staging_key_context
from app.crypto.tokens import log_name, new_id, new_token, token_hash
from app.db.clock import as_utc, db_now, db_now_plus, seconds
from app.db.models import Job, JobState, Link, LinkState, TusState, TusUpload, Uploader
from app.db.session import transaction
from app.domain import resumable, storage_cap, upload_policy
from app.domain.upload_rows import CreatedLink
from app.domain.uploaders import Admitted, Limits
from app.errors import (
    BadRequest,
    ChecksumMismatch,
    OffsetMismatch,
    SealdropError,
    UploadAborted,
    UploadGone,
    UploadNotFound,
    UploadTimedOut,
    UploadTooLarge,
)
from app.infra import metrics
from app.services import Services
from app.storage.base import ObjectWriter
from app.storage.object_keys import Piece, dump_pieces, load_pieces

log = logging.getLogger("sealdrop.resumable")

# A PATCH's body is acknowledged in pieces of at most this much, or of what arrived in this
# long: a single PATCH of a whole large file then keeps moving its upload's expiry, and a
# break loses at most one piece. tus clients that send 50 MiB PATCHes never reach either.
PIECE_BYTES = 256 * 1024 * 1024
PIECE_SECONDS = 300.0
# An upload's pieces, at most (S3's parts per upload): each is an object and a row entry,
# so a client sending tiny PATCHes cannot make thousands of them. 50 MiB PATCHes fill
# this at 500 GB.
MAX_PIECES = 10_000


@dataclass(frozen=True, slots=True)
class Appended:
    """A PATCH's outcome: the offset now acknowledged, and the link if it completed."""

    offset: int
    expires_at: datetime | None
    created: CreatedLink | None = None
    # The body broke off after `offset` was acknowledged: tell the client why.
    cut_short: SealdropError | None = None
    filename: str = "file"


@dataclass(frozen=True, slots=True)
class _Open:
    job_id: str
    offset: int
    length: int
    pieces: str
    staging_key: bytes


async def append(
    services: Services,
    upload_id: str,
    offset: int,
    body: AsyncIterator[sealing.Buffer],
    *,
    declared: int | None,
    checksum: bytes | None,
) -> Appended:
    """Seal `body` as the bytes from `offset` on and acknowledge them (tus PATCH).

    A long body is acknowledged piece by piece (`PIECE_BYTES`, `PIECE_SECONDS`), so that
    one huge PATCH on a slow link keeps its upload from expiring and loses little when
    broken; with `Upload-Checksum` it is one piece, acknowledged only whole.
    """
    row = await _open_row(services, upload_id)
    if row.offset != offset:
        raise OffsetMismatch()
    if declared is not None and declared > row.length - offset:
        excess = declared - (row.length - offset)
        raise UploadTooLarge(f"this PATCH would pass Upload-Length by {excess} bytes")
    if row.offset == row.length or declared == 0:
        return (await _settle(services, upload_id, row, None))[0]
    source = _Pushback(body)
    while True:
        if len(load_pieces(row.pieces) or []) >= MAX_PIECES:
            raise BadRequest(f"an upload may have at most {MAX_PIECES} pieces; send larger PATCHes")
        piece_id = new_id()
        key = resumable.piece_key(row.job_id, piece_id)
        size, cut, more, header = await _seal_piece(services, key, row, source, checksum)
        if size == 0:
            if cut is not None and row.offset == offset:
                raise cut
            return (await _settle(services, upload_id, row, None))[0]
        try:
            appended, row = await _settle(services, upload_id, row, Piece(piece_id, size, header))
        except BaseException:
            await asyncio.shield(services.staging.delete(key))
            raise
        if cut is not None:
            log.info("resumable PATCH cut short; %d bytes acknowledged", appended.offset)
            return replace(appended, cut_short=cut)
        if not more or appended.created is not None:
            return appended


class _Pushback:
    """A body whose last chunk can be handed back, to start the next piece with its rest."""

    def __init__(self, body: AsyncIterator[sealing.Buffer]) -> None:
        self._body = body
        self._back: sealing.Buffer | None = None

    async def next(self) -> sealing.Buffer | None:
        """The next chunk, or None at the end of the body."""
        if self._back is not None:
            chunk, self._back = self._back, None
            return chunk
        return await anext(self._body, None)

    def push_back(self, rest: sealing.Buffer) -> None:
        """Have `next` return `rest` first."""
        self._back = rest


async def _open_row(services: Services, upload_id: str) -> _Open:
    async with services.sessions() as session:
        row = (
            await session.execute(
                select(
                    TusUpload.id,
                    TusUpload.state,
                    TusUpload.length,
                    TusUpload.received,
                    TusUpload.pieces,
                    TusUpload.staging_key_id,
                    TusUpload.staging_wrapped_key,
                    (TusUpload.expires_at < db_now()).label("expired"),
                ).where(TusUpload.id_hash == resumable.lookup_hash(upload_id))
            )
        ).one_or_none()
    if row is None:
        raise UploadNotFound()
    if row.state != TusState.OPEN:
        # Complete: every byte is acknowledged, so any offset but the end is wrong.
        raise OffsetMismatch("this upload is complete; Upload-Offset is its length")
    if row.expired:
        raise UploadGone()
    try:
        staging_key = services.keys.unwrap(
            row.staging_key_id or "", row.staging_wrapped_key or b"", staging_key_context(row.id)
        )
    except KeyRingError:
        raise UploadGone("this upload's key is no longer known; start a new one") from None
    return _Open(row.id, row.received, row.length, row.pieces, staging_key)


async def _seal_piece(
    services: Services,
    key: str,
    row: _Open,
    body: _Pushback,
    checksum: bytes | None,
) -> tuple[int, SealdropError | None, bool, bytes]:
    """Seal and commit one piece: (its size, why the body broke off if it did, whether
    more of the body follows it, its header)."""
    room = row.length - row.offset
    whole = checksum is not None  # the checksum vouches for the whole body only
    most = room if whole else min(room, PIECE_BYTES)
    sealer = sealing.SegmentSealer(row.staging_key, segment_log2=services.settings.segment_log2)
    digest = hashlib.sha256() if whole else None
    writer = await services.staging.open_writer(key, size_hint=None)
    cut: SealdropError | None = None
    more = False
    loop = asyncio.get_running_loop()
    until = loop.time() + PIECE_SECONDS
    try:
        await writer.write(sealer.header)
        try:
            while (chunk := await body.next()) is not None:
                taken = sealer.plaintext_size
                if taken + len(chunk) > most:
                    if most == room:
                        raise UploadTooLarge(
                            "the body goes past Upload-Length; nothing of it was kept"
                        )
                    body.push_back(memoryview(chunk)[most - taken :])
                    chunk = memoryview(chunk)[: most - taken]
                metrics.RECEIVED_BYTES.inc(len(chunk))
                if digest is not None:
                    digest.update(chunk)
                await _write_segments(writer, sealer, chunk)
                # The last piece reads on to the end: a byte past Upload-Length is a 413.
                full = sealer.plaintext_size == most < room
                if not whole and (full or loop.time() > until):
                    more = True
                    break
        except (UploadAborted, UploadTimedOut) as error:
            # The bytes that arrived are good: keep them, unless a checksum was to vouch
            # for the whole body.
            if digest is not None:
                raise
            cut = error
        if digest is not None and not hmac.compare_digest(digest.digest(), checksum or b""):
            raise ChecksumMismatch()
        if sealer.plaintext_size == 0:
            await writer.abort()
            return 0, cut, False, sealer.header
        await writer.write(sealer.finish())
        await writer.commit()
    except BaseException:
        await asyncio.shield(writer.abort())
        raise
    return sealer.plaintext_size, cut, more, sealer.header


async def _write_segments(
    writer: ObjectWriter, sealer: sealing.SegmentSealer, chunk: sealing.Buffer
) -> None:
    # Each segment is a view of one reused buffer: written out before the next is sealed.
    for segment in sealer.feed(chunk):
        await writer.write(segment)


async def _settle(
    services: Services, upload_id: str, row: _Open, piece: Piece | None
) -> tuple[Appended, _Open]:
    """Acknowledge `piece` (none: nothing new), and complete the upload if it held the
    last bytes; 409 if another PATCH moved the offset first. Returns the outcome and the
    row as it is now."""
    settings = services.settings
    pieces = load_pieces(row.pieces) or []
    if piece is not None:
        pieces.append(piece)
    offset = row.offset + (piece.size if piece is not None else 0)
    now = replace(row, offset=offset, pieces=dump_pieces(pieces))
    later = db_now_plus(seconds(settings.unfinished_upload_seconds))
    async with transaction(services.sessions, immediate=True) as session:
        moved = await session.execute(
            update(TusUpload)
            .where(
                TusUpload.id == row.job_id,
                TusUpload.state == TusState.OPEN,
                TusUpload.received == row.offset,
                TusUpload.expires_at >= db_now(),
            )
            .values(
                received=offset,
                pieces=now.pieces,
                updated_at=db_now(),
                expires_at=case(
                    (TusUpload.deadline_at < later, TusUpload.deadline_at), else_=later
                ),
            )
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            raise OffsetMismatch()
        if offset < row.length:
            expires_at = await session.scalar(
                select(TusUpload.expires_at).where(TusUpload.id == row.job_id)
            )
            assert expires_at is not None
            return Appended(offset, as_utc(expires_at)), now
        created, filename = await _complete(services, session, upload_id, row.job_id, pieces)
    await services.cache.forget(token_hash(created.token))
    await services.notifier.job_queued()
    log.info("resumable upload %s complete, %d bytes", log_name(token_hash(upload_id)), offset)
    return Appended(offset, None, created, filename=filename), now


async def _complete(
    services: Services,
    session: AsyncSession,
    upload_id: str,
    job_id: str,
    pieces: list[Piece],
) -> tuple[CreatedLink, str]:
    """In the acknowledging transaction: the link (pending), its job (the staging key
    moved from the upload's row to the job's), and the job's storage reservation."""
    up = (await session.execute(select(TusUpload).where(TusUpload.id == job_id))).scalar_one()
    if up.uploader_id is not None:
        await upload_policy.hold_for_link(session, await _admitted(session, up.uploader_id))
    token, manage_token, link_id = resumable.link_token(upload_id), new_token(), new_id()
    filename = up.filename  # read before the UPDATE below clears it (and the loaded object)
    await session.execute(
        insert(Link).values(
            id=link_id,
            token_hash=token_hash(token),
            manage_token_hash=token_hash(manage_token),
            filename=up.filename,
            content_type=up.content_type,
            size=up.length,
            sha256=None,  # the worker computes it: no request saw the whole file
            password_hash=up.password_hash,
            max_downloads=up.max_downloads,
            expires_at=db_now_plus(seconds(up.ttl_seconds)),
            max_expires_at=db_now_plus(seconds(up.max_ttl_seconds)),
            state=LinkState.PENDING,
            uploader_id=up.uploader_id,
        )
    )
    await session.execute(
        insert(Job).values(
            id=job_id,
            kind="seal",
            link_id=link_id,
            state=JobState.QUEUED,
            staging_key_id=up.staging_key_id,
            staging_wrapped_key=up.staging_wrapped_key,
            staging_pieces=dump_pieces(pieces),
        )
    )
    await session.execute(
        update(TusUpload)
        .where(TusUpload.id == job_id)
        .values(
            state=TusState.COMPLETE,
            link_id=link_id,
            staging_key_id=None,
            staging_wrapped_key=None,
            # The link row holds them now, and clears them when it is purged: a copy
            # here would outlive it.
            password_hash=None,
            filename="",
            content_type="",
            upload_metadata=None,
        )
    )
    await storage_cap.hold_for_job(session, job_id, up.length, services.settings.segment_log2)
    expires_at = await session.scalar(select(Link.expires_at).where(Link.id == link_id))
    assert expires_at is not None
    created = CreatedLink(
        link_id=link_id,
        token=token,
        manage_token=manage_token,
        expires_at=as_utc(expires_at),
        state=LinkState.PENDING,
        size=up.length,
        sha256=b"",
    )
    return created, filename


async def _admitted(session: AsyncSession, uploader_id: str) -> Admitted:
    """The uploader of a completing upload, enough for the live-link check."""
    row = (
        await session.execute(
            select(Uploader.name, Uploader.key_hash, Uploader.max_live_links).where(
                Uploader.id == uploader_id
            )
        )
    ).one_or_none()
    if row is None:
        raise BadRequest("this upload's uploader no longer exists")
    return Admitted(
        id=uploader_id,
        name=row.name,
        has_key=row.key_hash is not None,
        limits=Limits(max_live_links=row.max_live_links),
    )
