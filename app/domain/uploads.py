"""Receiving an upload: options, the sealed write, and the link's rows.

Where the API seals uploads itself (the embedded mode, or `SEALDROP_SEAL_IN_REQUEST`), the
body streams straight into its blob under the blob's own data key, and one transaction
writes the blob row and the link, ready (`_receive_sealed`). Otherwise the body streams
into the staging store, sealed under a one-time staging key, for a worker to reseal
(DESIGN §1), and only once the whole body is staged are the link row (pending) and its
job row written, in one transaction. Either way no plaintext byte rests anywhere, and a
failed or aborted upload leaves no row: what it wrote is deleted before the error goes back.

A large upload of a known length whose options are all known before the body (a PUT),
into a staging store that can be read while written, is sealed while it arrives: its link
and job (`receiving`) are written first, a worker follows the staging write and reseals
it as it grows, and the API records the whole body at the end (`app.domain.arriving`), so
the link is ready shortly after the last byte instead of after a second pass. Into S3
staging, which cannot be read while written, the body is staged as pieces, each committed
and recorded on the job as soon as it is whole (`app.domain.piece_staging`), and the
worker follows the pieces. If such an upload fails, its rows are deleted with its staged
bytes: it too leaves nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from functools import partial

from sqlalchemy import select

from app.crypto import sealing
from app.crypto.digests import BackgroundDigest
from app.crypto.keys import data_key_context, new_data_key, staging_key_context
from app.crypto.tokens import log_name, new_id, token_hash
from app.db.models import JobState, Link, LinkState
from app.domain import (
    arriving,
    piece_staging,
    storage_cap,
    upload_policy,
    upload_quota,
    upload_rows,
)
from app.domain import staged as staged_objects
from app.domain.digits import whole_number
from app.domain.upload_rows import CreatedLink, StagedBody, UploadOptions
from app.domain.uploaders import Admitted
from app.errors import BadRequest, UploadAborted, UploadTimedOut, UploadTooLarge
from app.infra import metrics
from app.services import Services
from app.settings import parse_duration
from app.storage.base import ObjectWriter
from app.storage.object_keys import Piece, blob_object_key, staging_object_key

log = logging.getLogger("sealdrop.uploads")

MAX_DOWNLOADS_LIMIT = 1_000_000
# ASCII digits only: `\d` takes the digits of every script ('٣').
_EXPIRES_RE = re.compile(r"[0-9]{1,9}[smhd]?")
# From this size on, an upload that can be is sealed while it arrives: below it, the
# second pass costs less than the extra transaction (a 4 KiB upload stays as fast).
FOLLOW_FROM_BYTES = 4 * 1024 * 1024


def parse_expires_in(text: str | None, max_ttl: int) -> int:
    """Seconds from `Expires-In` (`[0-9]+[smhd]?`); the maximum when absent. Never shortened."""
    if text is None or text.strip() == "":
        return max_ttl
    text = text.strip()
    if not _EXPIRES_RE.fullmatch(text):
        raise BadRequest("Expires-In must look like 3600, 90m, 12h or 1d")
    try:
        ttl = parse_duration(text)
    except ValueError:
        raise BadRequest("Expires-In must be a positive duration") from None
    if ttl > max_ttl:
        raise BadRequest(f"Expires-In may be at most {max_ttl} seconds on this server")
    return ttl


def parse_max_downloads(text: str | None) -> int | None:
    """The download limit from `Max-Downloads` (1 to 1 000 000), or None."""
    if text is None or text.strip() == "":
        return None
    limit = whole_number(text.strip())
    if limit is None or not 1 <= limit <= MAX_DOWNLOADS_LIMIT:
        raise BadRequest(f"Max-Downloads must be a whole number from 1 to {MAX_DOWNLOADS_LIMIT}")
    return limit


def check_declared_size(declared: int | None, services: Services) -> None:
    """Refuse a body announced as too large before reading any of it."""
    if declared is not None and declared > services.settings.max_upload_bytes:
        raise UploadTooLarge()


@metrics.count_outcomes(metrics.UPLOADS, success="created")
async def receive_upload(
    services: Services,
    body: AsyncIterator[sealing.Buffer],
    options: Callable[[], UploadOptions],
    *,
    declared_size: int | None = None,
    uploader: Admitted | None = None,
    options_known: bool = False,
) -> CreatedLink:
    """Receive `body` sealed and create its link: sealed into its blob at once where the
    API seals uploads itself (`_receive_sealed`), else staged for a worker.

    `options` is called once the body is in (multipart fields may follow the file); if it
    raises, or anything after that fails, what was written is deleted. An `uploader`
    (policies keys and proxy) has its limits held and is recorded on the link. With
    `options_known` (they do not depend on the body) a large upload of a `declared_size`
    is sealed by a worker while it arrives (`_receive_arriving`).
    """
    check_declared_size(declared_size, services)
    upload_policy.check_declared_size(declared_size, uploader)
    reservation = storage_cap.Reservation(services, job_id=new_id())
    try:
        async with upload_quota.allowance(services, uploader, declared_size) as allowance:
            metered = allowance.metered(body)
            if services.settings.seals_in_request:
                return await _receive_sealed(
                    services, reservation, metered, options, declared_size, uploader
                )
            if options_known and _follows(services, declared_size):
                assert declared_size is not None  # for mypy: `_follows` checked it
                return await _receive_arriving(
                    services, reservation, metered, options(), declared_size, uploader
                )
            return await _receive_staged(
                services, reservation, metered, options, declared_size, uploader
            )
    except BaseException:
        await asyncio.shield(reservation.release())
        raise


async def _new_link(
    services: Services, chosen: UploadOptions, uploader: Admitted | None
) -> upload_rows.NewLink:
    password_hash = (
        await services.passwords.hash(chosen.password) if chosen.password is not None else None
    )
    return upload_rows.NewLink(chosen, password_hash, uploader)


async def _receive_sealed(
    services: Services,
    reservation: storage_cap.Reservation,
    body: AsyncIterator[sealing.Buffer],
    options: Callable[[], UploadOptions],
    declared_size: int | None,
    uploader: Admitted | None,
) -> CreatedLink:
    """Seal `body` straight into its blob under its own data key, then write the blob row
    and the link, ready (`Settings.seals_in_request`: by default where the worker runs in
    this process, whose staged copy would only be read back and sealed a second time).
    If the upload fails, its unfinished blob write is aborted (or its blob deleted):
    nothing is left."""
    await reservation.cover(declared_size or 0, exact=declared_size is not None)
    blob_id = new_id()
    data_key = new_data_key()
    key_id, wrapped = services.keys.wrap(data_key, data_key_context(blob_id))
    segment_log2 = services.settings.segment_log2
    sealer = _sealer(services, data_key)
    key = blob_object_key(blob_id)
    hint = None if declared_size is None else sealing.Layout(declared_size, segment_log2)
    writer = await services.blobs.open_writer(
        key, size_hint=None if hint is None else hint.ciphertext_size
    )
    try:
        async with _upload_deadline(services.settings.max_upload_seconds):
            size, digest = await _seal_into(
                services, writer, sealer, reservation.covering(body), declared_size
            )
            await writer.commit()
    except BaseException:
        await asyncio.shield(writer.abort())
        raise
    layout = sealing.Layout(size, segment_log2)
    sealed = upload_rows.SealedBody(
        blob_id=blob_id,
        key_id=key_id,
        wrapped_key=wrapped,
        header=sealer.header,
        segment_size=layout.segment_size,
        ciphertext_size=layout.ciphertext_size,
        size=size,
        sha256=digest,
    )
    try:
        new = await _new_link(services, options(), uploader)
        created = await upload_rows.create_ready_rows(services, new, sealed, reservation.job_id)
    except BaseException:
        await asyncio.shield(services.blobs.delete(key))
        raise
    await services.cache.forget(token_hash(created.token))
    log.info("upload sealed link=%s size=%d", log_name(token_hash(created.token)), size)
    return created


async def _receive_staged(
    services: Services,
    reservation: storage_cap.Reservation,
    body: AsyncIterator[sealing.Buffer],
    options: Callable[[], UploadOptions],
    declared_size: int | None,
    uploader: Admitted | None,
) -> CreatedLink:
    """Stage `body` sealed, then create the pending link and its job in one transaction."""
    staged = await _stage(services, reservation, body, declared_size)
    try:
        new = await _new_link(services, options(), uploader)
        created = await upload_rows.create_job_rows(services, new, staged)
    except BaseException:
        await asyncio.shield(services.staging.delete(staging_object_key(staged.job_id)))
        raise
    await services.cache.forget(token_hash(created.token))
    await services.notifier.job_queued()
    log.info("upload staged link=%s size=%d", log_name(token_hash(created.token)), staged.size)
    return created


def _follows(services: Services, declared_size: int | None) -> bool:
    """Whether an upload is sealed while it arrives: large enough, of a known length, into
    a staging store that can be read while it is written, or staged as pieces."""
    staging = services.staging
    return (
        declared_size is not None
        and declared_size >= FOLLOW_FROM_BYTES
        and (staging.follows_writes or staging.follows_pieces)
    )


async def _receive_arriving(
    services: Services,
    reservation: storage_cap.Reservation,
    body: AsyncIterator[sealing.Buffer],
    chosen: UploadOptions,
    declared_size: int,
    uploader: Admitted | None,
) -> CreatedLink:
    """Write the link and its `receiving` job, then stage the body while a worker follows
    it; record the whole body, or cancel the upload (rows and staged bytes) if it fails."""
    job_id = reservation.job_id
    await reservation.cover(declared_size, exact=True)
    staging_key = new_data_key()
    key_id, wrapped = services.keys.wrap(staging_key, staging_key_context(job_id))
    staged = StagedBody(job_id, key_id, wrapped, declared_size, None)
    arrival = _Arrival(services, staged, await _new_link(services, chosen, uploader))
    if services.staging.follows_writes:
        created, digest = await arrival.as_one_write(staging_key, body)
    else:
        created, digest = await arrival.as_pieces(staging_key, body)
    log.info("upload staged link=%s size=%d", log_name(token_hash(created.token)), declared_size)
    return replace(created, sha256=digest)


@dataclass(frozen=True, slots=True)
class _Arrival:
    """An upload sealed while it arrives, once its options and keys are settled."""

    services: Services
    staged: StagedBody
    new: upload_rows.NewLink

    async def _rows(self, pieces: list[Piece] | None = None) -> CreatedLink:
        created = await upload_rows.create_job_rows(
            self.services, self.new, self.staged, state=JobState.RECEIVING, pieces=pieces
        )
        await self.services.cache.forget(token_hash(created.token))
        await self.services.notifier.job_queued()
        return created

    async def as_one_write(
        self, staging_key: bytes, body: AsyncIterator[sealing.Buffer]
    ) -> tuple[CreatedLink, bytes]:
        """Staged as one object that the worker reads as it grows (`follows_writes`)."""
        services, job_id = self.services, self.staged.job_id
        # Opened before the rows exist: a worker that claims the job finds the write under way.
        writer = await services.staging.open_writer(
            staging_object_key(job_id), size_hint=self.staged.size
        )
        try:
            created = await self._rows()
        except BaseException:
            await asyncio.shield(writer.abort())
            raise
        try:
            async with _upload_deadline(services.settings.max_upload_seconds):
                _, digest = await _seal_into(
                    services,
                    writer,
                    _sealer(services, staging_key),
                    body,
                    self.staged.size,
                    grew=partial(services.notifier.staging_grew, job_id),
                )
                await writer.commit()
            await arriving.record_received(services, created.link_id, job_id, digest)
        except BaseException:
            await asyncio.shield(_cancel(services, writer, created.link_id, job_id))
            raise
        return created, digest

    async def as_pieces(
        self, staging_key: bytes, body: AsyncIterator[sealing.Buffer]
    ) -> tuple[CreatedLink, bytes]:
        """Staged as pieces, each recorded on the job once committed, that a worker in
        another process reseals as they come (`follows_pieces`)."""
        services, job_id = self.services, self.staged.job_id
        # The row lists no piece yet, and says that the upload is staged as pieces.
        created = await self._rows(pieces=[])
        try:
            async with _upload_deadline(services.settings.max_upload_seconds):
                digest = await piece_staging.stage_pieces(
                    services, job_id, staging_key, body, self.staged.size
                )
            await arriving.record_received(services, created.link_id, job_id, digest)
        except BaseException:
            await asyncio.shield(_cancel_pieces(services, created.link_id, job_id))
            raise
        return created, digest


async def _cancel(services: Services, writer: ObjectWriter, link_id: str, job_id: str) -> None:
    """Leave nothing of a failed upload that was sealed as it arrived."""
    await writer.abort()
    await arriving.cancel(services, link_id, job_id)
    await services.staging.delete(staging_object_key(job_id))


async def _cancel_pieces(services: Services, link_id: str, job_id: str) -> None:
    """Leave nothing of a failed upload staged as pieces: rows, then every piece (listed,
    so a piece committed but not yet recorded goes too)."""
    await arriving.cancel(services, link_id, job_id)
    await staged_objects.delete_pieces(services, job_id)


async def _stage(
    services: Services,
    reservation: storage_cap.Reservation,
    body: AsyncIterator[sealing.Buffer],
    declared_size: int | None,
) -> StagedBody:
    job_id = reservation.job_id
    # Before anything is staged: the announced size, or a first step of an unknown one.
    await reservation.cover(declared_size or 0, exact=declared_size is not None)
    staging_key = new_data_key()
    key_id, wrapped = services.keys.wrap(staging_key, staging_key_context(job_id))
    writer = await services.staging.open_writer(staging_object_key(job_id), size_hint=declared_size)
    try:
        async with _upload_deadline(services.settings.max_upload_seconds):
            size, digest = await _seal_into(
                services,
                writer,
                _sealer(services, staging_key),
                reservation.covering(body),
                declared_size,
            )
            await writer.commit()
    except BaseException:
        await asyncio.shield(writer.abort())
        raise
    return StagedBody(job_id, key_id, wrapped, size, digest)


def _sealer(services: Services, key: bytes) -> sealing.SegmentSealer:
    return sealing.SegmentSealer(key, segment_log2=services.settings.segment_log2)


@contextlib.asynccontextmanager
async def _upload_deadline(limit: float) -> AsyncIterator[None]:
    """End a staging write that lasts longer than `limit` seconds (UploadTimedOut).

    The janitor takes an unfinished write older than that as abandoned and aborts it
    (`Settings.sweep_age_seconds` is longer): past it, the upload could only fail later.
    """
    deadline = asyncio.timeout(limit)
    try:
        async with deadline:
            yield
    except TimeoutError:
        if not deadline.expired():
            raise
        raise UploadTimedOut(
            f"the upload took longer than this server allows ({limit:g} s); nothing was kept"
        ) from None


async def _seal_into(
    services: Services,
    writer: ObjectWriter,
    sealer: sealing.SegmentSealer,
    body: AsyncIterator[sealing.Buffer],
    declared_size: int | None,
    *,
    grew: Callable[[], None] | None = None,
) -> tuple[int, bytes]:
    """Seal `body` with `sealer` into `writer`; its size and SHA-256. `grew` is told of
    each segment written (a worker may be following the write)."""
    limit = services.settings.max_upload_bytes
    digest = BackgroundDigest()
    await writer.write(sealer.header)
    async for chunk in body:
        if sealer.plaintext_size + len(chunk) > limit:
            raise UploadTooLarge()
        metrics.RECEIVED_BYTES.inc(len(chunk))
        await digest.update(chunk)
        # Each segment is sealed into one reused buffer and written out before the next.
        for segment in sealer.feed(chunk):
            await writer.write(segment)
            if grew is not None:
                grew()
    if declared_size is not None and sealer.plaintext_size != declared_size:
        raise UploadAborted("the body was shorter than its Content-Length; nothing was kept")
    await writer.write(sealer.finish())
    return sealer.plaintext_size, await digest.digest()


async def wait_until_settled(services: Services, link_id: str, at_most: float) -> LinkState:
    """Wait (holding no database connection) until the link is no longer pending.

    Returns the link's state at the end: `ready`, `failed`, or still `pending` on timeout.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + at_most
    async with services.notifier.watching_link(link_id) as settled:
        while True:
            state = await _link_state(services, link_id)
            remaining = deadline - loop.time()
            if state != LinkState.PENDING or remaining <= 0:
                return state
            # Wake on the notification, or re-check now and then in case one was lost.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(settled.wait(), min(remaining, 2.0))
            settled.clear()


async def _link_state(services: Services, link_id: str) -> LinkState:
    async with services.sessions() as session:
        state = await session.scalar(select(Link.state).where(Link.id == link_id))
    return state or LinkState.DELETED
