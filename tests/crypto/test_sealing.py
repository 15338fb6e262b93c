"""Tests of the sealed blob format v1: known answers, round trips, tampering, ranges."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from app.crypto.sealing import (
    DEFAULT_SEGMENT_LOG2,
    HEADER_SIZE,
    MAGIC,
    NONCE_PREFIX_SIZE,
    TAG_SIZE,
    VERSION,
    Layout,
    SealError,
    SegmentOpener,
    SegmentSealer,
    make_header,
    new_nonce_prefix,
    open_blob,
    open_range,
    parse_header,
    seal,
)

REPO = Path(__file__).resolve().parents[2]
VECTORS = json.loads((REPO / "tests" / "vectors" / "sealed-v1.json").read_text())
CASES = VECTORS["cases"]

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
PREFIX = b"\xa1\xa2\xa3\xa4\xa5\xa6\xa7"
LOG2 = 16
S = 1 << LOG2
EDGE_SIZES = [0, 1, 2, S - 1, S, S + 1, 2 * S - 1, 2 * S, 2 * S + 1, 3 * S - 1, 3 * S, 3 * S + 1]


def pattern(size: int) -> bytes:
    """The vectors' plaintext: byte i is (7i + 3) mod 251, a sequence of period 251."""
    period = bytes((i * 7 + 3) % 251 for i in range(251))
    return (period * (size // 251 + 1))[:size]


@functools.cache
def sealed(size: int, prefix: bytes = PREFIX) -> bytes:
    return seal(KEY, pattern(size), segment_log2=LOG2, nonce_prefix=prefix)


def segments_of(blob: bytes, size: int) -> list[bytes]:
    layout = Layout(size, LOG2)
    return [
        blob[layout.segment_offset(i) : layout.segment_offset(i) + layout.sealed_length(i)]
        for i in range(layout.segment_count)
    ]


def case_id(case: dict[str, Any]) -> str:
    return f"log2={case['segment_log2']}-size={case['plaintext_size']}"


def seal_case(case: dict[str, Any]) -> tuple[bytes, bytes]:
    plaintext = pattern(case["plaintext_size"])
    blob = seal(
        bytes.fromhex(VECTORS["data_key_hex"]),
        plaintext,
        segment_log2=case["segment_log2"],
        nonce_prefix=bytes.fromhex(VECTORS["nonce_prefix_hex"]),
    )
    return plaintext, blob


def assert_matches_vector(blob: bytes, case: dict[str, Any]) -> None:
    assert len(blob) == case["blob_size"]
    assert blob[:64].hex() == case["blob_head_hex"]
    assert blob[-48:].hex() == case["blob_tail_hex"]
    assert hashlib.sha256(blob).hexdigest() == case["blob_sha256"]


def flip(blob: bytes, position: int, mask: int = 0x01) -> bytes:
    changed = bytearray(blob)
    changed[position] ^= mask
    return bytes(changed)


# Known answers ------------------------------------------------------------------------


def test_vector_file_covers_empty_edges_and_both_segment_sizes() -> None:
    sizes = {(case["segment_log2"], case["plaintext_size"]) for case in CASES}
    assert {(16, 0), (16, 1), (16, S - 1), (16, S), (16, S + 1), (20, 2**20 + 1)} <= sizes


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_vector_plaintext_is_the_described_pattern(case: dict[str, Any]) -> None:
    plaintext = pattern(case["plaintext_size"])
    assert hashlib.sha256(plaintext).hexdigest() == case["plaintext_sha256"]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_sealing_reproduces_the_vector_blob(case: dict[str, Any]) -> None:
    _, blob = seal_case(case)
    assert_matches_vector(blob, case)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_streamed_sealing_reproduces_the_vector_blob(case: dict[str, Any]) -> None:
    plaintext = pattern(case["plaintext_size"])
    sealer = SegmentSealer(
        bytes.fromhex(VECTORS["data_key_hex"]),
        segment_log2=case["segment_log2"],
        nonce_prefix=bytes.fromhex(VECTORS["nonce_prefix_hex"]),
        expected_size=len(plaintext),
    )
    parts = [sealer.header]
    for start in range(0, len(plaintext), 10_007):
        parts += sealer.update(plaintext[start : start + 10_007])
    parts.append(sealer.finish())
    assert_matches_vector(b"".join(parts), case)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_opening_the_vector_blob_gives_the_plaintext(case: dict[str, Any]) -> None:
    _, blob = seal_case(case)
    assert_matches_vector(blob, case)  # so what is opened is the vector's blob, byte for byte
    opened = open_blob(bytes.fromhex(VECTORS["data_key_hex"]), blob, case["plaintext_size"])
    assert hashlib.sha256(opened).hexdigest() == case["plaintext_sha256"]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_opening_the_vector_blob_segment_by_segment_gives_the_plaintext(
    case: dict[str, Any],
) -> None:
    plaintext, blob = seal_case(case)
    assert_matches_vector(blob, case)
    key = bytes.fromhex(VECTORS["data_key_hex"])
    opener = SegmentOpener(key, blob[:HEADER_SIZE], case["plaintext_size"])
    layout = opener.layout
    assert layout.ciphertext_size == case["blob_size"]
    opened = b"".join(
        opener.open(i, blob[layout.segment_offset(i) :][: layout.sealed_length(i)])
        for i in range(layout.segment_count)
    )
    assert opened == plaintext


# Header ---------------------------------------------------------------------------------


def test_header_has_the_documented_fields() -> None:
    header = make_header(17, PREFIX)
    assert header == b"SDRP" + bytes([1, 17, 0, 0, 0]) + PREFIX
    assert len(header) == HEADER_SIZE
    assert (MAGIC, VERSION) == (b"SDRP", 1)


def test_header_parses_back_to_its_fields() -> None:
    assert parse_header(make_header(20, PREFIX)) == (20, PREFIX)


@pytest.mark.parametrize("log2", [15, 21, 24, 0, 255])
def test_writer_refuses_segment_log2_outside_16_to_20(log2: int) -> None:
    with pytest.raises(SealError, match=r"16\.\.20"):
        make_header(log2, PREFIX)


@pytest.mark.parametrize("log2", [15, 21])
def test_sealer_refuses_segment_log2_outside_16_to_20(log2: int) -> None:
    with pytest.raises(SealError):
        SegmentSealer(KEY, segment_log2=log2)


@pytest.mark.parametrize("log2", range(16, 25))
def test_reader_accepts_segment_log2_from_16_to_24(log2: int) -> None:
    header = MAGIC + bytes([VERSION, log2, 0, 0, 0]) + PREFIX
    assert parse_header(header) == (log2, PREFIX)


@pytest.mark.parametrize("log2", [0, 15, 25, 255])
def test_reader_refuses_segment_log2_outside_16_to_24(log2: int) -> None:
    header = MAGIC + bytes([VERSION, log2, 0, 0, 0]) + PREFIX
    with pytest.raises(SealError, match=r"16\.\.24"):
        parse_header(header)


def test_blob_with_24_bit_segments_opens() -> None:
    header = MAGIC + bytes([VERSION, 24, 0, 0, 0]) + PREFIX
    plaintext = b"written by another tool"
    nonce = PREFIX + struct.pack(">IB", 0, 1)
    blob = header + AESGCM(KEY).encrypt(nonce, plaintext, header)
    assert open_blob(KEY, blob, len(plaintext)) == plaintext


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"SDRQ\x01\x10\x00\x00\x00" + PREFIX, "magic"),
        (b"sdrp\x01\x10\x00\x00\x00" + PREFIX, "magic"),
        (b"SDRP\x00\x10\x00\x00\x00" + PREFIX, "version"),
        (b"SDRP\x02\x10\x00\x00\x00" + PREFIX, "version"),
        (b"SDRP\x01\x10\x01\x00\x00" + PREFIX, "zero"),
        (b"SDRP\x01\x10\x00\x00\x80" + PREFIX, "zero"),
        (b"SDRP\x01\x10\x00\x00\x00" + PREFIX[:-1], "16 bytes"),
        (b"SDRP\x01\x10\x00\x00\x00" + PREFIX + b"\x00", "16 bytes"),
        (b"", "16 bytes"),
    ],
)
def test_malformed_header_is_refused(header: bytes, message: str) -> None:
    with pytest.raises(SealError, match=message):
        parse_header(header)


