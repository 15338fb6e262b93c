"""Every refusal as curl sees it: the status (`-w '%{http_code}'`) and the headers it needs.

413s are also checked for what they leave behind: nothing (no staged object, no job row,
no unfinished write), whether the size was announced or the body streamed chunked.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.clients import CURL_HTTP_ERROR, curl
from tests.e2e.conftest import StackFactory
from tests.e2e.payloads import upload, write_payload
from tests.support.shared_stacks import PASSWORD_MAX_FAILURES, SMALL_UPLOAD_LIMIT
from tests.support.stack import Stack

SIZE = 100_000


def _status(*args: str) -> int:
    return curl("-o", "/dev/null", *args).status


def test_unknown_token_is_404(stack: Stack) -> None:
    assert _status(f"{stack.base_url}/d/{secrets.token_urlsafe(16)}") == 404


def test_used_up_link_is_410(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "once.bin"
    write_payload(source, SIZE)
    link = upload(stack, source, "-H", "Max-Downloads: 1")
    assert _status(link.download_url) == 200
    assert _status(link.download_url) == 410


def test_missing_password_is_401_with_a_basic_challenge(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "locked.bin"
    write_payload(source, SIZE)
    link = upload(stack, source, "-H", "Link-Password: right")
    result = curl("-o", "/dev/null", link.download_url)
    assert result.status == 401
    assert result.headers["www-authenticate"].startswith("Basic ")


def test_right_password_after_too_many_wrong_ones_is_429_with_retry_after(
    stack: Stack, tmp_path: Path
) -> None:
    source = tmp_path / "locked.bin"
    write_payload(source, SIZE)
    link = upload(stack, source, "-H", "Link-Password: right")
    for _ in range(PASSWORD_MAX_FAILURES):
        assert _status("-u", ":wrong", link.download_url) == 401
    result = curl("-o", "/dev/null", "-u", ":right", link.download_url)
    assert result.status == 429
    assert int(result.headers["retry-after"]) > 0


def test_range_past_the_end_is_416_with_the_size(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "short.bin"
    write_payload(source, SIZE)
    link = upload(stack, source)
    result = curl("-o", "/dev/null", "-r", f"{SIZE}-", link.download_url)
    assert result.status == 416
    assert result.headers["content-range"] == f"bytes */{SIZE}"


def test_link_still_being_sealed_is_503_with_retry_after(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    idle = make_stack(worker="off")
    source = tmp_path / "pending.bin"
    write_payload(source, SIZE)
    link = upload(idle, source, "-H", "Prefer: respond-async")
    assert link.status == 202
    result = curl("-o", "/dev/null", link.download_url)
    assert result.status == 503
    assert int(result.headers["retry-after"]) > 0
    assert result.headers["sealdrop-state"] == "pending"


@dataclass(frozen=True)
class Leftovers:
    """What an upload could leave behind in storage and the database."""

    staged: list[str]
    pending_writes: list[str]
    jobs: int
    links: int


def _leftovers(stack: Stack) -> Leftovers:
    return Leftovers(
        staged=stack.list_objects("staging/"),
        pending_writes=stack.list_pending_writes(),
        jobs=stack.sql("select count(*) as n from jobs")[0].n,
        links=stack.sql("select count(*) as n from links")[0].n,
    )


def nothing_new(before: Leftovers) -> Leftovers:
    """No staged object, unfinished write or job at all (earlier uploads are all sealed)."""
    return Leftovers(staged=[], pending_writes=[], jobs=0, links=before.links)


def test_too_large_upload_with_content_length_is_413_and_leaves_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    source = tmp_path / "huge.bin"
    write_payload(source, SMALL_UPLOAD_LIMIT + 1)
    before = _leftovers(stack)
    # curl sends `Expect: 100-continue`; the answer must come before any of the body.
    result = curl(
        "-f",
        "--expect100-timeout",
        "60",
        "-T",
        str(source),
        f"{stack.base_url}/",
        expect_exit=CURL_HTTP_ERROR,
    )
    assert result.status == 413
    assert result.size_upload == 0
    assert _leftovers(stack) == nothing_new(before)


def test_too_large_chunked_upload_from_stdin_is_413_and_leaves_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    source = tmp_path / "huge.bin"
    write_payload(source, SMALL_UPLOAD_LIMIT + 1)
    before = _leftovers(stack)
    with source.open("rb") as body:
        result = curl(
            "-T",
            "-",
            "-H",
            "Transfer-Encoding: chunked",
            f"{stack.base_url}/huge.bin",
            stdin=body,
        )
    assert result.status == 413
    assert result.text == "the file is larger than this server accepts\n"
    assert _leftovers(stack) == nothing_new(before)
