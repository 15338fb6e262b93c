"""Whole numbers from request text (`app/domain/digits.py`): ASCII digits only, never int() on
thousands of digits."""

from __future__ import annotations

import pytest

from app.domain.digits import HUGE, whole_number


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("42", 42), ("000123", 123)])
def test_ascii_digits_are_their_value(text: str, value: int) -> None:
    assert whole_number(text) == value


@pytest.mark.parametrize("text", ["", " 1", "1 ", "+1", "-1", "1.0", "1e3", "\u00b2", "\u0663"])
def test_anything_but_ascii_digits_is_no_number(text: str) -> None:
    assert whole_number(text) is None


@pytest.mark.parametrize("text", ["9" * 5000, "1" + "0" * 18, "9" * 19])
def test_a_number_of_more_than_18_digits_is_huge(text: str) -> None:
    assert whole_number(text) == HUGE


def test_leading_zeros_do_not_make_a_number_huge() -> None:
    assert whole_number("0" * 5000 + "7") == 7
    assert whole_number("9" * 18) == HUGE - 1
