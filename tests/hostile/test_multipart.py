"""Multipart abuse against `POST /api/v1/links`: refused quickly, nothing kept, still alive.

Thousands of parts, huge or countless part headers, a missing or invalid boundary, a body
that never closes its final boundary, padding around the parts: each gets a short 4xx
within seconds, leaves no row, staged object or unfinished upload, and `/healthz` keeps
answering promptly all the while (polled from a thread in parallel).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pytest

from tests.hostile.checks import HealthWatch, assert_nothing_kept, ledger
from tests.hostile.conftest import UPLOAD_LIMIT, MiB
from tests.hostile.wire import RawAnswer, blocks, raw_connection
from tests.support.production import ProductionStack

BOUNDARY = b"hostile-7d1f0c"
FORM_TYPE = f"multipart/form-data; boundary={BOUNDARY.decode()}"
QUICK_SECONDS = 5.0
PROMPT_SECONDS = 1.0


@dataclass(frozen=True)
class Attempt:
    """How the server met one hostile form."""

    answer: RawAnswer
    seconds: float
    body_sent: int


def part(name: str, data: bytes, *, filename: str | None = None, extra: bytes = b"") -> bytes:
    """One form part (headers and data), starting with its boundary line."""
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return (
        b"--" + BOUNDARY + b"\r\nContent-Disposition: " + disposition.encode() + b"\r\n"
        b"Content-Type: application/octet-stream\r\n" + extra + b"\r\n" + data + b"\r\n"
    )


CLOSE = b"--" + BOUNDARY + b"--\r\n"


def send_form(
    stack: ProductionStack,
    pieces: Iterable[bytes],
    *,
    content_type: str = FORM_TYPE,
    length: int | None = None,
    chunked: bool = False,
    expect_continue: bool = False,
) -> Attempt:
    """POST a body piece by piece (chunked, or with `length` as its Content-Length)."""
    headers = {"Content-Type": content_type, "Accept": "application/json"}
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
    else:
        headers["Content-Length"] = str(length)
    if expect_continue:
        headers["Expect"] = "100-continue"
    with raw_connection(stack.base_url) as connection:
        started = time.monotonic()
        connection.send_head("POST", "/api/v1/links", headers)
        head = connection.sent
        if not expect_continue:
            connection.push(pieces, chunked=chunked)
        answer = connection.read_answer(timeout=30)
        return Attempt(answer, time.monotonic() - started, connection.sent - head)


def send_whole(stack: ProductionStack, body: bytes, *, content_type: str = FORM_TYPE) -> Attempt:
    """POST `body` with its Content-Length."""
    return send_form(stack, [body], content_type=content_type, length=len(body))


def assert_refused_quickly_and_alive(attempt: Attempt, health: HealthWatch, *status: int) -> None:
    """The answer is one of `status`, short, within seconds; /healthz never lagged."""
    assert attempt.answer.status in status, (attempt.answer.status, attempt.answer.body[:200])
    assert len(attempt.answer.body) < 300
    assert attempt.seconds < QUICK_SECONDS
    assert health.failures == []
    assert health.worst < PROMPT_SECONDS, f"/healthz took {health.worst:.2f} s"


@pytest.fixture
def health(stack: ProductionStack) -> Iterator[HealthWatch]:
    """`/healthz` polled from a thread while the test attacks."""
    with HealthWatch(stack.base_url) as watch:
        yield watch


def test_thousands_of_parts_are_refused_quickly(
    stack: ProductionStack, health: HealthWatch
) -> None:
    before = ledger(stack)
    body = b"".join(part(f"f{n}", b"v") for n in range(5000)) + CLOSE
    attempt = send_whole(stack, body)
    assert_refused_quickly_and_alive(attempt, health, 400, 413)
    assert_nothing_kept(stack, before)


def test_a_part_header_of_100_kb_is_refused(stack: ProductionStack, health: HealthWatch) -> None:
    before = ledger(stack)
    huge = b"X-Padding: " + b"p" * 100_000 + b"\r\n"
    body = part("file", b"data", filename="a.txt", extra=huge) + CLOSE
    attempt = send_whole(stack, body)
    assert_refused_quickly_and_alive(attempt, health, 400, 413, 431)
    assert_nothing_kept(stack, before)


def test_thousands_of_headers_in_one_part_are_refused(
    stack: ProductionStack, health: HealthWatch
) -> None:
    before = ledger(stack)
    many = b"".join(b"X-H%d: v\r\n" % n for n in range(20_000))
    body = part("file", b"data", filename="a.txt", extra=many) + CLOSE
    attempt = send_whole(stack, body)
    assert_refused_quickly_and_alive(attempt, health, 400, 413, 431)
    assert_nothing_kept(stack, before)


def test_form_without_a_boundary_is_400_before_its_body_is_sent(
    stack: ProductionStack, health: HealthWatch
) -> None:
    before = ledger(stack)
    attempt = send_form(
        stack, [], content_type="multipart/form-data", length=MiB, expect_continue=True
    )
    assert_refused_quickly_and_alive(attempt, health, 400)
    assert_nothing_kept(stack, before)


@pytest.mark.parametrize(
    "boundary",
    ['""', "a" * 200, '"unterminated', "b\x7fd", "=;,"],
    ids=["empty", "200-chars", "unterminated-quote", "control-char", "separators"],
)
def test_invalid_boundary_is_400(
    stack: ProductionStack, health: HealthWatch, boundary: str
) -> None:
    before = ledger(stack)
    body = part("file", b"data", filename="a.txt") + CLOSE
    attempt = send_whole(stack, body, content_type=f"multipart/form-data; boundary={boundary}")
    assert_refused_quickly_and_alive(attempt, health, 400)
    assert_nothing_kept(stack, before)


def test_body_that_never_closes_its_final_boundary_is_400(
    stack: ProductionStack, health: HealthWatch
) -> None:
    before = ledger(stack)
    body = part("file", b"d" * 200_000, filename="a.txt")  # no closing boundary
    attempt = send_whole(stack, body)
    assert_refused_quickly_and_alive(attempt, health, 400)
    assert_nothing_kept(stack, before)


def test_chunked_body_that_ends_without_its_final_boundary_is_400(
    stack: ProductionStack, health: HealthWatch
) -> None:
    before = ledger(stack)
    opening = part("file", b"", filename="a.txt").removesuffix(b"\r\n")
    attempt = send_form(stack, [opening, *blocks(MiB)], chunked=True)
    assert_refused_quickly_and_alive(attempt, health, 400)
    assert_nothing_kept(stack, before)


def test_chunked_body_whose_final_boundary_never_comes_is_408(
    stack: ProductionStack, health: HealthWatch
) -> None:
    before = ledger(stack)
    opening = part("file", b"", filename="a.txt").removesuffix(b"\r\n")
    with raw_connection(stack.base_url) as connection:
        connection.send_head(
            "POST", "/api/v1/links", {"Content-Type": FORM_TYPE, "Transfer-Encoding": "chunked"}
        )
        connection.send_chunk(opening + b"x" * 1000)
        answer = connection.read_answer(timeout=10)
    assert answer.status == 408
    assert health.worst < PROMPT_SECONDS
    assert_nothing_kept(stack, before)


def test_file_part_past_the_limit_is_413(stack: ProductionStack, health: HealthWatch) -> None:
    before = ledger(stack)
    opening = part("file", b"", filename="a.txt").removesuffix(b"\r\n")
    attempt = send_form(stack, [opening, *blocks(3 * UPLOAD_LIMIT)], chunked=True)
    assert_refused_quickly_and_alive(attempt, health, 413)
    assert attempt.body_sent < 3 * UPLOAD_LIMIT
    assert_nothing_kept(stack, before)


def test_padding_past_the_final_boundary_beyond_the_limit_is_413(
    stack: ProductionStack, health: HealthWatch
) -> None:
    before = ledger(stack)
    small = part("file", b"tiny", filename="a.txt") + CLOSE
    attempt = send_form(stack, [small, *blocks(3 * UPLOAD_LIMIT)], chunked=True)
    assert_refused_quickly_and_alive(attempt, health, 413)
    assert attempt.body_sent < 3 * UPLOAD_LIMIT
    assert_nothing_kept(stack, before)


def test_garbage_before_the_first_boundary_is_refused_quickly(
    stack: ProductionStack, health: HealthWatch
) -> None:
    before = ledger(stack)
    attempt = send_form(stack, blocks(3 * UPLOAD_LIMIT, fill=b"g"), chunked=True)
    assert_refused_quickly_and_alive(attempt, health, 400, 413)
    assert attempt.body_sent < 3 * UPLOAD_LIMIT
    assert_nothing_kept(stack, before)


def test_a_text_field_of_megabytes_is_refused(stack: ProductionStack, health: HealthWatch) -> None:
    before = ledger(stack)
    opening = part("password", b"").removesuffix(b"\r\n")
    attempt = send_form(stack, [opening, *blocks(3 * UPLOAD_LIMIT)], chunked=True)
    assert_refused_quickly_and_alive(attempt, health, 400, 413)
    assert attempt.body_sent < 3 * UPLOAD_LIMIT
    assert_nothing_kept(stack, before)