@pytest.mark.parametrize("prefix", [b"", b"\x00" * 6, b"\x00" * 8])
def test_nonce_prefix_of_wrong_length_is_refused(prefix: bytes) -> None:
    with pytest.raises(SealError, match="7 bytes"):
        make_header(16, prefix)


def test_new_nonce_prefixes_are_random_and_7_bytes() -> None:
    prefixes = {new_nonce_prefix() for _ in range(100)}
    assert len(prefixes) == 100
    assert {len(prefix) for prefix in prefixes} == {NONCE_PREFIX_SIZE}


def test_sealer_without_prefix_picks_a_fresh_one() -> None:
    first = SegmentSealer(KEY).header
    second = SegmentSealer(KEY).header
    assert first[:9] == second[:9] == MAGIC + bytes([VERSION, DEFAULT_SEGMENT_LOG2, 0, 0, 0])
    assert first[9:] != second[9:]


@pytest.mark.parametrize("key_size", [0, 16, 24, 31, 33])
def test_data_key_that_is_not_256_bits_is_refused(key_size: int) -> None:
    with pytest.raises(SealError, match="32 bytes"):
        SegmentSealer(b"\x00" * key_size)


# Layout ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_layout_follows_the_documented_formulas(size: int) -> None:
    layout = Layout(size, LOG2)
    n = max(1, -(-size // S))
    assert (layout.segment_size, layout.segment_count) == (S, n)
    assert layout.ciphertext_size == 16 + size + 16 * n
    assert [layout.segment_offset(i) for i in range(n)] == [16 + i * (S + 16) for i in range(n)]
    assert sum(layout.plain_length(i) for i in range(n)) == size
    assert all(layout.sealed_length(i) == layout.plain_length(i) + TAG_SIZE for i in range(n))
    last = layout.plain_length(n - 1)
    assert 1 <= last <= S or size == 0


def test_sealed_blob_has_the_layouts_size() -> None:
    for size in EDGE_SIZES:
        assert len(sealed(size)) == Layout(size, LOG2).ciphertext_size


def test_empty_plaintext_is_one_empty_last_segment() -> None:
    layout = Layout(0, LOG2)
    assert (layout.segment_count, layout.plain_length(0), layout.ciphertext_size) == (1, 0, 32)


@pytest.mark.parametrize("index", [-1, 3])
def test_segment_index_outside_the_blob_is_refused(index: int) -> None:
    with pytest.raises(IndexError):
        Layout(2 * S + 1, LOG2).segment_offset(index)


@pytest.mark.parametrize(("start", "stop"), [(0, 0), (5, 5), (6, 5), (-1, 3), (0, 2 * S + 2)])
def test_empty_or_out_of_bounds_range_is_refused(start: int, stop: int) -> None:
    with pytest.raises(ValueError, match="range"):
        Layout(2 * S + 1, LOG2).segments_for(start, stop)


def test_sealed_span_covers_consecutive_segments_exactly() -> None:
    layout = Layout(3 * S + 7, LOG2)
    assert layout.sealed_span(range(0, 1)) == (16, S + 16)
    assert layout.sealed_span(range(1, 4)) == (16 + S + 16, 2 * (S + 16) + 7 + 16)


@pytest.mark.parametrize(("size", "log2"), [(-1, 16), (0, 15), (0, 25)])
def test_layout_refuses_impossible_values(size: int, log2: int) -> None:
    with pytest.raises(ValueError, match=r"segment_log2|negative"):
        Layout(size, log2)


def test_layout_refuses_2_to_the_32_segments() -> None:
    Layout((2**32 - 1) * S, LOG2)
    with pytest.raises(ValueError, match="2\\*\\*32"):
        Layout((2**32 - 1) * S + 1, LOG2)


# Round trips and streaming --------------------------------------------------------------


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_round_trip_at_segment_edges(size: int) -> None:
    assert open_blob(KEY, sealed(size), size) == pattern(size)


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_round_trip_with_default_segment_size(size: int) -> None:
    plaintext = pattern(size)
    blob = seal(KEY, plaintext)
    assert blob[5] == DEFAULT_SEGMENT_LOG2
    assert open_blob(KEY, blob, size) == plaintext


@settings(max_examples=200, deadline=None)
@given(
    size=st.sampled_from(EDGE_SIZES) | st.integers(0, 3 * S + 1),
    cuts=st.lists(st.integers(0, 3 * S + 1), max_size=12),
    kind=st.sampled_from([bytes, bytearray, memoryview]),
)
def test_any_chunking_seals_like_one_shot(size: int, cuts: list[int], kind: type) -> None:
    plaintext = pattern(size)
    bounds = [0, *sorted(cut for cut in cuts if cut <= size), size]
    sealer = SegmentSealer(KEY, segment_log2=LOG2, nonce_prefix=PREFIX, expected_size=size)
    parts = [sealer.header]
    for start, stop in itertools.pairwise(bounds):
        parts += sealer.update(kind(plaintext[start:stop]))
    parts.append(sealer.finish())
    assert b"".join(parts) == sealed(size)
    assert sealer.plaintext_size == size


def test_stream_of_unknown_length_seals_like_one_shot() -> None:
    sealer = SegmentSealer(KEY, segment_log2=LOG2, nonce_prefix=PREFIX)
    plaintext = pattern(2 * S + 5)
    parts = [sealer.header, *sealer.update(plaintext[:S]), *sealer.update(plaintext[S:])]
    parts.append(sealer.finish())
    assert b"".join(parts) == sealed(2 * S + 5)
    assert sealer.plaintext_size == 2 * S + 5


def test_full_segment_is_held_back_until_one_more_byte_arrives() -> None:
    sealer = SegmentSealer(KEY, segment_log2=LOG2, nonce_prefix=PREFIX)
    assert sealer.update(b"\x00" * S) == []
    assert sealer.update(b"") == []
    released = sealer.update(b"\x00")
    assert [len(segment) for segment in released] == [S + TAG_SIZE]
    assert len(sealer.finish()) == 1 + TAG_SIZE


def test_large_update_releases_every_segment_but_the_last() -> None:
    sealer = SegmentSealer(KEY, segment_log2=LOG2, nonce_prefix=PREFIX)
    released = sealer.update(pattern(3 * S))
    assert [len(segment) for segment in released] == [S + TAG_SIZE] * 2
    assert len(sealer.finish()) == S + TAG_SIZE


def test_reusing_the_callers_buffer_does_not_change_the_output() -> None:
    plaintext = pattern(2 * S + 3)
    buffer = bytearray(S // 2)
    sealer = SegmentSealer(KEY, segment_log2=LOG2, nonce_prefix=PREFIX)
    parts = [sealer.header]
    for start in range(0, len(plaintext), len(buffer)):
        chunk = plaintext[start : start + len(buffer)]
        buffer[: len(chunk)] = chunk
        parts += sealer.update(memoryview(buffer)[: len(chunk)])
        buffer[:] = b"\xff" * len(buffer)  # as a reader's next readinto() would
    parts.append(sealer.finish())
    assert b"".join(parts) == sealed(2 * S + 3)


def test_non_byte_memoryview_is_read_as_its_bytes() -> None:
    plaintext = pattern(S + 4)
    sealer = SegmentSealer(KEY, segment_log2=LOG2, nonce_prefix=PREFIX, expected_size=S + 4)
    parts = [sealer.header, *sealer.update(memoryview(plaintext).cast("I")), sealer.finish()]
    assert b"".join(parts) == sealed(S + 4)


def test_stream_longer_than_expected_is_refused() -> None:
    sealer = SegmentSealer(KEY, segment_log2=LOG2, expected_size=10)
    sealer.update(b"x" * 10)
    with pytest.raises(SealError, match="longer"):
        sealer.update(b"x")


def test_single_update_longer_than_expected_is_refused_before_sealing() -> None:
    sealer = SegmentSealer(KEY, segment_log2=LOG2, expected_size=S)
    with pytest.raises(SealError, match="longer"):
        sealer.update(b"x" * (S + 1))
    assert sealer.plaintext_size == 0


def test_stream_shorter_than_expected_is_refused() -> None:
    sealer = SegmentSealer(KEY, segment_log2=LOG2, expected_size=S + 1)
    sealer.update(b"x" * S)
    with pytest.raises(SealError, match="expected"):
        sealer.finish()


def test_empty_stream_when_bytes_were_expected_is_refused() -> None:
    with pytest.raises(SealError, match="expected"):
        SegmentSealer(KEY, segment_log2=LOG2, expected_size=1).finish()


def test_finishing_twice_is_refused() -> None:
    sealer = SegmentSealer(KEY, segment_log2=LOG2)
    sealer.finish()
    with pytest.raises(SealError, match="already"):
        sealer.finish()


def test_update_after_finish_is_refused() -> None:
    sealer = SegmentSealer(KEY, segment_log2=LOG2)
    sealer.finish()
    with pytest.raises(SealError, match="after finish"):
        sealer.update(b"x")


def test_negative_expected_size_is_refused() -> None:
    with pytest.raises(SealError):
        SegmentSealer(KEY, segment_log2=LOG2, expected_size=-1)


def test_same_plaintext_seals_differently_under_fresh_prefixes() -> None:
    plaintext = pattern(100)
    first, second = seal(KEY, plaintext), seal(KEY, plaintext)
    assert first != second
    assert open_blob(KEY, first, 100) == open_blob(KEY, second, 100) == plaintext


# Tampering ------------------------------------------------------------------------------

TAMPER_SIZE = 2 * S + 100  # two full segments and a short last one


def tamper_positions(size: int) -> list[int]:
    """Every header byte, and in each segment: the body's edges, samples, every tag byte."""
    layout = Layout(size, LOG2)
    positions = list(range(HEADER_SIZE))
    for i in range(layout.segment_count):
        start, body = layout.segment_offset(i), layout.plain_length(i)
        positions += range(start, start + min(body, 32))
        positions += range(start + max(0, body - 32), start + body)
        positions += range(start, start + body, 251)
        positions += range(start + body, start + body + TAG_SIZE)
    return sorted(set(positions))


def test_tamper_positions_cover_every_region_of_every_segment() -> None:
    layout = Layout(TAMPER_SIZE, LOG2)
    positions = set(tamper_positions(TAMPER_SIZE))
    assert set(range(HEADER_SIZE)) <= positions
    for i in range(layout.segment_count):
        tag = layout.segment_offset(i) + layout.plain_length(i)
        assert set(range(tag, tag + TAG_SIZE)) <= positions
        assert layout.segment_offset(i) in positions
        assert tag - 1 in positions


@pytest.mark.parametrize("size", [0, 1, TAMPER_SIZE])
def test_every_sampled_single_byte_flip_is_rejected(size: int) -> None:
    blob = sealed(size)
    for position in tamper_positions(size):
        with pytest.raises(SealError):
            open_blob(KEY, flip(blob, position), size)


@settings(max_examples=300, deadline=None)
@given(position=st.integers(0, Layout(TAMPER_SIZE, LOG2).ciphertext_size - 1))
def test_any_single_byte_flip_is_rejected(position: int) -> None:
    with pytest.raises(SealError):
        open_blob(KEY, flip(sealed(TAMPER_SIZE), position, 0x80), TAMPER_SIZE)


def test_flip_in_one_segment_fails_only_that_segment() -> None:
    blob = sealed(TAMPER_SIZE)
    layout = Layout(TAMPER_SIZE, LOG2)
    broken = segments_of(flip(blob, layout.segment_offset(1) + 5), TAMPER_SIZE)
    opener = SegmentOpener(KEY, blob[:HEADER_SIZE], TAMPER_SIZE)
    assert opener.open(0, broken[0]) == pattern(S)
    with pytest.raises(SealError, match="segment 1 failed authentication"):
        opener.open(1, broken[1])
    assert opener.open(2, broken[2]) == pattern(TAMPER_SIZE)[2 * S :]


def test_failing_segment_releases_no_plaintext_from_a_range() -> None:
    blob = flip(sealed(TAMPER_SIZE), Layout(TAMPER_SIZE, LOG2).segment_offset(2))
    released: list[bytes] = []
    with pytest.raises(SealError):
        released.append(open_range(KEY, blob, TAMPER_SIZE, 0, TAMPER_SIZE))
    assert released == []


def test_wrong_key_is_rejected() -> None:
    with pytest.raises(SealError, match="authentication"):
        open_blob(OTHER_KEY, sealed(TAMPER_SIZE), TAMPER_SIZE)


@pytest.mark.parametrize("segments_kept", [0, 1, 2])
def test_truncation_at_a_segment_boundary_is_rejected(segments_kept: int) -> None:
    cut = HEADER_SIZE + segments_kept * (S + TAG_SIZE)
    with pytest.raises(SealError, match="expected"):
        open_blob(KEY, sealed(TAMPER_SIZE)[:cut], TAMPER_SIZE)


@pytest.mark.parametrize("short", [1, 15, 16, 17, 50, 116, 117, S])
def test_truncation_inside_a_segment_is_rejected(short: int) -> None:
    with pytest.raises(SealError, match="expected"):
        open_blob(KEY, sealed(TAMPER_SIZE)[:-short], TAMPER_SIZE)


@pytest.mark.parametrize("cut", [0, 1, 15])
def test_truncation_inside_the_header_is_rejected(cut: int) -> None:
    with pytest.raises(SealError):
        open_blob(KEY, sealed(TAMPER_SIZE)[:cut], TAMPER_SIZE)


def test_truncated_blob_opened_as_a_shorter_plaintext_is_rejected() -> None:
    # Dropping whole segments keeps every tag intact; the last flag is what catches it.
    blob = sealed(TAMPER_SIZE)[: HEADER_SIZE + 2 * (S + TAG_SIZE)]
    with pytest.raises(SealError, match="segment 1 failed authentication"):
        open_blob(KEY, blob, 2 * S)


@pytest.mark.parametrize("extra", [b"\x00", b"\x00" * 16, b"x" * 1000])
def test_appended_bytes_are_rejected(extra: bytes) -> None:
    with pytest.raises(SealError, match="expected"):
        open_blob(KEY, sealed(TAMPER_SIZE) + extra, TAMPER_SIZE)


def test_range_of_a_blob_with_appended_bytes_is_rejected() -> None:
    with pytest.raises(SealError, match="expected"):
        open_range(KEY, sealed(TAMPER_SIZE) + b"\x00", TAMPER_SIZE, 0, 1)


def test_range_of_a_blob_truncated_after_the_range_is_rejected() -> None:
    with pytest.raises(SealError, match="expected"):
        open_range(KEY, sealed(TAMPER_SIZE)[:-1], TAMPER_SIZE, 0, 1)


def test_appended_valid_looking_segment_is_rejected() -> None:
    # A longer blob under the same key and prefix supplies a genuine last segment 2.
    short, longer = sealed(2 * S), sealed(2 * S + 100)
    extended = short + segments_of(longer, 2 * S + 100)[2]
    assert extended[: len(short)] == short
    with pytest.raises(SealError, match="expected"):
        open_blob(KEY, extended, 2 * S)
    with pytest.raises(SealError, match="segment 1 failed authentication"):
        open_blob(KEY, extended, 2 * S + 100)


def test_swapped_segments_are_rejected() -> None:
    header = sealed(TAMPER_SIZE)[:HEADER_SIZE]
    first, second, last = segments_of(sealed(TAMPER_SIZE), TAMPER_SIZE)
    with pytest.raises(SealError, match="segment 0 failed authentication"):
        open_blob(KEY, header + second + first + last, TAMPER_SIZE)


def test_segment_opened_at_another_index_is_rejected() -> None:
    blob = sealed(TAMPER_SIZE)
    opener = SegmentOpener(KEY, blob[:HEADER_SIZE], TAMPER_SIZE)
    with pytest.raises(SealError, match="segment 1 failed authentication"):
        opener.open(1, segments_of(blob, TAMPER_SIZE)[0])


def test_duplicated_segment_is_rejected() -> None:
    header = sealed(TAMPER_SIZE)[:HEADER_SIZE]
    first, _, last = segments_of(sealed(TAMPER_SIZE), TAMPER_SIZE)
    with pytest.raises(SealError, match="segment 1 failed authentication"):
        open_blob(KEY, header + first + first + last, TAMPER_SIZE)


def test_segment_spliced_from_another_blob_is_rejected() -> None:
    ours = segments_of(sealed(TAMPER_SIZE), TAMPER_SIZE)
    theirs = segments_of(sealed(TAMPER_SIZE, b"\x00" * NONCE_PREFIX_SIZE), TAMPER_SIZE)
    spliced = sealed(TAMPER_SIZE)[:HEADER_SIZE] + ours[0] + theirs[1] + ours[2]
    with pytest.raises(SealError, match="segment 1 failed authentication"):
        open_blob(KEY, spliced, TAMPER_SIZE)


def test_other_blobs_header_is_rejected() -> None:
    other_header = sealed(TAMPER_SIZE, b"\x00" * NONCE_PREFIX_SIZE)[:HEADER_SIZE]
    with pytest.raises(SealError, match="authentication"):
        open_blob(KEY, other_header + sealed(TAMPER_SIZE)[HEADER_SIZE:], TAMPER_SIZE)


@pytest.mark.parametrize(
    ("offset", "value"),
    [
        (0, ord("X")),
        (3, 0),
        (4, 0),
        (4, 2),
        (5, 15),
        (5, 17),
        (5, 20),
        (5, 25),
        (6, 1),
        (7, 1),
        (8, 0xFF),
        (9, 0),
        (15, 0),
    ],
)
def test_header_edit_is_rejected(offset: int, value: int) -> None:
    blob = bytearray(sealed(TAMPER_SIZE))
    assert blob[offset] != value
    blob[offset] = value
    with pytest.raises(SealError):
        open_blob(KEY, blob, TAMPER_SIZE)


def test_wrong_plaintext_size_is_rejected() -> None:
    for size in (TAMPER_SIZE - 1, TAMPER_SIZE + 1, 0):
        with pytest.raises(SealError, match="expected"):
            open_blob(KEY, sealed(TAMPER_SIZE), size)


@pytest.mark.parametrize("length", [0, TAG_SIZE, S + TAG_SIZE - 1, S + TAG_SIZE + 1])
def test_segment_of_wrong_length_is_rejected(length: int) -> None:
    opener = SegmentOpener(KEY, sealed(TAMPER_SIZE)[:HEADER_SIZE], TAMPER_SIZE)
    with pytest.raises(SealError, match="expected"):
        opener.open(0, b"\x00" * length)


def test_opener_refuses_a_negative_plaintext_size() -> None:
    with pytest.raises(SealError):
        SegmentOpener(KEY, sealed(1)[:HEADER_SIZE], -1)


def test_error_messages_never_contain_key_material() -> None:
    messages = []
    for attempt in (
        lambda: open_blob(OTHER_KEY, sealed(1), 1),
        lambda: open_blob(KEY, flip(sealed(1), 20), 1),
        lambda: SegmentSealer(KEY[:16]),
    ):
        with pytest.raises(SealError) as caught:
            attempt()
        messages.append(str(caught.value))
    for key in (KEY, OTHER_KEY):
        for text in (key.hex(), key[:16].hex(), repr(key), repr(key[:16])):
            assert all(text not in message for message in messages)


# Ranges ---------------------------------------------------------------------------------


@st.composite
def sizes_and_ranges(draw: st.DrawFn) -> tuple[int, int, int]:
    size = draw(st.sampled_from(EDGE_SIZES[1:]) | st.integers(1, 3 * S + 1))
    edges = st.sampled_from(sorted({0, 1, S - 1, S, S + 1, 2 * S, size - 1, size}))
    point = edges.filter(lambda p: p <= size) | st.integers(0, size)
    start, stop = sorted(draw(st.lists(point, min_size=2, max_size=2, unique=True)))
    return size, start, stop


@settings(max_examples=300, deadline=None)
@given(case=sizes_and_ranges())
def test_every_range_equals_the_plaintext_slice(case: tuple[int, int, int]) -> None:
    size, start, stop = case
    assert open_range(KEY, sealed(size), size, start, stop) == pattern(size)[start:stop]


@settings(max_examples=150, deadline=None)
@given(case=sizes_and_ranges())
def test_segments_for_names_exactly_the_overlapping_segments(case: tuple[int, int, int]) -> None:
    size, start, stop = case
    layout = Layout(size, LOG2)
    overlapping = [i for i in range(layout.segment_count) if i * S < stop and start < i * S + S]
    assert list(layout.segments_for(start, stop)) == overlapping


@settings(max_examples=60, deadline=None)
@given(case=sizes_and_ranges())
def test_range_reads_nothing_outside_its_segments(case: tuple[int, int, int]) -> None:
    size, start, stop = case
    layout = Layout(size, LOG2)
    needed = layout.segments_for(start, stop)
    offset, length = layout.sealed_span(needed)
    blob = sealed(size)
    # Garbage everywhere but the header and the needed span: a read outside it would fail.
    garbled = blob[:HEADER_SIZE] + b"\xee" * (offset - HEADER_SIZE)
    garbled += blob[offset : offset + length] + b"\xee" * (len(blob) - offset - length)
    assert open_range(KEY, garbled, size, start, stop) == pattern(size)[start:stop]


def test_span_from_one_read_opens_segment_by_segment() -> None:
    blob, size = sealed(TAMPER_SIZE), TAMPER_SIZE
    opener = SegmentOpener(KEY, blob[:HEADER_SIZE], size)
    segments = opener.layout.segments_for(S - 1, S + 2)
    offset, length = opener.layout.sealed_span(segments)
    opened = list(opener.open_span(segments, blob[offset : offset + length]))
    assert opened == [pattern(size)[:S], pattern(size)[S : 2 * S]]


def test_span_of_wrong_length_is_rejected() -> None:
    blob, size = sealed(TAMPER_SIZE), TAMPER_SIZE
    opener = SegmentOpener(KEY, blob[:HEADER_SIZE], size)
    with pytest.raises(SealError, match="expected"):
        list(opener.open_span(range(0, 2), blob[HEADER_SIZE : HEADER_SIZE + 2 * S]))


def test_range_of_an_empty_blob_is_refused() -> None:
    with pytest.raises(ValueError, match="range"):
        open_range(KEY, sealed(0), 0, 0, 1)


@settings(max_examples=200, deadline=None)
@given(
    size=st.sampled_from(EDGE_SIZES) | st.integers(0, 3 * S + 1),
    cuts=st.lists(st.integers(0, 3 * S + 1), max_size=12),
    known=st.booleans(),
)
def test_feed_into_one_buffer_seals_like_one_shot(size: int, cuts: list[int], known: bool) -> None:
    plaintext = pattern(size)
    bounds = [0, *sorted(cut for cut in cuts if cut <= size), size]
    sealer = SegmentSealer(
        KEY, segment_log2=LOG2, nonce_prefix=PREFIX, expected_size=size if known else None
    )
    parts = [sealer.header]
    for start, stop in itertools.pairwise(bounds):
        parts += [bytes(segment) for segment in sealer.feed(plaintext[start:stop])]
    parts.append(sealer.finish())
    assert b"".join(parts) == sealed(size)


def test_full_segment_goes_out_at_once_when_more_is_expected() -> None:
    sealer = SegmentSealer(KEY, segment_log2=LOG2, nonce_prefix=PREFIX, expected_size=S + 1)
    assert [len(segment) for segment in sealer.update(pattern(S))] == [S + TAG_SIZE]


def test_open_into_a_buffer_gives_what_open_gives() -> None:
    blob = sealed(2 * S + 7)
    opener = SegmentOpener(KEY, blob[:HEADER_SIZE], 2 * S + 7)
    buffer = bytearray(S)
    for index, segment in enumerate(segments_of(blob, 2 * S + 7)):
        assert opener.open_into(index, segment, buffer) == opener.open(index, segment)


def test_open_into_refuses_a_flipped_byte() -> None:
    blob = bytearray(sealed(S + 1))
    blob[HEADER_SIZE + 5] ^= 1
    opener = SegmentOpener(KEY, blob[:HEADER_SIZE], S + 1)
    with pytest.raises(SealError, match="authentication"):
        opener.open_into(0, blob[HEADER_SIZE : HEADER_SIZE + S + TAG_SIZE], bytearray(S))
