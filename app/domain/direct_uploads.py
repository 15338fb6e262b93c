"""Direct-to-storage uploads (S3 staging only): the client seals, S3 stores, the API decides.

Creation admits the upload like a PUT (policy, size, quota, storage cap), generates the
one-time staging key and the blob header, wraps the key as a PUT's job row would, starts
an S3 multipart upload under `staging/<job id>` and answers with presigned UploadPart
URLs. The client seals part k (format v1, segments indexed over the whole file) under the
staging key and PUTs it to S3: no plaintext byte reaches the bucket, and none crosses an
API process. Completion checks with S3 (ListParts) that every part is there with its
sealed size, completes the multipart upload into the staged object the worker reads, and
writes the pending link and its queued job exactly as a PUT does. The worker opens every
segment under the staging key: a tampered or foreign part fails its tag, and the job and
link fail without serving a byte. An upload idle for `SEALDROP_UNFINISHED_UPLOAD_SECONDS`
(by S3's newest part) is removed by the janitor with everything it staged.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.crypto import sealing
from app.crypto.keys import new_data_key, staging_key_context
from app.crypto.tokens import is_token_shaped, log_name, new_id, new_token, token_hash
from app.db.clock import as_utc, db_now, db_now_plus, seconds
from app.db.models import (
    DirectUpload,
    DirectUploadState,
    Job,
    JobState,
    Link,
    LinkState,
    Uploader,
)
from app.db.session import transaction
from app.domain import storage_cap, upload_policy, upload_quota, uploads
from app.domain.upload_rows import CreatedLink, UploadOptions
from app.domain.uploaders import Admitted, admitted
from app.errors import BadRequest, Conflict, UploaderRefused, UploadNotFound
from app.infra import metrics
from app.services import Services
from app.storage.object_keys import staging_object_key
from app.storage.s3_direct import S3Direct, UploadedPart, UploadMissing

log = logging.getLogger("sealdrop.direct")

MIB = 1 << 20
MIN_PART_BYTES = 5 * MIB  # S3's smallest part (all but the last)
# Fewer parts than S3's 10 000, so that the answer listing every part's URL stays small.
MAX_PARTS = 1000
BATCH = 100


@dataclass(frozen=True, slots=True)
class PartUrl:
    """Where to PUT one sealed part."""

    number: int
    url: str


@dataclass(frozen=True, slots=True)
class Created:
    """The answer to a creation: the staging key in clear (again only to the holder of
    the upload id, in `status`)."""

    id: str
    staging_key: bytes
    header: bytes
    plan: sealing.PartPlan
    parts: list[PartUrl]
    urls_expire_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Status:
    """What S3 holds of an unfinished upload, and fresh URLs for the parts still missing;
    and what a client needs to seal them: the staging key and header."""

    id: str
    size: int
    staging_key: bytes
    header: bytes
    plan: sealing.PartPlan
    done: list[UploadedPart]
    parts: list[PartUrl]
    urls_expire_at: datetime
    expires_at: datetime


def target(services: Services) -> S3Direct | None:
    """The staging bucket's direct uploads, or None when staging is not on S3."""
    if not available(services):
        return None  # the embedded mode never loads boto3
    from app.storage.s3 import S3Store

    staging = services.staging
    if not isinstance(staging, S3Store):
        return None
    return staging.direct(services.settings.direct_endpoint_url)


def available(services: Services) -> bool:
    """Whether this server offers direct uploads (discovery's `direct` key)."""
    return services.settings.resolved_staging_url.startswith("s3://")


def browser_origins(services: Services) -> list[str]:
    """Where a page's direct upload sends its parts (for its connect-src); none without S3."""
    found = target(services)
    return found.browser_origins if found is not None else []


def require_target(services: Services) -> S3Direct:
    found = target(services)
    if found is None:
        raise UploadNotFound(
            "this server stages uploads locally: it has no direct uploads (use PUT or tus)"
        )
    return found


