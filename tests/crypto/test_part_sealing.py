"""Sealing a file in parts for a direct upload (`seal_part`, `PartPlan`): the parts of a
plan, sealed one by one and concatenated, are the vectors' blobs byte for byte."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.crypto.sealing import (
    HEADER_SIZE,
    PartPlan,
    SealError,
    make_header,
    open_blob,
    seal,
    seal_part,
)
from tests.crypto.test_sealing import (
    CASES,
    KEY,
    PREFIX,
    VECTORS,
    assert_matches_vector,
    case_id,
    pattern,
)


def seal_in_parts(key: bytes, header: bytes, plaintext: bytes, plan: PartPlan) -> list[bytes]:
    parts = []
    for number in range(1, plan.part_count + 1):
        start, stop = plan.plain_range(number)
        parts.append(
            seal_part(
                key,
                header,
                plan.first_segment(number),
                plaintext[start:stop],
                last=plan.is_last(number),
            )
        )
    return parts


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("segments_per_part", [1, 2, 5])
def test_parts_concatenate_to_the_vector_blob(case: dict[str, Any], segments_per_part: int) -> None:
    log2 = case["segment_log2"]
    header = make_header(log2, bytes.fromhex(VECTORS["nonce_prefix_hex"]))
    plaintext = pattern(case["plaintext_size"])
    plan = PartPlan(len(plaintext), segments_per_part << log2, log2)
    parts = seal_in_parts(bytes.fromhex(VECTORS["data_key_hex"]), header, plaintext, plan)
    assert [len(part) for part in parts] == [
        plan.sealed_size(n) for n in range(1, plan.part_count + 1)
    ]
    assert_matches_vector(b"".join(parts), case)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 5 * 65536 + 17), per_part=st.integers(1, 4))
def test_parts_equal_the_whole_blob_for_any_size(size: int, per_part: int) -> None:
    plaintext = pattern(size)
    plan = PartPlan(size, per_part << 16, 16)
    parts = seal_in_parts(KEY, make_header(16, PREFIX), plaintext, plan)
    blob = b"".join(parts)
    assert blob == seal(KEY, plaintext, segment_log2=16, nonce_prefix=PREFIX)
    assert open_blob(KEY, blob, size) == plaintext


def test_only_the_part_at_segment_zero_carries_the_header() -> None:
    header = make_header(16, PREFIX)
    first = seal_part(KEY, header, 0, pattern(65536), last=False)
    second = seal_part(KEY, header, 1, pattern(65536), last=False)
    assert first[:HEADER_SIZE] == header
    assert len(first) == HEADER_SIZE + 65536 + 16
    assert len(second) == 65536 + 16


def test_a_part_that_is_not_the_last_must_hold_whole_segments() -> None:
    with pytest.raises(SealError, match="whole segments"):
        seal_part(KEY, make_header(16, PREFIX), 0, pattern(100), last=False)


def test_a_bad_header_is_refused() -> None:
    with pytest.raises(SealError):
        seal_part(KEY, b"NOPE" + bytes(12), 0, b"x", last=True)


def test_a_part_under_another_key_is_another_part() -> None:
    header = make_header(16, PREFIX)
    mine = seal_part(KEY, header, 1, pattern(10), last=True)
    other = seal_part(bytes(32), header, 1, pattern(10), last=True)
    assert len(mine) == len(other)
    assert mine != other


def test_plan_refuses_part_sizes_that_cut_segments() -> None:
    with pytest.raises(ValueError, match="multiple"):
        PartPlan(10, 65536 + 1, 16)


def test_plan_of_an_empty_file_is_one_part_of_header_and_empty_segment() -> None:
    plan = PartPlan(0, 1 << 20, 16)
    assert plan.part_count == 1
    assert plan.sealed_size(1) == HEADER_SIZE + 16
    assert (
        hashlib.sha256(seal_part(KEY, make_header(16, PREFIX), 0, b"", last=True)).digest()
        == hashlib.sha256(seal(KEY, b"", segment_log2=16, nonce_prefix=PREFIX)).digest()
    )
