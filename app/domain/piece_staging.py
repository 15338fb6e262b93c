"""Staging a PUT of a known length as pieces that a worker in another process can follow.

An S3 multipart upload cannot be read before it is completed, so a body staged as one
object could only be resealed once it had all arrived. Into such a store
(`ObjectStore.follows_pieces`) the body is staged instead as a series of pieces of
`PIECE_BYTES` (more past 16 GiB; the last one shorter): each is a v1 object of its own
under the upload's staging key (`staging/<job id>.<piece id>`, its own header and nonce
prefix, as a resumable upload's pieces), written as a multipart upload of small parts and
completed as soon as it is whole. Each committed piece is recorded on the job row
(`arriving.record_pieces`), and the worker following the job reseals it while the next
one arrives.

Memory stays that of one object's write: a piece is streamed as parts of 5 MiB
(`app.storage.s3_writer`), never held whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from app.crypto import sealing
from app.crypto.digests import BackgroundDigest
from app.crypto.tokens import new_id
from app.domain import arriving
from app.errors import UploadAborted, UploadTooLarge
from app.infra import metrics
from app.services import Services
from app.storage.base import ObjectWriter
from app.storage.object_keys import Piece, piece_object_key

# Whole segments of any allowed size (64 KiB to 1 MiB), so no segment straddles two
# pieces; large enough that a piece's write (three full 5 MiB parts) and its row update
# cost little beside its bytes, small enough that the worker trails the body closely.
PIECE_BYTES = 16 * 1024 * 1024
# Every piece is listed in the job's row, rewritten as each one is recorded: past this
# many, pieces grow (by whole `PIECE_BYTES`) so that the row stays under about 80 KB.
MAX_PIECES = 1024


def piece_bytes(declared_size: int) -> int:
    """The plaintext size of each piece (the last one shorter) of an upload of this size:
    `PIECE_BYTES`, or a multiple of it that keeps to `MAX_PIECES`."""
    multiple = -(-declared_size // (PIECE_BYTES * MAX_PIECES))
    return PIECE_BYTES * max(1, multiple)


async def stage_pieces(
    services: Services,
    job_id: str,
    staging_key: bytes,
    body: AsyncIterator[sealing.Buffer],
    declared_size: int,
) -> bytes:
    """Seal `body` (exactly `declared_size` bytes) into pieces of job `job_id`, each
    committed as soon as it is whole, then recorded on the job's row; the body's SHA-256.

    UploadAborted if the body ends early. On any failure the piece being written is
    aborted; pieces already committed are the caller's to delete (it knows the job).
    """
    each = piece_bytes(declared_size)
    digest = BackgroundDigest()
    pieces: list[Piece] = []
    staged = 0
    writer: ObjectWriter | None = None
    sealer: sealing.SegmentSealer | None = None
    piece_id = ""
    try:
        async for chunk in body:
            view = memoryview(chunk).cast("B")
            if staged + len(view) > declared_size:
                raise UploadTooLarge("the body goes past its Content-Length; nothing was kept")
            metrics.RECEIVED_BYTES.inc(len(view))
            await digest.update(chunk)
            while view:
                if writer is None or sealer is None:
                    piece_id = new_id()
                    size = min(each, declared_size - staged)
                    writer, sealer = await _open_piece(
                        services, job_id, piece_id, staging_key, size
                    )
                room = each - sealer.plaintext_size
                part, view = view[:room], view[room:]
                staged += len(part)
                # Each segment is a view of one reused buffer: written before the next.
                for segment in sealer.feed(part):
                    await writer.write(segment)
                if sealer.plaintext_size == each or staged == declared_size:
                    await writer.write(sealer.finish())
                    await writer.commit()
                    pieces.append(Piece(piece_id, sealer.plaintext_size, sealer.header))
                    writer = sealer = None
                    await arriving.record_pieces(services, job_id, pieces)
        if staged != declared_size:
            raise UploadAborted("the body was shorter than its Content-Length; nothing was kept")
    except BaseException:
        if writer is not None:
            await asyncio.shield(writer.abort())
        raise
    return await digest.digest()


async def _open_piece(
    services: Services, job_id: str, piece_id: str, staging_key: bytes, size: int
) -> tuple[ObjectWriter, sealing.SegmentSealer]:
    """The writer of one piece of `size` plaintext bytes, its header already written."""
    sealer = sealing.SegmentSealer(
        staging_key, segment_log2=services.settings.segment_log2, expected_size=size
    )
    layout = sealing.Layout(size, services.settings.segment_log2)
    writer = await services.staging.open_writer(
        piece_object_key(job_id, piece_id), size_hint=layout.ciphertext_size
    )
    try:
        await writer.write(sealer.header)
    except BaseException:
        await asyncio.shield(writer.abort())
        raise
    return writer, sealer
