"""One sealing attempt: open the staged upload, verify it, reseal it under its own key.

The staged object is read as a stream of whole segments, each opened under the staging key
and resealed at once under a fresh data key into `blobs/<blob id>`: memory holds about one
segment whatever the file size. Every staged segment is authenticated (AES-GCM under the
one-time staging key, its index and last-segment flag in the nonce), so the plaintext is
exactly, and completely, what the API sealed and hashed: the SHA-256 it recorded is not
computed a second time (docs/architecture.md says why). Only when the link has none (an
upload the API received over several requests, or never saw) is it computed here. A
resumable upload is staged as pieces, each a v1 object of its own under the one staging
key: they are opened in order, each against its own header, and resealed as one stream. A
segment that fails, or a staged object of the wrong length, is permanent (retrying would
read the same bytes).

An upload whose body is still arriving (`ClaimedJob.following`) is read from its staging
write as it grows, or into S3 staging piece by piece as the API records each one
(`worker.follow`), so the blob is sealed shortly after the last byte; the attempt then
waits for the API to record the whole body before it may finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from app.crypto import sealing
from app.crypto.digests import BackgroundDigest
from app.crypto.keys import KeyRingError, data_key_context, new_data_key, staging_key_context
from app.services import Services
from app.storage.base import ObjectMissing, ObjectWriter
from app.storage.object_keys import (
    blob_object_key,
    load_pieces,
    piece_object_key,
    staging_object_key,
)
from worker import follow, queue
from worker.queue import ClaimedJob, SealedBlob


class PermanentFailure(Exception):
    """The job can never succeed (corrupt or missing staging data): fail it now."""


async def clean_previous_attempt(services: Services, job: ClaimedJob) -> None:
    """Remove what an earlier, dead attempt at this job may have left in the blob store."""
    if job.previous_blob_id is not None:
        await services.blobs.discard(blob_object_key(job.previous_blob_id))


async def seal_attempt(services: Services, job: ClaimedJob) -> SealedBlob:
    """Reseal the job's staged upload into its blob; the object is committed on return."""
    staging_key = _staging_key(services, job)
    # A body still arriving is read as it is staged, not from the pieces listed now.
    sources = [] if job.following else _staged_sources(job)
    data_key = new_data_key()
    key_id, wrapped = services.keys.wrap(data_key, data_key_context(job.blob_id))
    sealer = sealing.SegmentSealer(
        data_key, segment_log2=services.settings.segment_log2, expected_size=job.size
    )
    layout = sealing.Layout(job.size, services.settings.segment_log2)
    writer = await services.blobs.open_writer(
        blob_object_key(job.blob_id), size_hint=layout.ciphertext_size
    )
    try:
        if not await queue.record_upload_id(services, job, writer.upload_id):
            raise queue.LeaseLost()
        # Hashed in a worker thread beside the resealing (the second core), as the API does.
        digest = BackgroundDigest() if job.needs_digest else None
        await writer.write(sealer.header)
        if job.following and job.staging_pieces is not None:
            await _reseal_recorded_pieces(services, job, staging_key, sealer, writer)
        elif job.following:
            await _reseal_arriving(services, job, staging_key, sealer, writer)
        else:
            for key, size, recorded in sources:
                header = recorded or await _read_staging_header(services, key)
                opener = _opener(staging_key, header, size)
                await _reseal(services, key, opener, sealer, writer, digest)
        await writer.write(sealer.finish())
        await writer.commit()
    except BaseException:
        await writer.abort()
        raise
    if job.following:
        # The blob is whole and durable; it becomes the link's only once the API has
        # staged the body and recorded its digest (`queue.finish` checks it too).
        try:
            await follow.until_received(services, job)
        except BaseException:
            # This attempt's own object, which no row will ever name (the upload was
            # cancelled, or the lease lost): nothing else can be using it.
            await asyncio.shield(services.blobs.delete(blob_object_key(job.blob_id)))
            raise
    return SealedBlob(
        key_id=key_id,
        wrapped_key=wrapped,
        header=sealer.header,
        segment_size=layout.segment_size,
        ciphertext_size=layout.ciphertext_size,
        sha256=await digest.digest() if digest is not None else None,
    )


def _staging_key(services: Services, job: ClaimedJob) -> bytes:
    try:
        return services.keys.unwrap(
            job.staging_key_id, job.staging_wrapped_key, staging_key_context(job.id)
        )
    except KeyRingError as error:
        raise PermanentFailure(f"staging key cannot be unwrapped: {error}") from None