def part_size_for(size: int, segment_log2: int) -> int:
    """Whole segments, at least S3's 5 MiB, and few enough parts (at most 1 000)."""
    segment = 1 << segment_log2
    wanted = max(MIN_PART_BYTES, -(-size // MAX_PARTS))
    return -(-wanted // segment) * segment


async def create(
    services: Services, options: UploadOptions, size: int, uploader: Admitted | None
) -> Created:
    """Admit an upload of `size` bytes as a PUT would, and start it in S3."""
    direct = require_target(services)
    if size < 0:
        raise BadRequest("size must be a whole number of bytes")
    uploads.check_declared_size(size, services)
    upload_policy.check_declared_size(size, uploader)
    settings = services.settings
    log2 = settings.segment_log2
    plan = sealing.PartPlan(size, part_size_for(size, log2), log2)
    job_id, upload_id = new_id(), new_token()
    reservation = storage_cap.Reservation(services, job_id=job_id)
    s3_upload_id: str | None = None
    key = staging_object_key(job_id)
    try:
        async with upload_quota.allowance(services, uploader, size) as allowance:
            await reservation.cover(size, exact=True)
            password_hash = (
                await services.passwords.hash(options.password)
                if options.password is not None
                else None
            )
            staging_key = new_data_key()
            key_id, wrapped = services.keys.wrap(staging_key, staging_key_context(job_id))
            header = sealing.make_header(log2, sealing.new_nonce_prefix())
            s3_upload_id = await direct.start(key)
            expires_at = await _insert_row(
                services,
                DirectUpload(
                    job_id=job_id,
                    id_hash=token_hash(upload_id),
                    s3_upload_id=s3_upload_id,
                    state=DirectUploadState.OPEN,
                    size=size,
                    part_size=plan.part_size,
                    segment_log2=log2,
                    staging_key_id=key_id,
                    staging_wrapped_key=wrapped,
                    header=header,
                    filename=options.filename,
                    content_type=options.content_type,
                    ttl_seconds=options.ttl_seconds,
                    max_ttl_seconds=upload_policy.max_ttl(settings, uploader),
                    max_downloads=options.max_downloads,
                    password_hash=password_hash,
                    uploader_id=uploader.id if uploader else None,
                    quota_day=allowance.day,
                ),
            )
            allowance.used = size  # granted now: the bytes go to S3 without us
    except BaseException:
        if s3_upload_id is not None:
            await asyncio.shield(direct.abort(key, s3_upload_id))
        await asyncio.shield(reservation.release())
        raise
    numbers = list(range(1, plan.part_count + 1))
    urls, urls_expire_at = await _presign(services, direct, key, s3_upload_id, numbers)
    log.info("direct upload started job=%s size=%d parts=%d", job_id, size, plan.part_count)
    return Created(
        id=upload_id,
        staging_key=staging_key,
        header=header,
        plan=plan,
        parts=urls,
        urls_expire_at=urls_expire_at,
        expires_at=expires_at,
    )


async def _insert_row(services: Services, row: DirectUpload) -> datetime:
    deadline = db_now_plus(seconds(services.settings.max_upload_seconds))
    async with transaction(services.sessions) as session:
        row.deadline_at = deadline
        session.add(row)
        await session.flush()
        found = await session.scalar(
            select(DirectUpload.deadline_at).where(DirectUpload.job_id == row.job_id)
        )
    assert found is not None
    return as_utc(found)


async def _presign(
    services: Services, direct: S3Direct, key: str, s3_upload_id: str, numbers: list[int]
) -> tuple[list[PartUrl], datetime]:
    settings = services.settings
    # Never longer than an idle upload lives: no part may arrive after its upload went.
    expires_in = int(min(settings.direct_url_seconds, settings.unfinished_upload_seconds))
    # The signature's clock is this process's: so is the expiry told to the client.
    expire_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=expires_in)
    signed = await direct.presign_parts(key, s3_upload_id, numbers, expires_in)
    return [PartUrl(number, signed[number]) for number in numbers], expire_at


async def _open_row(services: Services, upload_id: str) -> DirectUpload:
    if not is_token_shaped(upload_id):
        raise UploadNotFound()
    async with services.sessions() as session:
        row = await session.scalar(
            select(DirectUpload).where(DirectUpload.id_hash == token_hash(upload_id))
        )
    if row is None:
        raise UploadNotFound()
    return row


def _plan(row: DirectUpload) -> sealing.PartPlan:
    return sealing.PartPlan(row.size, row.part_size, row.segment_log2)


async def status(services: Services, upload_id: str) -> Status:
    """The parts S3 holds, fresh URLs for the others, the staging key and header (resuming)."""
    direct = require_target(services)
    row = await _open_row(services, upload_id)
    key = staging_object_key(row.job_id)
    plan = _plan(row)
    try:
        listed = await direct.list_parts(key, row.s3_upload_id)
    except UploadMissing:
        raise UploadNotFound() from None
    chosen, ambiguous = _newest(plan, listed)
    good = [part for number, part in sorted(chosen.items()) if number not in ambiguous]
    missing = sorted(set(range(1, plan.part_count + 1)) - {part.number for part in good})
    urls, urls_expire_at = await _presign(services, direct, key, row.s3_upload_id, missing)
    await _touch(services, row.job_id)
    return Status(
        id=upload_id,
        size=row.size,
        # The id is the capability to write this upload (and to complete it into a link
        # whose file its holder can read): the key it seals under adds no power, and a
        # client that kept only the id (a page after a reload) can go on sealing.
        staging_key=services.keys.unwrap(
            row.staging_key_id, row.staging_wrapped_key, staging_key_context(row.job_id)
        ),
        header=row.header,
        plan=plan,
        done=good,
        parts=urls,
        urls_expire_at=urls_expire_at,
        expires_at=as_utc(row.deadline_at),
    )


def _fits(plan: sealing.PartPlan, part: UploadedPart) -> bool:
    return 1 <= part.number <= plan.part_count and part.size == plan.sealed_size(part.number)


async def _touch(services: Services, job_id: str) -> None:
    async with transaction(services.sessions) as session:
        await session.execute(
            update(DirectUpload)
            .where(DirectUpload.job_id == job_id)
            .values(last_activity_at=db_now())
        )


@metrics.count_outcomes(metrics.UPLOADS, success="created")
async def complete(services: Services, upload_id: str) -> tuple[CreatedLink, str]:
    """Check the parts with S3, complete the staged object, queue its job as a PUT does.

    Returns the created link and its file name. Conflict (409) while parts are missing or
    of the wrong size (the upload stays open), or while another request completes it.
    """
    direct = require_target(services)
    row = await _open_row(services, upload_id)
    if not await _set_state(
        services, row.job_id, DirectUploadState.OPEN, DirectUploadState.COMPLETING
    ):
        raise Conflict("this upload is being completed by another request")
    key = staging_object_key(row.job_id)
    try:
        # Refused now (revoked, too many live links), the upload stays open for a retry;
        # the transaction that writes the link checks again.
        await _check_uploader(services, row)
        try:
            listed = await direct.list_parts(key, row.s3_upload_id)
        except UploadMissing:
            raise UploadNotFound() from None
        parts = _check_parts(_plan(row), listed)
        await direct.complete(key, row.s3_upload_id, parts)
    except BaseException:
        await asyncio.shield(
            _set_state(services, row.job_id, DirectUploadState.COMPLETING, DirectUploadState.OPEN)
        )
        raise
    try:
        created = await _create_rows(services, row)
    except BaseException:
        # The multipart upload is spent: nothing can resume it. Remove what it staged
        # (the janitor may have taken the row already; the object goes all the same).
        await asyncio.shield(_remove(services, row, abort=False))
        await asyncio.shield(services.staging.delete(key))
        raise
    await services.cache.forget(token_hash(created.token))
    await services.notifier.job_queued()
    log.info(
        "direct upload completed link=%s size=%d", log_name(token_hash(created.token)), row.size
    )
    return created, row.filename


async def _check_uploader(services: Services, row: DirectUpload) -> None:
    if row.uploader_id is None:
        return
    async with transaction(services.sessions, immediate=True) as session:
        await _hold_uploader(session, row.uploader_id)


async def _hold_uploader(session: AsyncSession, uploader_id: str) -> None:
    """The uploader admitted at creation: still allowed, and within its live links."""
    found = await session.get(Uploader, uploader_id)
    if found is None:
        raise UploaderRefused("uploads by this account were stopped by the operator")
    await upload_policy.hold_for_link(session, admitted(found))


async def _set_state(
    services: Services, job_id: str, before: DirectUploadState, after: DirectUploadState
) -> bool:
    async with transaction(services.sessions, immediate=True) as session:
        result = await session.execute(
            update(DirectUpload)
            .where(DirectUpload.job_id == job_id, DirectUpload.state == before)
            .values(state=after, last_activity_at=db_now())
        )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _newest(
    plan: sealing.PartPlan, listed: list[UploadedPart]
) -> tuple[dict[int, UploadedPart], list[int]]:
    """Per part number, the newest upload of the right sealed size; and the numbers whose
    newest uploads differ and cannot be told apart.

    AWS keeps only a part's last upload; SeaweedFS keeps and lists every one, with times
    to the second. The worker authenticates whatever is chosen, so a wrong choice can only
    fail the link, never serve a wrong byte; an ambiguous part is refused here instead.
    """
    chosen: dict[int, UploadedPart] = {}
    ambiguous: set[int] = set()
    for part in sorted(listed, key=lambda p: (p.number, p.modified)):
        if not _fits(plan, part):
            continue
        before = chosen.get(part.number)
        if before is not None and before.modified == part.modified:
            if before.etag != part.etag:
                ambiguous.add(part.number)
            continue
        ambiguous.discard(part.number)
        chosen[part.number] = part
    return chosen, sorted(ambiguous)


def _check_parts(plan: sealing.PartPlan, listed: list[UploadedPart]) -> list[UploadedPart]:
    chosen, ambiguous = _newest(plan, listed)
    numbers = range(1, plan.part_count + 1)
    wrong = sorted({p.number for p in listed if not _fits(plan, p)} - set(chosen))
    missing = [n for n in numbers if n not in chosen and n not in wrong]
    problems = []
    if missing:
        problems.append(f"missing parts {_short_list(missing)}")
    if wrong:
        problems.append(f"parts of the wrong size {_short_list(wrong)}")
    if ambiguous:
        problems.append(
            f"parts sent twice with different bytes in the same second {_short_list(ambiguous)}"
            " (send them again)"
        )
    if problems:
        raise Conflict(f"the upload is not complete: {'; '.join(problems)}")
    return [chosen[n] for n in numbers]


def _short_list(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:10])
    return shown + (f" and {len(numbers) - 10} more" if len(numbers) > 10 else "")


async def _create_rows(services: Services, row: DirectUpload) -> CreatedLink:
    token, manage_token, link_id = new_token(), new_token(), new_id()
    async with transaction(services.sessions, immediate=True) as session:
        gone = await session.execute(
            delete(DirectUpload).where(
                DirectUpload.job_id == row.job_id,
                DirectUpload.state == DirectUploadState.COMPLETING,
            )
        )
        if gone.rowcount != 1:  # type: ignore[attr-defined]
            raise UploadNotFound("this upload expired or was cancelled meanwhile")
        if row.uploader_id is not None:
            await _hold_uploader(session, row.uploader_id)
        await session.execute(
            insert(Link).values(
                id=link_id,
                token_hash=token_hash(token),
                manage_token_hash=token_hash(manage_token),
                filename=row.filename,
                content_type=row.content_type,
                size=row.size,
                sha256=None,  # the API never saw the plaintext: the worker computes it
                password_hash=row.password_hash,
                max_downloads=row.max_downloads,
                expires_at=db_now_plus(seconds(row.ttl_seconds)),
                max_expires_at=db_now_plus(seconds(row.max_ttl_seconds)),
                state=LinkState.PENDING,
                uploader_id=row.uploader_id,
            )
        )
        await session.execute(
            insert(Job).values(
                id=row.job_id,
                kind="seal",
                link_id=link_id,
                state=JobState.QUEUED,
                staging_key_id=row.staging_key_id,
                staging_wrapped_key=row.staging_wrapped_key,
            )
        )
        await storage_cap.hold_for_job(session, row.job_id, row.size, row.segment_log2)
        expires_at = (
            await session.execute(select(Link.expires_at).where(Link.id == link_id))
        ).scalar_one()
    return CreatedLink(
        link_id=link_id,
        token=token,
        manage_token=manage_token,
        expires_at=as_utc(expires_at),
        state=LinkState.PENDING,
        size=row.size,
        sha256=None,
    )


async def cancel(services: Services, upload_id: str) -> None:
    """Abort the upload in S3 and forget it (the capability is its id)."""
    require_target(services)
    row = await _open_row(services, upload_id)
    if not await _remove(services, row, abort=True, only_open=True):
        raise Conflict("this upload is being completed")
    log.info("direct upload cancelled job=%s", row.job_id)


async def _remove(
    services: Services, row: DirectUpload, *, abort: bool, only_open: bool = False
) -> bool:
    """Delete the row (if it is still as seen), give back its reservation and the quota it
    did not use, then abort and delete what it staged."""
    condition = [DirectUpload.job_id == row.job_id]
    if only_open:
        condition.append(DirectUpload.state == DirectUploadState.OPEN)
    key = staging_object_key(row.job_id)
    direct = target(services)
    # What the client sent counts against its daily bytes, cancelled or not; the rest
    # of the size taken at creation is given back. A completed upload sent it all.
    sent = await _bytes_sent(direct, key, row) if abort else row.size
    async with transaction(services.sessions, immediate=True) as session:
        gone = (
            await session.execute(
                delete(DirectUpload)
                .where(*condition)
                .returning(DirectUpload.uploader_id, DirectUpload.quota_day, DirectUpload.size)
            )
        ).one_or_none()
        if gone is None:
            return False
        await storage_cap.release_in_flight(session, row.job_id)
        if gone.uploader_id is not None and gone.quota_day is not None:
            unsent = max(0, gone.size - sent)
            await upload_quota.give_back_day(session, gone.uploader_id, gone.quota_day, unsent)
    if abort and direct is not None:
        await direct.abort(key, row.s3_upload_id)
    await services.staging.delete(key)
    return True


async def _bytes_sent(direct: S3Direct | None, key: str, row: DirectUpload) -> int:
    """The bytes S3 holds in the upload's parts (each part number once, its largest)."""
    if direct is None:
        return 0
    try:
        listed = await direct.list_parts(key, row.s3_upload_id)
    except UploadMissing:
        return 0
    largest: dict[int, int] = {}
    for part in listed:
        largest[part.number] = max(part.size, largest.get(part.number, 0))
    return sum(largest.values())


async def expire_idle(services: Services) -> int:
    """Remove direct uploads with no new part for the unfinished-upload time (or past
    their deadline): abort the multipart upload, delete the staged object and the row.

    S3 is asked for the newest part first: parts go there without the API seeing them.
    """
    direct = target(services)
    idle = services.settings.unfinished_upload_seconds
    async with services.sessions() as session:
        rows = (
            await session.scalars(
                select(DirectUpload)
                .where(
                    (DirectUpload.last_activity_at < db_now_plus(seconds(-idle)))
                    | (DirectUpload.deadline_at < db_now())
                )
                .limit(BATCH)
            )
        ).all()
    removed = 0
    for row in rows:
        still_open = direct is not None and row.state == DirectUploadState.OPEN
        if still_open and await _recently_active(direct, row, idle):  # type: ignore[arg-type]
            await _touch(services, row.job_id)
            continue
        if await _remove(services, row, abort=True):
            removed += 1
            log.info("direct upload expired job=%s", row.job_id)
    return removed


async def _recently_active(direct: S3Direct, row: DirectUpload, idle: int) -> bool:
    if as_utc(row.deadline_at) <= datetime.now(UTC):
        return False
    try:
        parts = await direct.list_parts(staging_object_key(row.job_id), row.s3_upload_id)
    except UploadMissing:
        return False
    newest = max((part.modified for part in parts), default=None)
    # The store's clock against this pod's: the same rule as the janitor's sweep.
    return newest is not None and newest > datetime.now(UTC) - timedelta(seconds=idle)


async def known_job(services: Services, job_id: str) -> bool:
    """Whether a direct upload (unfinished or being completed) owns `staging/<job_id>`."""
    async with services.sessions() as session:
        found = await session.scalar(
            select(DirectUpload.job_id).where(DirectUpload.job_id == job_id)
        )
    return found is not None
