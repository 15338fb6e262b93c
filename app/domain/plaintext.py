"""The decrypted bytes of a byte range of a link's blob, reading only the segments needed.

The first needed segment is fetched and authenticated before the caller sends a status
line, so most failures still become a clean error response. A later failure raises from
the iterator, and the HTTP layer cuts the connection: the client sees a short transfer,
never wrong bytes reported as a success (DESIGN §4).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from app.crypto import sealing
from app.crypto.keys import KeyRingError, data_key_context
from app.domain import links
from app.domain.links import BlobRef, LinkView
from app.domain.ranges import ByteRange
from app.errors import BlobCorrupted, LinkGone
from app.services import Services
from app.storage.base import ObjectMissing
from app.storage.object_keys import blob_object_key

# The downloads' logger still: these lines read and are filtered as before the move.
log = logging.getLogger("sealdrop.downloads")
# Plaintext buffers one download keeps for reuse: the one being filled, and one or two
# that the HTTP server may still be sending from.
KEPT_BUFFERS = 3


class ReusableBuffers:
    """Plaintext buffers of one size, each handed out again once no view of it is alive.

    A segment decrypted into a new `bytes` costs its allocation and a zero-fill of 1 MiB
    (cryptography fills its output before writing it), a twentieth of a download's CPU.
    Decrypting into a reused buffer saves that, but the HTTP server may keep a view of
    what the socket did not take yet (uvloop holds the memoryview it was given until it
    is written), and overwriting it would send the next segment's bytes in its place. So
    a buffer is reused only when the buffer protocol says that no view of it is alive
    anywhere: a bytearray cannot be resized while any memoryview of it (a slice, a cast,
    a C extension's `Py_buffer`) exists. Otherwise a new one is made, and up to `keep` of
    them are kept. Callers hand out views only, never the bytearray itself.
    """

    def __init__(self, size: int, keep: int = KEPT_BUFFERS) -> None:
        self._size = size
        self._keep = keep
        self._buffers: list[bytearray] = []

    def take(self) -> bytearray:
        """A buffer of the size of which no view is alive."""
        for buffer in self._buffers:
            if _unviewed(buffer):
                return buffer
        buffer = bytearray(self._size + 1)  # one spare byte for `_unviewed`'s test
        del buffer[-1]
        if len(self._buffers) < self._keep:
            self._buffers.append(buffer)
        return buffer


def _unviewed(buffer: bytearray) -> bool:
    """Whether no memoryview of `buffer` is alive: resizing it is refused while one is.

    Growing by one byte (into the spare one `take` allocated) and back stays within the
    allocation: no copy, a fraction of a microsecond.
    """
    try:
        buffer.append(0)
    except BufferError:
        return False
    del buffer[-1]
    return True


class PlaintextStream:
    """The decrypted bytes of one range, with its first segment already authenticated.

    A chunk may be a view of a buffer that a later chunk reuses once nothing refers to it:
    whoever keeps a chunk past the next one keeps it intact (`ReusableBuffers`).
    """

    def __init__(self, first: bytes | memoryview, rest: AsyncIterator[memoryview]) -> None:
        self._first = first
        self._rest = rest

    async def __aiter__(self) -> AsyncIterator[bytes | memoryview]:
        if self._first:
            yield self._first
        self._first = b""
        async for chunk in self._rest:
            yield chunk

    async def aclose(self) -> None:
        """Stop reading the object early (client gone)."""
        closer = getattr(self._rest, "aclose", None)
        if closer is not None:
            await closer()


async def open_stream(
    services: Services, link: LinkView, blob: BlobRef, byte_range: ByteRange
) -> PlaintextStream:
    """Start reading `byte_range` of the link's blob, before any byte is sent.

    Raises BlobCorrupted when the blob cannot be opened or authenticated, and LinkGone when
    its object is missing because the link was purged since it was resolved.
    """
    try:
        data_key = services.keys.unwrap(blob.key_id, blob.wrapped_key, data_key_context(blob.id))
        opener = sealing.SegmentOpener(data_key, blob.header, link.size)
    except (KeyRingError, sealing.SealError) as error:
        log.error("blob %s cannot be opened: %s", blob.id, error)
        raise BlobCorrupted() from None
    chunks = _plaintext(services, blob, opener, byte_range)
    first: bytes | memoryview
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        first = b""
    except sealing.SealError as error:
        log.error("blob %s failed authentication: %s", blob.id, error)
        raise BlobCorrupted() from None
    except ObjectMissing:
        # The janitor deletes the blob row, then the object: a link resolved just before
        # its purge finds the object gone. Only a link that still serves this blob has
        # really lost it.
        if not await links.serves_blob(services, link.id, blob.id):
            raise LinkGone() from None
        log.error("blob %s: its object is missing", blob.id)
        raise BlobCorrupted() from None
    return PlaintextStream(first, chunks)


async def _plaintext(
    services: Services, blob: BlobRef, opener: sealing.SegmentOpener, byte_range: ByteRange
) -> AsyncIterator[memoryview]:
    layout = opener.layout
    segments = layout.segments_for(byte_range.start, byte_range.stop)
    offset, length = layout.sealed_span(segments)
    if segments.stop == layout.segment_count:
        # One byte past the recorded end: an object longer than recorded shows itself (that
        # byte joins the last segment, whose tag then fails, or comes after it).
        length += 1
    # The object's own header is not read: every segment is authenticated with the header
    # recorded in the database as associated data, so an edited copy cannot change a byte.
    # Each segment is decrypted (into a buffer no one else holds) before the next is read.
    sealed_chunks = services.blobs.stream(
        blob_object_key(blob.id), offset, length, chunk_size=layout.segment_size + sealing.TAG_SIZE
    )
    buffers = ReusableBuffers(min(layout.segment_size, layout.plaintext_size))
    index = segments.start
    try:
        async for sealed in sealed_chunks:
            if index >= segments.stop:
                raise sealing.SealError("the stored blob is longer than recorded")
            plain = opener.open_into(index, sealed, buffers.take())
            last = index == layout.segment_count - 1
            if last and await anext(sealed_chunks, None) is not None:
                # A full last segment came whole: the byte past the end came apart, and must
                # be seen before the file's last bytes go out as a complete download.
                raise sealing.SealError("the stored blob is longer than recorded")
            seg_start = index * layout.segment_size
            yield plain[max(byte_range.start - seg_start, 0) : byte_range.stop - seg_start]
            # Hold no view of the buffer here: if the server is done with it, the next
            # segment is decrypted into the same memory (still in the CPU's cache).
            del plain
            index += 1
    finally:
        # A read left early (bad tag, client gone) holds a file or an HTTP body open.
        await sealed_chunks.aclose()
    if index != segments.stop:
        raise sealing.SealError("the stored blob is shorter than recorded")
