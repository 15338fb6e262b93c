"""How the pages say sizes and lifetimes."""

from __future__ import annotations

import pytest

from app.web.format import duration_label, human_size, lifetime_choices


def test_default_lifetimes_stop_at_24_hours_which_comes_last() -> None:
    assert lifetime_choices(86400) == [
        ("3600", "1 hour"),
        ("21600", "6 hours"),
        ("43200", "12 hours"),
        ("86400", "24 hours"),
    ]


def test_a_longer_maximum_adds_days() -> None:
    assert [label for _, label in lifetime_choices(7 * 86400)][-3:] == [
        "24 hours",
        "3 days",
        "7 days",
    ]


def test_an_odd_maximum_is_offered_as_it_is() -> None:
    assert lifetime_choices(5400) == [("3600", "1 hour"), ("5400", "90 minutes")]


@pytest.mark.parametrize(
    ("seconds", "label"), [(45, "45 seconds"), (60, "1 minute"), (86400, "24 hours")]
)
def test_duration_labels(seconds: int, label: str) -> None:
    assert duration_label(seconds) == label


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 bytes"),
        (1, "1 byte"),
        (1023, "1023 bytes"),
        (1536, "1.5 KiB"),
        (5 * 1024**3, "5.0 GiB"),
    ],
)
def test_human_sizes(size: int, text: str) -> None:
    assert human_size(size) == text
