"""The type a download goes out with (`app/domain/filenames.py`): the stored one only when a
browser can do nothing with it but show it inertly or save it."""

from __future__ import annotations

import pytest

from app.domain.filenames import served_content_type

OCTET_STREAM = "application/octet-stream"


@pytest.mark.parametrize(
    "stored",
    [
        "TEXT/JavaScript; charset=utf-8",
        "text/javascript1.5",
        "text/livescript",
        "text/html; charset=utf-8",
        "Image/SVG+XML",
        "image/svg",
        "application/xhtml+xml",
        "text/css",
        "text/xml",
        "application/xml",
        "audio/x-whatever+xml",
        "multipart/x-mixed-replace; boundary=x",
        "text/plain-but-not-really",
        "",
        None,
        "not a type",
    ],
)
def test_types_a_browser_could_render_run_or_guess_at_are_octet_stream(stored: str | None) -> None:
    assert served_content_type(stored) == OCTET_STREAM


@pytest.mark.parametrize(
    ("stored", "served"),
    [
        ("text/plain; charset=UTF-8", "text/plain; charset=utf-8"),
        ('text/plain; format=flowed; charset="iso-8859-1"', "text/plain; charset=iso-8859-1"),
        ("text/plain; charset=utf-8\r\nX-Injected: 1", "text/plain"),
        ("text/plain;charset=", "text/plain"),
        ("text/csv; charset=utf-8; header=present", "text/csv"),
        ("Image/PNG; x=1", "image/png"),
        ("video/webm;codecs=vp9", "video/webm"),
    ],
)
def test_parameters_go_except_the_charset_of_plain_text(stored: str, served: str) -> None:
    assert served_content_type(stored) == served