def _staged_sources(job: ClaimedJob) -> list[tuple[str, int, bytes | None]]:
    """The staged objects to read in order: key, plaintext size, and the header recorded
    for it (None: read it from the object). That is the upload's one object, or a resumable
    upload's pieces, each a v1 object under the staging key whose header, with its own
    nonce prefix, the row recorded: pieces swapped in the store fail to open."""
    pieces = load_pieces(job.staging_pieces)
    if pieces is None:
        return [(staging_object_key(job.id), job.size, None)]
    if sum(piece.size for piece in pieces) != job.size:
        raise PermanentFailure("the staged pieces do not add up to the upload's size")
    return [(piece_object_key(job.id, piece.id), piece.size, piece.header) for piece in pieces]


async def _read_staging_header(services: Services, key: str) -> bytes:
    try:
        chunks = [bytes(c) async for c in services.staging.stream(key, 0, 16)]
    except ObjectMissing:
        raise PermanentFailure("the staged upload is missing") from None
    return b"".join(chunks)


def _opener(staging_key: bytes, header: bytes, size: int) -> sealing.SegmentOpener:
    try:
        return sealing.SegmentOpener(staging_key, header, size)
    except sealing.SealError as error:
        raise PermanentFailure(f"staged upload has a bad header: {error}") from None


async def _reseal_arriving(
    services: Services,
    job: ClaimedJob,
    staging_key: bytes,
    sealer: sealing.SegmentSealer,
    writer: ObjectWriter,
) -> None:
    """Reseal the upload's staged object while the API still writes it, each segment as
    soon as it is whole. The API hashes the body itself, so no digest is computed here."""
    try:
        staged = await services.staging.open_growing(staging_object_key(job.id))
    except ObjectMissing:
        # No write under way and nothing committed: the upload was aborted.
        raise queue.LeaseLost() from None
    try:
        async with follow.following(services, job, staged) as follower:
            opener = _opener(staging_key, await follower.header(), job.size)
            plain_buffer = bytearray(opener.layout.segment_size)
            index = 0
            async for sealed in follower.segments(opener.layout):
                try:
                    plain = opener.open_into(index, sealed, plain_buffer)
                except sealing.SealError as error:
                    raise PermanentFailure(f"staged segment {index} failed: {error}") from None
                for segment in sealer.feed(plain):
                    await writer.write(segment)
                index += 1
    finally:
        await staged.close()


async def _reseal_recorded_pieces(
    services: Services,
    job: ClaimedJob,
    staging_key: bytes,
    sealer: sealing.SegmentSealer,
    writer: ObjectWriter,
) -> None:
    """Reseal the pieces of an upload staged in S3 while the API still stages it, each as
    soon as it is recorded, streamed a segment at a time (always from the first piece: an
    earlier attempt's blob is discarded). The API hashes the body itself."""
    resealed = 0
    async for piece in follow.recorded_pieces(services, job):
        resealed += piece.size
        if resealed > job.size:
            raise PermanentFailure("the staged pieces add up to more than the upload's size")
        opener = _opener(staging_key, piece.header, piece.size)
        try:
            await _reseal(
                services, piece_object_key(job.id, piece.id), opener, sealer, writer, None
            )
        except PermanentFailure:
            if await queue.held_state(services, job) is None:
                # The upload was cancelled meanwhile, its pieces with it: not a failure.
                raise queue.LeaseLost() from None
            raise
    if resealed != job.size:
        raise PermanentFailure("the staged pieces do not add up to the upload's size")


async def _present(chunks: AsyncIterator[bytes | memoryview]) -> AsyncIterator[bytes | memoryview]:
    """`chunks`, a missing object being permanent (a piece deleted from the store)."""
    try:
        async for chunk in chunks:
            yield chunk
    except ObjectMissing:
        raise PermanentFailure("a staged piece of the upload is missing") from None


async def _reseal(
    services: Services,
    key: str,
    opener: sealing.SegmentOpener,
    sealer: sealing.SegmentSealer,
    writer: ObjectWriter,
    digest: BackgroundDigest | None,
) -> None:
    layout = opener.layout
    # Each staged segment is opened before the next is asked for (`stream`: read in place
    # from memory, or one ahead from S3); the plaintext and the sealed segment each live in
    # one reused buffer, so no size of file allocates more.
    chunks = services.staging.stream(
        key,
        sealing.HEADER_SIZE,
        layout.ciphertext_size - sealing.HEADER_SIZE,
        chunk_size=layout.segment_size + sealing.TAG_SIZE,
    )
    plain_buffer = bytearray(layout.segment_size)
    index = 0
    try:
        async for sealed in _present(chunks):
            try:
                plain = opener.open_into(index, sealed, plain_buffer)
            except sealing.SealError as error:
                raise PermanentFailure(f"staged segment {index} failed: {error}") from None
            if digest is not None:
                # A copy: `plain` is a view of the buffer the next segment reuses.
                await digest.update(bytes(plain))
            for segment in sealer.feed(plain):
                await writer.write(segment)
            index += 1
    finally:
        # A read left early holds a file or an HTTP body open until garbage collection.
        await chunks.aclose()
    if index != layout.segment_count:
        raise PermanentFailure("the staged upload is shorter than recorded")
