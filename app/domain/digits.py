"""Whole numbers in what clients send: ASCII digits only, read without int() on unbounded text.

`str.isdigit()` accepts '²', which int() refuses; the regular expression `\\d` accepts '٣',
which int() reads as 3; and int() refuses text of more than 4 300 digits. The numbers of
request headers and form fields are read here, so that none of this becomes a 500.
"""

from __future__ import annotations

import re

_MAX_DIGITS = 18
# Larger than any size, count, offset or duration Sealdrop deals with, and below 2**63.
HUGE: int = 10**_MAX_DIGITS
_DIGITS = re.compile(r"[0-9]+")


def whole_number(text: str) -> int | None:
    """The value of `text` if it is ASCII digits and nothing else, else None.

    A value of HUGE or more is HUGE: only its order of magnitude matters (past any file,
    over any limit), and int() is never given more than 18 digits.
    """
    if not _DIGITS.fullmatch(text):
        return None
    significant = text.lstrip("0")
    if len(significant) > _MAX_DIGITS:
        return HUGE
    return int(significant or "0")
