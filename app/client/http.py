"""The client's HTTP: one httpx client, answers turned into one-line errors, and retries.

Retries are for what a retry can fix: a connection that broke or never opened, and a
503 (still sealing, or a backing service away) with its Retry-After, a few times each.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable

import httpx

from app.client.errors import EXIT_NETWORK, ClientError, exit_code_for

USER_AGENT = "sealdrop-client/1"
RETRIES = 5
MAX_WAIT_SECONDS = 30.0
PLAIN_REASONS = {
    401: "a password or upload key is needed, or it is wrong",
    403: "refused",
    404: "no such link",
    410: "this link has expired, was deleted, or is used up",
    429: "too many requests; try again later",
    503: "the server is unavailable (or still sealing); try again later",
}


def open_client() -> httpx.Client:
    """An HTTP client with generous read timeouts (the server may seal before answering)."""
    return httpx.Client(
        timeout=httpx.Timeout(30.0, read=300.0),
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        follow_redirects=False,
    )


def error_message(response: httpx.Response) -> str:
    """The server's own one-line reason for an error answer, else its status line."""
    reason = ""
    if not response.is_stream_consumed:
        with contextlib.suppress(httpx.HTTPError):
            response.read()
    try:
        body = json.loads(response.content)
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            reason = body["error"]
    except (ValueError, httpx.ResponseNotRead):
        pass
    if not reason:  # a HEAD, or a proxy's answer
        reason = PLAIN_REASONS.get(response.status_code) or response.reason_phrase or "error"
    return f"HTTP {response.status_code}: {' '.join(reason.split())[:200]}"


def fail(response: httpx.Response, what: str) -> ClientError:
    """A `ClientError` for an error answer to `what` (a short description of the request)."""
    return ClientError(f"{what}: {error_message(response)}", exit_code_for(response.status_code))


def retry_after(response: httpx.Response, default: float) -> float:
    """The seconds a 503/429 asks us to wait (Retry-After as a number), capped."""
    raw = response.headers.get("retry-after", "")
    seconds = float(raw) if raw.strip().isdigit() else default
    return min(max(seconds, 0.0), MAX_WAIT_SECONDS)


def backoff(attempt: int) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, 4, … up to the cap)."""
    return float(min(2 ** (attempt - 1), MAX_WAIT_SECONDS))


def with_retries(
    send: Callable[[], httpx.Response],
    what: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> httpx.Response:
    """`send()` until it gets an answer that is not a 503, at most `RETRIES` more times.

    A connection error is retried with backoff; a 503 after its Retry-After. What is
    returned may still be an error answer: the caller decides what it means.
    """
    for attempt in range(1, RETRIES + 2):
        try:
            response = send()
        except httpx.TransportError as error:
            if attempt > RETRIES:
                raise ClientError(f"{what}: {describe(error)}", EXIT_NETWORK) from None
            sleep(backoff(attempt))
            continue
        if response.status_code != 503 or attempt > RETRIES:
            return response
        wait = retry_after(response, backoff(attempt))
        response.close()
        sleep(wait)
    raise AssertionError("unreachable")


def describe(error: httpx.TransportError) -> str:
    """A connection failure in a few words (httpx's text may be empty)."""
    text = str(error).strip()
    return f"{type(error).__name__}{': ' + text if text else ''}"
