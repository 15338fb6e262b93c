"""Tampered blobs in the real S3 endpoint are never served as a success (DESIGN §4, §5).

The suite's production stack (API and worker processes, PostgreSQL, Redis, S3; 64 KiB
segments) seals two files of about 300 KiB: five segments each. Each test rewrites a stored blob
with boto3 (a flipped byte, a cut, an extension, segments reordered, duplicated or spliced
in from the other blob, the two objects swapped) or swaps the wrapped data keys between
the two `blobs` rows with SQL, then downloads with httpx: the answer is an error status or
a cut transfer, never a complete body that differs from the file. What was changed is put
back after each test.

The last tests seal one file a thousand times in-process, the way the worker does, and
twenty times through the stack: every seal has its own data key, nonce prefix, wrapped
key and object key.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from app.crypto import sealing
from app.crypto.keys import KeyRing, data_key_context, new_data_key, new_key_entry
from app.crypto.tokens import new_id
from tests.support.hostile import (
    HEADER,
    SEGMENT,
    SEGMENT_LOG2,
    SOAK,
    TAG,
    Fetched,
    Uploaded,
    assert_never_wrong,
    blob_key,
    fetch,
    put,
    scaled,
    wait_ready,
)
from tests.support.production import ProductionStack

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = [pytest.mark.production, pytest.mark.slow]

SIZE = 300 * 1024 + 123  # four full segments and a short last one
SEGMENTS = -(-SIZE // SEGMENT)
SEALED_SIZE = HEADER + SIZE + TAG * SEGMENTS
SEALS_IN_PROCESS = scaled(1000, 10_000)
SEALS_THROUGH_THE_STACK = scaled(20, 100)


@dataclass(frozen=True)
class Stored:
    """One sealed file: what was uploaded, its link, its object and its `blobs` row."""

    data: bytes
    link: Uploaded
    key: str
    blob: bytes
    blob_id: str
    key_id: str
    wrapped_key: bytes


@dataclass(frozen=True)
class Pair:
    """Two sealed files of the same size (for splicing and swapping between them)."""

    a: Stored
    b: Stored


def _store(stack: ProductionStack, data: bytes, name: str) -> Stored:
    link = put(stack.base_url, data, name=name)
    key = blob_key(stack, link.token)
    blob_id = key.removeprefix("blobs/")
    ((key_id, wrapped),) = stack.sql(
        "SELECT key_id, wrapped_key FROM blobs WHERE id = :id", id=blob_id
    )
    return Stored(data, link, key, stack.read_object(key), blob_id, key_id, bytes(wrapped))


@pytest.fixture(scope="module")
def stored(stack: ProductionStack) -> Pair:
    """Two files of SIZE random bytes, sealed and ready."""
    pair = Pair(_store(stack, os.urandom(SIZE), "a.bin"), _store(stack, os.urandom(SIZE), "b.bin"))
    assert len(pair.a.blob) == SEALED_SIZE
    return pair


class Tamper:
    """Changes stored objects and `blobs` rows, and puts back what it changed."""

    def __init__(self, stack: ProductionStack, s3: S3Client) -> None:
        self.stack = stack
        self.s3 = s3
        self.objects: dict[str, bytes] = {}
        self.rows: dict[str, tuple[str, bytes]] = {}

    def write(self, stored: Stored, data: bytes) -> None:
        """Store `data` as `stored`'s object."""
        self.objects.setdefault(stored.key, stored.blob)
        self._put(stored.key, data)

    def wrapped(self, stored: Stored, key_id: str, wrapped: bytes) -> None:
        """Give `stored`'s `blobs` row another wrapped data key."""
        self.rows.setdefault(stored.blob_id, (stored.key_id, stored.wrapped_key))
        self._set_wrapped(stored.blob_id, key_id, wrapped)

    def restore(self) -> None:
        """Put back every object and row changed."""
        for key, data in self.objects.items():
            self._put(key, data)
        for blob_id, (key_id, wrapped) in self.rows.items():
            self._set_wrapped(blob_id, key_id, wrapped)

    def _put(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.stack.bucket_of(key), Key=key, Body=data)

    def _set_wrapped(self, blob_id: str, key_id: str, wrapped: bytes) -> None:
        self.stack.sql(
            "UPDATE blobs SET key_id = :key_id, wrapped_key = :wrapped WHERE id = :id",
            key_id=key_id,
            wrapped=wrapped,
            id=blob_id,
        )


