"""The sealed blob format, version 1 (DESIGN.md §4): seal, open and read ranges.

A blob is a 16-byte header followed by segments of S plaintext bytes, each sealed with
AES-256-GCM under the blob's data key. The header is every segment's associated data; each
segment's nonce carries the blob's random prefix, the segment's index and a flag marking
the last segment. Bytes in, bytes out: this module does no I/O and keeps no state.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeAlias

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

Buffer: TypeAlias = bytes | bytearray | memoryview

MAGIC = b"SDRP"
VERSION = 1
HEADER_SIZE = 16
TAG_SIZE = 16
NONCE_PREFIX_SIZE = 7
DATA_KEY_SIZE = 32
DEFAULT_SEGMENT_LOG2 = 20
WRITER_SEGMENT_LOG2 = range(16, 21)
READER_SEGMENT_LOG2 = range(16, 25)
MAX_SEGMENT_COUNT = 2**32 - 1

_HEADER = struct.Struct(">4sBB3s7s")
_NONCE_SUFFIX = struct.Struct(">IB")
_ZERO = b"\x00\x00\x00"


class SealError(Exception):
    """A blob, header or stream that does not follow the format, or fails authentication."""


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each segment of a blob lies, from its plaintext size and segment size."""

    plaintext_size: int
    segment_log2: int

    def __post_init__(self) -> None:
        if self.segment_log2 not in READER_SEGMENT_LOG2:
            raise ValueError(f"segment_log2 {self.segment_log2} is outside 16..24")
        if self.plaintext_size < 0:
            raise ValueError("plaintext_size must not be negative")
        if self.segment_count > MAX_SEGMENT_COUNT:
            raise ValueError("too many segments for one blob (n must stay below 2**32)")

    @property
    def segment_size(self) -> int:
        """S, the plaintext bytes of every segment but the last."""
        return 1 << self.segment_log2

    @property
    def segment_count(self) -> int:
        """n = max(1, ceil(size / S)): an empty plaintext is one empty segment."""
        return max(1, -(-self.plaintext_size >> self.segment_log2))

    @property
    def ciphertext_size(self) -> int:
        """C, the whole blob's length: header, plaintext and one tag per segment."""
        return HEADER_SIZE + self.plaintext_size + TAG_SIZE * self.segment_count

    def segment_offset(self, index: int) -> int:
        """Where segment `index` starts in the blob."""
        self._check_index(index)
        return HEADER_SIZE + index * (self.segment_size + TAG_SIZE)

    def plain_length(self, index: int) -> int:
        """How many plaintext bytes segment `index` holds."""
        self._check_index(index)
        if index < self.segment_count - 1:
            return self.segment_size
        return self.plaintext_size - index * self.segment_size

    def sealed_length(self, index: int) -> int:
        """How many blob bytes segment `index` takes: its plaintext length plus the tag."""
        return self.plain_length(index) + TAG_SIZE

    def segments_for(self, start: int, stop: int) -> range:
        """The segments holding plaintext bytes [start, stop); needs 0 <= start < stop <= size."""
        if not 0 <= start < stop <= self.plaintext_size:
            raise ValueError(
                f"range [{start}, {stop}) is empty or outside a plaintext of "
                f"{self.plaintext_size} bytes"
            )
        return range(start >> self.segment_log2, ((stop - 1) >> self.segment_log2) + 1)

    def sealed_span(self, segments: range) -> tuple[int, int]:
        """(offset, length) of the blob bytes holding `segments`, consecutive and non-empty."""
        if not segments or segments.step != 1:
            raise ValueError("sealed_span needs a non-empty range of consecutive segments")
        offset = self.segment_offset(segments[0])
        end = self.segment_offset(segments[-1]) + self.sealed_length(segments[-1])
        return offset, end - offset

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.segment_count:
            raise IndexError(f"segment {index} is outside 0..{self.segment_count - 1}")


def make_header(segment_log2: int, nonce_prefix: bytes) -> bytes:
    """The 16-byte header of a new blob; refuses what a writer may not use."""
    if segment_log2 not in WRITER_SEGMENT_LOG2:
        raise SealError(f"writers use segment_log2 16..20, not {segment_log2}")
    if len(nonce_prefix) != NONCE_PREFIX_SIZE:
        raise SealError(f"the nonce prefix must be {NONCE_PREFIX_SIZE} bytes")
    return _HEADER.pack(MAGIC, VERSION, segment_log2, _ZERO, bytes(nonce_prefix))


