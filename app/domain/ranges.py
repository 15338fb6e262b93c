"""Byte ranges of a file: the one range a `Range` header asks for (RFC 9110), or none.

Pure: a header and a size in, a range out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.domain.digits import whole_number
from app.errors import RangeNotSatisfiable

_RANGE_RE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")


@dataclass(frozen=True, slots=True)
class ByteRange:
    """A plaintext range [start, stop)."""

    start: int
    stop: int

    @property
    def length(self) -> int:
        """Number of bytes in the range."""
        return self.stop - self.start


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single range a `Range` header asks for; None for the whole file.

    Several ranges, or a malformed header, are answered with the whole file (RFC 9110
    allows ignoring Range). A range wholly past the end, or any range of an empty file,
    raises RangeNotSatisfiable; one that ends past it is cut at the end, however many
    digits its end has.
    """
    if header is None:
        return None
    match = _RANGE_RE.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        suffix = _position(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return ByteRange(max(0, size - suffix), size)
    start = _position(first)
    if start >= size:
        raise RangeNotSatisfiable(size)
    stop = size if last == "" else min(_position(last) + 1, size)
    if stop <= start:
        return None
    return ByteRange(start, stop)


def _position(digits: str) -> int:
    # The pattern admits ASCII digits only: there is always a value.
    return whole_number(digits) or 0