@pytest.fixture(scope="module")
def s3(stack: ProductionStack) -> S3Client:
    """One boto3 client of the stack's endpoint for the module (making one takes a while)."""
    return stack.s3


@pytest.fixture
def tamper(stack: ProductionStack, s3: S3Client, stored: Pair) -> Iterator[Tamper]:
    """A `Tamper` whose changes are undone when the test ends."""
    changes = Tamper(stack, s3)
    yield changes
    changes.restore()


@pytest.fixture
def pair(stored: Pair, tamper: Tamper) -> Pair:
    """The two sealed files, to be changed through `tamper` only."""
    return stored


def segment_span(index: int) -> slice:
    """Where segment `index` (ciphertext and tag) lies in the sealed object."""
    start = HEADER + index * (SEGMENT + TAG)
    return slice(start, min(start + SEGMENT + TAG, SEALED_SIZE))


def segment_of(position: int) -> int | None:
    """The segment holding byte `position` of the object (None for the header)."""
    return None if position < HEADER else (position - HEADER) // (SEGMENT + TAG)


def downloads_fail(stored: Stored, segment: int) -> list[Fetched]:
    """Download the whole file, and a range from the middle of the first tampered `segment`
    to the end: neither may complete, and neither may hold a wrong byte."""
    start = min(segment * SEGMENT + SEGMENT // 2, SIZE - 1)
    whole = fetch(stored.link.download_url)
    ranged = fetch(stored.link.download_url, headers={"Range": f"bytes={start}-"})
    assert_never_wrong(whole, stored.data)
    assert_never_wrong(ranged, stored.data, start)
    assert not whole.complete, "a tampered blob was served whole"
    assert not ranged.complete, "a tampered blob was served as a range"
    return [whole, ranged]


def _flip_positions() -> list[int]:
    """Header fields, and in every segment its first and last ciphertext and tag bytes
    (under SEALDROP_SOAK=1, every 1021st byte of the object too)."""
    positions = {4, 5, 9, 15}  # version, segment size, nonce prefix
    for index in range(SEGMENTS):
        span = segment_span(index)
        tag = span.stop - TAG
        positions |= {span.start, tag - 1, tag, span.stop - 1}
    if SOAK:
        positions |= set(range(0, SEALED_SIZE, 1021))
    return sorted(positions)


@pytest.mark.parametrize("position", _flip_positions())
def test_a_flipped_byte_is_never_served_as_a_success(
    tamper: Tamper, pair: Pair, position: int
) -> None:
    tampered = bytearray(pair.a.blob)
    tampered[position] ^= 0x80
    tamper.write(pair.a, bytes(tampered))
    segment = segment_of(position)
    if segment is not None:
        downloads_fail(pair.a, segment)
        return
    # The object's header is never read: every segment is opened with the header recorded
    # in the database as associated data, so an edited copy changes nothing served.
    whole = fetch(pair.a.link.download_url)
    assert_never_wrong(whole, pair.a.data)
    assert whole.complete


def test_a_flip_in_a_later_segment_cuts_the_connection_after_a_true_prefix(
    tamper: Tamper, pair: Pair
) -> None:
    tampered = bytearray(pair.a.blob)
    tampered[segment_span(3).start + 100] ^= 0x01
    tamper.write(pair.a, bytes(tampered))
    whole = fetch(pair.a.link.download_url)
    assert whole.status == 200
    assert whole.error is not None
    assert len(whole.body) <= 3 * SEGMENT
    assert whole.body == pair.a.data[: len(whole.body)]


def test_a_flip_in_the_first_segment_needed_is_a_clean_error(tamper: Tamper, pair: Pair) -> None:
    tampered = bytearray(pair.a.blob)
    tampered[segment_span(0).start] ^= 0x01
    tamper.write(pair.a, bytes(tampered))
    whole = fetch(pair.a.link.download_url)
    assert 500 <= whole.status < 600
    assert pair.a.data[:64] not in whole.body


@pytest.mark.parametrize(
    "length",
    [0, 8, HEADER, HEADER + SEGMENT // 2, segment_span(SEGMENTS - 1).start, SEALED_SIZE - 1],
    ids=["empty", "half-header", "header-only", "mid-first-segment", "last-dropped", "one-short"],
)
def test_a_truncated_blob_is_never_served_as_a_success(
    tamper: Tamper, pair: Pair, length: int
) -> None:
    tamper.write(pair.a, pair.a.blob[:length])
    downloads_fail(pair.a, segment_of(length) or 0)


@pytest.mark.parametrize(
    "extra",
    ["one-byte", "one-tag", "last-segment-again", "zero-segment"],
)
def test_an_extended_blob_is_never_served_as_a_success(
    tamper: Tamper, pair: Pair, extra: str
) -> None:
    tail = {
        "one-byte": b"\x00",
        "one-tag": pair.a.blob[-TAG:],
        "last-segment-again": pair.a.blob[segment_span(SEGMENTS - 1)],
        "zero-segment": bytes(SEGMENT + TAG),
    }[extra]
    tamper.write(pair.a, pair.a.blob + tail)
    downloads_fail(pair.a, SEGMENTS - 1)


def test_an_extended_blob_whose_last_segment_is_full_is_never_served_as_a_success(
    stack: ProductionStack, tamper: Tamper
) -> None:
    full = _store(stack, os.urandom(4 * SEGMENT), "full.bin")
    tamper.write(full, full.blob + b"\x00")
    whole = fetch(full.link.download_url)
    assert_never_wrong(whole, full.data)
    assert not whole.complete


def _first_change(order: list[int]) -> int:
    """The first segment whose place no longer holds itself."""
    return next(place for place, index in enumerate([*order, -1]) if index != place)


def _rebuilt(blob: bytes, order: list[int]) -> bytes:
    return blob[:HEADER] + b"".join(blob[segment_span(index)] for index in order)


@pytest.mark.parametrize(
    "order",
    [[1, 0, 2, 3, 4], [0, 2, 1, 3, 4], [0, 1, 3, 2, 4], [4, 1, 2, 3, 0]],
    ids=["first-two", "middle", "before-last", "last-first"],
)
def test_reordered_segments_are_never_served_as_a_success(
    tamper: Tamper, pair: Pair, order: list[int]
) -> None:
    tamper.write(pair.a, _rebuilt(pair.a.blob, order))
    downloads_fail(pair.a, _first_change(order))


@pytest.mark.parametrize(
    "order",
    [[0, 1, 1, 3, 4], [0, 0, 2, 3, 4], [0, 1, 2, 3, 3, 4], [0, 1, 2, 3, 4, 4]],
    ids=["one-replaces-next", "first-twice", "inserted-copy", "last-twice"],
)
def test_duplicated_segments_are_never_served_as_a_success(
    tamper: Tamper, pair: Pair, order: list[int]
) -> None:
    tamper.write(pair.a, _rebuilt(pair.a.blob, order))
    downloads_fail(pair.a, _first_change(order))


@pytest.mark.parametrize("index", range(SEGMENTS))
def test_a_segment_spliced_from_another_blob_is_never_served_as_a_success(
    tamper: Tamper, pair: Pair, index: int
) -> None:
    span = segment_span(index)
    spliced = pair.a.blob[: span.start] + pair.b.blob[span] + pair.a.blob[span.stop :]
    tamper.write(pair.a, spliced)
    downloads_fail(pair.a, index)


def test_the_other_blobs_header_spliced_in_is_never_served_as_a_success(
    tamper: Tamper, pair: Pair
) -> None:
    tamper.write(pair.a, pair.b.blob[:HEADER] + pair.a.blob[HEADER:])
    whole = fetch(pair.a.link.download_url)
    assert_never_wrong(whole, pair.a.data)


def test_objects_swapped_between_links_are_never_served_as_a_success(
    tamper: Tamper, pair: Pair
) -> None:
    tamper.write(pair.a, pair.b.blob)
    tamper.write(pair.b, pair.a.blob)
    downloads_fail(pair.a, 0)
    downloads_fail(pair.b, 0)


def test_wrapped_keys_swapped_between_links_are_never_served_as_a_success(
    tamper: Tamper, pair: Pair
) -> None:
    tamper.wrapped(pair.a, pair.b.key_id, pair.b.wrapped_key)
    tamper.wrapped(pair.b, pair.a.key_id, pair.a.wrapped_key)
    downloads_fail(pair.a, 0)
    downloads_fail(pair.b, 0)


def test_objects_and_wrapped_keys_swapped_together_are_never_served_as_a_success(
    tamper: Tamper, pair: Pair
) -> None:
    # The wrapped key is bound to its blob id: moving key and bytes together still fails.
    tamper.wrapped(pair.a, pair.b.key_id, pair.b.wrapped_key)
    tamper.write(pair.a, pair.b.blob)
    downloads_fail(pair.a, 0)


def test_a_range_over_untouched_segments_is_still_served(tamper: Tamper, pair: Pair) -> None:
    tampered = bytearray(pair.a.blob)
    tampered[segment_span(4).start + 7] ^= 0x01
    tamper.write(pair.a, bytes(tampered))
    start, stop = SEGMENT + 3, 3 * SEGMENT
    ranged = fetch(pair.a.link.download_url, headers={"Range": f"bytes={start}-{stop - 1}"})
    assert ranged.status == 206
    assert ranged.complete
    assert ranged.body == pair.a.data[start:stop]


def test_a_thousand_seals_of_one_file_share_no_key_nonce_prefix_or_wrapped_key() -> None:
    ring = KeyRing.parse(new_key_entry("k1"))
    plaintext = os.urandom(SIZE)
    data_keys, prefixes, wrapped_keys, blob_ids, digests = set(), set(), set(), set(), set()
    for _ in range(SEALS_IN_PROCESS):
        blob_id, data_key = new_id(), new_data_key()
        _key_id, wrapped = ring.wrap(data_key, data_key_context(blob_id))
        sealed = sealing.seal(data_key, plaintext, segment_log2=SEGMENT_LOG2)
        data_keys.add(data_key)
        prefixes.add(sealing.parse_header(sealed[:HEADER])[1])
        wrapped_keys.add(wrapped)
        blob_ids.add(blob_id)
        digests.add(sealed[HEADER : HEADER + 64])
    for seen in (data_keys, prefixes, wrapped_keys, blob_ids, digests):
        assert len(seen) == SEALS_IN_PROCESS


def test_uploads_of_one_file_through_the_stack_get_their_own_keys_and_objects(
    stack: ProductionStack, s3: S3Client
) -> None:
    data = os.urandom(SIZE)
    links = [
        put(stack.base_url, data, name="same.bin", headers={"Prefer": "respond-async"})
        for _ in range(SEALS_THROUGH_THE_STACK)
    ]
    blob_ids = {wait_ready(stack, link.token).blob_id for link in links}
    rows = stack.sql(
        "SELECT id, key_id, wrapped_key, header FROM blobs WHERE id = ANY(:ids)",
        ids=list(blob_ids),
    )
    ring = KeyRing.parse(stack.env["SEALDROP_MASTER_KEYS"])
    data_keys = {ring.unwrap(key_id, bytes(w), data_key_context(id_)) for id_, key_id, w, _ in rows}
    prefixes = {sealing.parse_header(bytes(header))[1] for *_, header in rows}
    objects = {
        s3.get_object(Bucket=stack.blobs_bucket, Key=f"blobs/{blob_id}", Range="bytes=16-79")[
            "Body"
        ].read()
        for blob_id in blob_ids
    }
    assert len(blob_ids) == len(links)
    for seen in (data_keys, prefixes, {bytes(row.wrapped_key) for row in rows}, objects):
        assert len(seen) == len(links)
    assert set(stack.list_objects("blobs/")) >= {f"blobs/{blob_id}" for blob_id in blob_ids}
    assert fetch(links[-1].download_url).body == data
