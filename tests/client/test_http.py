"""Retries and error lines of the client's HTTP, against httpx's in-process transport.

A MockTransport stands for faults a live server will not show on cue: a refused
connection, 503s with Retry-After. The live answers are in tests/e2e.
"""

from __future__ import annotations

import httpx
import pytest

from app.client import errors
from app.client.errors import ClientError, exit_code_for
from app.client.http import RETRIES, error_message, with_retries


def _client(answers: list[httpx.Response | Exception]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_503_is_retried_after_its_retry_after() -> None:
    waits: list[float] = []
    client = _client([httpx.Response(503, headers={"Retry-After": "3"}), httpx.Response(200)])
    response = with_retries(lambda: client.get("http://h/"), "x", sleep=waits.append)
    assert response.status_code == 200
    assert waits == [3.0]


def test_connection_errors_are_retried_then_reported() -> None:
    waits: list[float] = []
    refused = httpx.ConnectError("refused")
    client = _client([refused] * (RETRIES + 1))
    with pytest.raises(ClientError) as failed:
        with_retries(lambda: client.get("http://h/"), "upload", sleep=waits.append)
    assert failed.value.exit_code == errors.EXIT_NETWORK
    assert failed.value.message == "upload: ConnectError: refused"
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0]


def test_a_503_that_stays_is_returned_for_the_caller_to_report() -> None:
    client = _client([httpx.Response(503)] * (RETRIES + 1))
    response = with_retries(lambda: client.get("http://h/"), "x", sleep=lambda _s: None)
    assert response.status_code == 503


def test_the_error_line_is_the_servers_reason_on_one_line() -> None:
    answer = httpx.Response(413, json={"error": "the file is\nlarger than 8 MB", "status": 413})
    assert error_message(answer) == "HTTP 413: the file is larger than 8 MB"
    assert error_message(httpx.Response(410)) == (
        "HTTP 410: this link has expired, was deleted, or is used up"
    )


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, errors.EXIT_AUTH),
        (403, errors.EXIT_AUTH),
        (404, errors.EXIT_NOT_FOUND),
        (410, errors.EXIT_NOT_FOUND),
        (429, errors.EXIT_RATE_LIMITED),
        (503, errors.EXIT_UNAVAILABLE),
        (500, errors.EXIT_UNAVAILABLE),
        (413, errors.EXIT_REFUSED),
        (507, errors.EXIT_REFUSED),
        (400, errors.EXIT_REFUSED),
    ],
)
def test_each_status_has_its_exit_code(status: int, code: int) -> None:
    assert exit_code_for(status) == code
