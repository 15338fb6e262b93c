"""The pure decisions of direct uploads: part sizes, and which listed parts complete one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.crypto.sealing import PartPlan
from app.domain.direct_uploads import MAX_PARTS, MIN_PART_BYTES, _check_parts, part_size_for
from app.errors import Conflict
from app.storage.s3_direct import UploadedPart

MIB = 1 << 20
NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize("log2", [16, 20])
@pytest.mark.parametrize("size", [0, 1, 5 * MIB, 6 * 1024 * MIB, 5 * 1024**4 // 1024])
def test_part_size_is_whole_segments_at_least_5_mib_and_at_most_1000_parts(
    size: int, log2: int
) -> None:
    part = part_size_for(size, log2)
    assert part % (1 << log2) == 0
    assert part >= MIN_PART_BYTES
    assert PartPlan(size, part, log2).part_count <= MAX_PARTS


def _part(
    plan: PartPlan, number: int, *, etag: str = "e", age: int = 0, size: int | None = None
) -> UploadedPart:
    sealed = plan.sealed_size(number) if size is None else size
    return UploadedPart(number, sealed, etag, NOW - timedelta(seconds=age))


PLAN = PartPlan(12 * MIB, 5 * MIB, 16)


def test_every_part_of_the_right_size_completes_in_order() -> None:
    listed = [_part(PLAN, 3), _part(PLAN, 1), _part(PLAN, 2)]
    assert [p.number for p in _check_parts(PLAN, listed)] == [1, 2, 3]


def test_missing_and_wrong_sized_parts_are_named() -> None:
    listed = [_part(PLAN, 1), _part(PLAN, 3, size=10)]
    with pytest.raises(Conflict, match=r"missing parts 2; parts of the wrong size 3"):
        _check_parts(PLAN, listed)


def test_of_two_uploads_of_a_part_the_newest_is_taken() -> None:
    listed = [
        _part(PLAN, 1),
        _part(PLAN, 2, etag="old", age=5),
        _part(PLAN, 2, etag="new"),
        _part(PLAN, 3),
    ]
    assert _check_parts(PLAN, listed)[1].etag == "new"


def test_a_wrong_sized_copy_beside_a_right_one_is_ignored() -> None:
    listed = [_part(PLAN, 1), _part(PLAN, 2), _part(PLAN, 2, etag="x", size=3), _part(PLAN, 3)]
    assert _check_parts(PLAN, listed)[1].etag == "e"


def test_two_different_copies_in_the_same_second_are_refused() -> None:
    listed = [_part(PLAN, 1), _part(PLAN, 2, etag="a"), _part(PLAN, 2, etag="b"), _part(PLAN, 3)]
    with pytest.raises(Conflict, match="sent twice with different bytes"):
        _check_parts(PLAN, listed)


def test_the_same_bytes_sent_twice_in_one_second_are_one_part() -> None:
    listed = [_part(PLAN, 1), _part(PLAN, 2), _part(PLAN, 2), _part(PLAN, 3)]
    assert len(_check_parts(PLAN, listed)) == 3