def parse_header(header: Buffer) -> tuple[int, bytes]:
    """(segment_log2, nonce prefix) of a v1 header; SealError if it is not one."""
    view = _byte_view(header)
    if len(view) != HEADER_SIZE:
        raise SealError(f"a header is {HEADER_SIZE} bytes, got {len(view)}")
    magic, version, segment_log2, zero, prefix = _HEADER.unpack(view)
    if magic != MAGIC:
        raise SealError("not a sealed blob (wrong magic)")
    if version != VERSION:
        raise SealError(f"unsupported sealed blob version {version}")
    if segment_log2 not in READER_SEGMENT_LOG2:
        raise SealError(f"segment_log2 {segment_log2} is outside 16..24")
    if zero != _ZERO:
        raise SealError("reserved header bytes are not zero")
    return segment_log2, prefix


def new_nonce_prefix() -> bytes:
    """A fresh random nonce prefix: one per blob, so no data key ever repeats a nonce."""
    return secrets.token_bytes(NONCE_PREFIX_SIZE)


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + _NONCE_SUFFIX.pack(index, last)


def _cipher(data_key: Buffer) -> AESGCM:
    # AESGCM also takes 16- and 24-byte keys; the format is AES-256 only.
    if len(data_key) != DATA_KEY_SIZE:
        raise SealError(f"a data key is {DATA_KEY_SIZE} bytes, got {len(data_key)}")
    return AESGCM(data_key)


def _byte_view(data: Buffer) -> memoryview:
    return memoryview(data).cast("B")


