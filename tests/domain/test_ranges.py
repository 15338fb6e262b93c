"""The range a `Range` header asks for (`app/domain/ranges.py`): one range, cut at the end
of the file; anything else the whole file (RFC 9110 allows ignoring Range), or 416."""

from __future__ import annotations

import pytest

from app.domain.ranges import ByteRange, parse_range
from app.errors import RangeNotSatisfiable

SIZE = 1000


def test_no_header_asks_for_the_whole_file() -> None:
    assert parse_range(None, SIZE) is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", ByteRange(0, 100)),
        ("bytes=900-", ByteRange(900, 1000)),
        ("bytes=999-999", ByteRange(999, 1000)),
        ("bytes=-100", ByteRange(900, 1000)),
        (" bytes = 10 - 19 ", ByteRange(10, 20)),
    ],
)
def test_one_range_inside_the_file_is_taken_as_asked(header: str, expected: ByteRange) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize("header", ["bytes=500-1000", "bytes=500-" + "9" * 40])
def test_a_range_that_ends_past_the_file_is_cut_at_its_end(header: str) -> None:
    assert parse_range(header, SIZE) == ByteRange(500, SIZE)


def test_a_suffix_longer_than_the_file_is_the_whole_file_as_a_range() -> None:
    assert parse_range("bytes=-5000", SIZE) == ByteRange(0, SIZE)


@pytest.mark.parametrize(
    "header", ["bytes=0-1,5-6", "items=0-9", "bytes=-", "bytes=9-5", "bytes=a-b", "bytes=٣-٤"]
)
def test_several_or_malformed_ranges_ask_for_the_whole_file(header: str) -> None:
    assert parse_range(header, SIZE) is None


@pytest.mark.parametrize(
    ("header", "size"),
    [("bytes=1000-", SIZE), ("bytes=5000-6000", SIZE), ("bytes=-0", SIZE), ("bytes=0-", 0),
     ("bytes=-5", 0)],
)  # fmt: skip
def test_a_range_past_the_end_or_of_an_empty_file_is_not_satisfiable(
    header: str, size: int
) -> None:
    with pytest.raises(RangeNotSatisfiable) as refusal:
        parse_range(header, size)
    assert refusal.value.size == size


def test_a_range_counts_its_bytes() -> None:
    assert ByteRange(10, 20).length == 10