class SegmentSealer:
    """Seals a plaintext stream into v1 segments, holding back at most one segment.

    Emit `header` first, then every segment `update` (or `feed`) gives, then what `finish`
    returns. With `expected_size` the stream must be exactly that long, and a full segment
    goes out as soon as it is full; without it (streams of unknown length) the format is
    the same and the caller records `plaintext_size`.
    """

    def __init__(
        self,
        data_key: bytes,
        *,
        segment_log2: int = DEFAULT_SEGMENT_LOG2,
        nonce_prefix: bytes | None = None,
        expected_size: int | None = None,
    ) -> None:
        prefix = new_nonce_prefix() if nonce_prefix is None else nonce_prefix
        self._header = make_header(segment_log2, prefix)
        self._cipher = _cipher(data_key)
        self._prefix = bytes(prefix)
        self._segment_size = 1 << segment_log2
        if expected_size is not None:
            try:
                Layout(expected_size, segment_log2)
            except ValueError as error:
                raise SealError(f"cannot seal {expected_size} bytes: {error}") from None
        self._expected_size = expected_size
        # Plaintext of the segment not sealed yet: it may still turn out to be the last.
        # One fixed buffer, refilled in place, so a stream allocates no plaintext copies.
        self._pending = bytearray(self._segment_size)
        # Where `feed` seals each segment: one buffer, so a stream allocates no ciphertext.
        self._sealed = bytearray(self._segment_size + TAG_SIZE)
        self._filled = 0
        self._index = 0
        self._size = 0
        self._finished = False

    @property
    def header(self) -> bytes:
        """The blob's 16-byte header, to be written before the segments."""
        return self._header

    @property
    def plaintext_size(self) -> int:
        """Plaintext bytes fed so far."""
        return self._size

    def update(self, data: Buffer) -> list[bytes]:
        """Feed plaintext; returns the sealed segments it completed (often none).

        A full segment is held back until one more byte arrives (or `expected_size` says
        more will), because only then is it known not to be the last. The caller may reuse
        `data`'s buffer afterwards.
        """
        return [self._seal_next(plain, last=False) for plain in self._complete_segments(data)]

    def feed(self, data: Buffer) -> Iterator[memoryview]:
        """Feed plaintext like `update`, yielding each sealed segment without allocating.

        Every segment is a view of one buffer that the next step of the iteration
        overwrites: write it out before asking for the next one. Iterate to the end.
        """
        sealed = memoryview(self._sealed)
        for plain in self._complete_segments(data):
            length = len(plain) + TAG_SIZE
            self._cipher.encrypt_into(
                self._next_nonce(last=False), plain, self._header, sealed[:length]
            )
            yield sealed[:length]

    def finish(self) -> bytes:
        """Seal the last segment and return it; the sealer is done afterwards."""
        if self._finished:
            raise SealError("finish() was already called")
        if self._expected_size is not None and self._size != self._expected_size:
            raise SealError(
                f"stream ended after {self._size} bytes, {self._expected_size} were expected"
            )
        self._finished = True
        return self._seal_pending(last=True)

    def _check_can_take(self, length: int) -> None:
        if self._finished:
            raise SealError("update() after finish()")
        size = self._size + length
        if self._expected_size is not None and size > self._expected_size:
            raise SealError(f"stream is longer than the expected {self._expected_size} bytes")
        if -(-size // self._segment_size) > MAX_SEGMENT_COUNT:
            raise SealError("too many segments for one blob (n must stay below 2**32)")

    def _complete_segments(self, data: Buffer) -> Iterator[memoryview]:
        """Take in `data`; yield the plaintext of each segment known now not to be the last.

        A yielded view may be of the pending buffer: it must be sealed before the next step.
        """
        view = _byte_view(data)
        self._check_can_take(len(view))
        end = self._size = self._size + len(view)
        size = self._segment_size
        while view:
            if self._filled == size:
                yield self._take_pending()
            if self._filled == 0 and (
                len(view) > size or (len(view) == size and self._more_after(end))
            ):
                # A whole segment with more data behind it: sealed straight from the input.
                yield view[:size]
                view = view[size:]
                continue
            take = min(size - self._filled, len(view))
            self._pending[self._filled : self._filled + take] = view[:take]
            self._filled += take
            view = view[take:]
        if self._filled == size and self._more_after(end):
            yield self._take_pending()

    def _more_after(self, position: int) -> bool:
        return self._expected_size is not None and position < self._expected_size

    def _take_pending(self) -> memoryview:
        filled, self._filled = self._filled, 0
        return memoryview(self._pending)[:filled]

    def _seal_pending(self, *, last: bool) -> bytes:
        return self._seal_next(self._take_pending(), last=last)

    def _seal_next(self, plaintext: Buffer, *, last: bool) -> bytes:
        return self._cipher.encrypt(self._next_nonce(last=last), plaintext, self._header)

    def _next_nonce(self, *, last: bool) -> bytes:
        nonce = _nonce(self._prefix, self._index, last)
        self._index += 1
        return nonce


class SegmentOpener:
    """Opens the segments of one blob whose plaintext size is known (from the database)."""

    def __init__(self, data_key: bytes, header: Buffer, plaintext_size: int) -> None:
        segment_log2, self._prefix = parse_header(header)
        try:
            self.layout = Layout(plaintext_size, segment_log2)
        except ValueError as error:
            raise SealError(str(error)) from None
        self._header = bytes(header)
        self._cipher = _cipher(data_key)

    def open(self, index: int, sealed: Buffer) -> bytes:
        """The plaintext of segment `index`; SealError unless it is exactly that segment.

        Nothing of a segment whose tag fails is returned.
        """
        view, nonce = self._check(index, sealed)
        try:
            return self._cipher.decrypt(nonce, view, self._header)
        except InvalidTag:
            raise SealError(f"segment {index} failed authentication") from None

    def open_into(self, index: int, sealed: Buffer, buffer: bytearray) -> memoryview:
        """Like `open`, decrypting into `buffer` (at least S bytes) instead of a new object.

        Returns the view of `buffer` that holds the plaintext. On SealError the buffer may
        hold unauthenticated bytes: the caller must not use any of it.
        """
        view, nonce = self._check(index, sealed)
        plain = memoryview(buffer)[: len(view) - TAG_SIZE]
        try:
            self._cipher.decrypt_into(nonce, view, self._header, plain)
        except InvalidTag:
            raise SealError(f"segment {index} failed authentication") from None
        return plain

    def _check(self, index: int, sealed: Buffer) -> tuple[memoryview, bytes]:
        view = _byte_view(sealed)
        expected = self.layout.sealed_length(index)
        if len(view) != expected:
            raise SealError(f"segment {index} is {len(view)} bytes, expected {expected}")
        last = index == self.layout.segment_count - 1
        return view, _nonce(self._prefix, index, last)

    def open_span(self, segments: range, span: Buffer) -> Iterator[bytes]:
        """Open, one by one, `segments` from `span`, the blob bytes `sealed_span` names."""
        offset, length = self.layout.sealed_span(segments)
        view = _byte_view(span)
        if len(view) != length:
            raise SealError(f"span of segments is {len(view)} bytes, expected {length}")
        for index in segments:
            start = self.layout.segment_offset(index) - offset
            yield self.open(index, view[start : start + self.layout.sealed_length(index)])


def seal(
    data_key: bytes,
    plaintext: Buffer,
    *,
    segment_log2: int = DEFAULT_SEGMENT_LOG2,
    nonce_prefix: bytes | None = None,
) -> bytes:
    """The whole sealed blob of `plaintext` (for tests and tools; servers stream)."""
    sealer = SegmentSealer(
        data_key,
        segment_log2=segment_log2,
        nonce_prefix=nonce_prefix,
        expected_size=len(_byte_view(plaintext)),
    )
    segments = sealer.update(plaintext)
    return b"".join([sealer.header, *segments, sealer.finish()])


def _opener_for_blob(data_key: bytes, blob: memoryview, plaintext_size: int) -> SegmentOpener:
    opener = SegmentOpener(data_key, blob[:HEADER_SIZE], plaintext_size)
    if len(blob) != opener.layout.ciphertext_size:
        raise SealError(
            f"blob is {len(blob)} bytes, expected {opener.layout.ciphertext_size} "
            f"for {plaintext_size} plaintext bytes"
        )
    return opener


def open_blob(data_key: bytes, blob: Buffer, plaintext_size: int) -> bytes:
    """The whole plaintext of `blob`; SealError if any part of it is not authentic."""
    view = _byte_view(blob)
    opener = _opener_for_blob(data_key, view, plaintext_size)
    segments = range(opener.layout.segment_count)
    # The span of all segments is the blob after its header.
    return b"".join(list(opener.open_span(segments, view[HEADER_SIZE:])))


def open_range(data_key: bytes, blob: Buffer, plaintext_size: int, start: int, stop: int) -> bytes:
    """Plaintext bytes [start, stop) of `blob`, decrypting only the segments holding them."""
    view = _byte_view(blob)
    opener = _opener_for_blob(data_key, view, plaintext_size)
    layout = opener.layout
    segments = layout.segments_for(start, stop)
    offset, length = layout.sealed_span(segments)
    # Every segment is authenticated before any byte is returned.
    span = view[offset : offset + length]
    parts = [memoryview(plain) for plain in opener.open_span(segments, span)]
    parts[-1] = parts[-1][: stop - segments[-1] * layout.segment_size]
    parts[0] = parts[0][start - segments[0] * layout.segment_size :]
    return b"".join(parts)


# Direct uploads (docs/architecture.md, "Direct-to-storage uploads"): the client seals a
# file in parts, one S3 multipart part each, that concatenate to exactly the blob `seal`
# would make. Part k holds plaintext [(k-1)·part_size, min(k·part_size, size)); part 1 has
# the header in front; segment indices count over the whole file.


@dataclass(frozen=True, slots=True)
class PartPlan:
    """How a file of `size` bytes is cut into parts of `part_size` plaintext bytes (a
    multiple of the segment size), and what each part weighs sealed."""

    size: int
    part_size: int
    segment_log2: int

    def __post_init__(self) -> None:
        segment = 1 << self.segment_log2
        if self.part_size <= 0 or self.part_size % segment:
            raise ValueError("part_size must be a positive multiple of the segment size")
        Layout(self.size, self.segment_log2)  # refuses what no blob can hold

    @property
    def part_count(self) -> int:
        """How many parts: an empty file is one part (the header and one empty segment)."""
        return max(1, -(-self.size // self.part_size))

    def plain_range(self, number: int) -> tuple[int, int]:
        """[start, stop) of the plaintext in part `number` (1-based)."""
        self._check(number)
        start = (number - 1) * self.part_size
        return start, min(start + self.part_size, self.size)

    def first_segment(self, number: int) -> int:
        """The global index of part `number`'s first segment."""
        return self.plain_range(number)[0] >> self.segment_log2

    def is_last(self, number: int) -> bool:
        """Whether part `number` holds the file's last segment."""
        return number == self.part_count

    def sealed_size(self, number: int) -> int:
        """The bytes of part `number` once sealed: header (part 1), plaintext, one tag per
        segment."""
        start, stop = self.plain_range(number)
        segments = max(1, -(-(stop - start) >> self.segment_log2))
        return (HEADER_SIZE if number == 1 else 0) + (stop - start) + TAG_SIZE * segments

    def _check(self, number: int) -> None:
        if not 1 <= number <= self.part_count:
            raise IndexError(f"part {number} is outside 1..{self.part_count}")


def seal_part(
    data_key: bytes, header: Buffer, first_segment: int, plaintext: Buffer, *, last: bool
) -> bytes:
    """Seal one part of a blob: the segments of `plaintext`, indexed from `first_segment`.

    The part that starts at segment 0 gets the header in front (the caller adds nothing).
    `plaintext` must be whole segments unless `last`, which marks its final segment as the
    blob's last (an empty last part is one empty segment). Concatenating the parts of a
    `PartPlan` in order gives exactly the blob `seal` makes with the same header.
    """
    segment_log2, prefix = parse_header(header)
    if segment_log2 not in WRITER_SEGMENT_LOG2:
        raise SealError(f"writers use segment_log2 16..20, not {segment_log2}")
    cipher = _cipher(data_key)
    view = _byte_view(plaintext)
    size = 1 << segment_log2
    if not last and (len(view) == 0 or len(view) % size):
        raise SealError("a part that is not the last must hold whole segments")
    count = max(1, -(-len(view) // size))
    if first_segment < 0 or first_segment + count > MAX_SEGMENT_COUNT:
        raise SealError("segment index out of range")
    associated = bytes(header)
    out = [associated] if first_segment == 0 else []
    for offset in range(count):
        index = first_segment + offset
        is_last = last and offset == count - 1
        chunk = view[offset * size : (offset + 1) * size]
        out.append(cipher.encrypt(_nonce(prefix, index, is_last), chunk, associated))
    return b"".join(out)
