"""Serving a file (`app/domain/serving.py`), called without HTTP: the sequence of DESIGN §6
from a parsed `FileRequest` to a `FileAnswer`, a page, or the refusal it raises.

tests/api/test_downloads.py and tests/api/test_share_route.py hold the same answers over
HTTP; here each decision is checked where it is made, with real services.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest

from app.domain import serving
from app.domain.serving import FileAnswer, FileRequest, Page
from app.errors import BadRequest, LinkNotFound, NotReady, PasswordRequired, RangeNotSatisfiable
from app.settings import Settings
from tests.conftest import AppClient
from tests.support.asgi import running_app, upload
from tests.support.forms import basic
from tests.support.rows import link_row

DATA = os.urandom(100_000)
PASSWORD = "pw"
UNKNOWN = "A" * 22
GET = FileRequest(method="GET", client="192.0.2.1")
HEAD = replace(GET, method="HEAD")
RIGHT = replace(GET, authorization=basic(PASSWORD))


async def _body(answer: FileAnswer) -> bytes:
    assert answer.stream is not None
    try:
        return b"".join([chunk async for chunk in answer.stream])
    finally:
        await answer.stream.aclose()


async def _downloads(client: AppClient, token: str) -> int:
    row = await link_row(client.services, token)
    assert row is not None
    return row.download_count


async def _file(client: AppClient, **headers: str) -> str:
    return (await upload(client, DATA, name="data.bin", headers=headers)).token


async def _etag(client: AppClient, token: str) -> str:
    answer = await serving.serve(client.services, token, HEAD)
    assert isinstance(answer, FileAnswer)
    return answer.headers["ETag"]


@pytest.fixture
async def idle_client(make_settings: Callable[..., Settings]) -> AsyncIterator[AppClient]:
    """The app with its worker off: uploads stay pending."""
    async with running_app(make_settings(worker="off", upload_wait_seconds=0)) as client:
        yield client


# The file


async def test_a_get_answers_the_whole_file_and_spends_one_download(client: AppClient) -> None:
    token = await _file(client)
    answer = await serving.serve(client.services, token, GET)
    assert isinstance(answer, FileAnswer)
    assert answer.status == 200
    assert answer.headers["Content-Length"] == str(len(DATA))
    assert "Content-Range" not in answer.headers
    assert await _body(answer) == DATA
    assert await _downloads(client, token) == 1


async def test_a_head_answers_the_headers_with_no_stream_and_spends_nothing(
    client: AppClient,
) -> None:
    token = await _file(client)
    answer = await serving.serve(client.services, token, HEAD)
    assert isinstance(answer, FileAnswer)
    assert (answer.status, answer.stream) == (200, None)
    assert answer.headers["Content-Length"] == str(len(DATA))
    assert await _downloads(client, token) == 0


async def test_every_file_answer_carries_the_file_headers(client: AppClient) -> None:
    token = await _file(client)
    answer = await serving.serve(client.services, token, HEAD)
    assert isinstance(answer, FileAnswer)
    assert serving.FILE_HEADERS.items() <= answer.headers.items()
    assert answer.headers["ETag"].startswith('"')
    assert answer.headers["Repr-Digest"].startswith("sha-256=:")
    assert answer.headers["Content-Disposition"].startswith("attachment;")


async def test_a_range_answers_206_with_only_its_bytes(client: AppClient) -> None:
    token = await _file(client)
    answer = await serving.serve(client.services, token, replace(GET, range="bytes=70000-70099"))
    assert isinstance(answer, FileAnswer)
    assert answer.status == 206
    assert answer.headers["Content-Range"] == f"bytes 70000-70099/{len(DATA)}"
    assert answer.headers["Content-Length"] == "100"
    assert await _body(answer) == DATA[70000:70100]


async def test_a_range_under_the_files_own_if_range_is_honoured(client: AppClient) -> None:
    token = await _file(client)
    etag = await _etag(client, token)
    request = replace(GET, range="bytes=0-9", if_range=f" {etag} ")
    answer = await serving.serve(client.services, token, request)
    assert isinstance(answer, FileAnswer)
    assert answer.status == 206
    await _body(answer)


async def test_an_if_range_naming_another_version_answers_the_whole_file(
    client: AppClient,
) -> None:
    token = await _file(client)
    request = replace(GET, range="bytes=0-9", if_range='"another version"')
    answer = await serving.serve(client.services, token, request)
    assert isinstance(answer, FileAnswer)
    assert answer.status == 200
    assert await _body(answer) == DATA


async def test_a_matching_if_none_match_answers_304_with_its_etag_and_spends_nothing(
    client: AppClient,
) -> None:
    token = await _file(client)
    etag = await _etag(client, token)
    answer = await serving.serve(client.services, token, replace(GET, if_none_match=etag))
    assert answer == FileAnswer(304, {"ETag": etag, "Cache-Control": "no-store"})
    assert await _downloads(client, token) == 0


async def test_a_range_past_the_end_is_refused_and_spends_nothing(client: AppClient) -> None:
    token = await _file(client)
    with pytest.raises(RangeNotSatisfiable):
        await serving.serve(client.services, token, replace(GET, range=f"bytes={len(DATA)}-"))
    assert await _downloads(client, token) == 0


async def test_an_empty_file_is_answered_with_no_stream_and_spends_one_download(
    client: AppClient,
) -> None:
    token = (await upload(client, b"")).token
    answer = await serving.serve(client.services, token, GET)
    assert isinstance(answer, FileAnswer)
    assert (answer.status, answer.stream, answer.headers["Content-Length"]) == (200, None, "0")
    assert await _downloads(client, token) == 1


# The order of the checks


async def test_an_unknown_token_is_not_found_however_malformed_its_credentials(
    client: AppClient,
) -> None:
    with pytest.raises(LinkNotFound):
        await serving.serve(client.services, UNKNOWN, replace(GET, authorization="Basic !!"))


async def test_malformed_credentials_are_refused_before_the_sealing_is_checked(
    idle_client: AppClient,
) -> None:
    token = (await upload(idle_client, DATA)).token
    with pytest.raises(BadRequest):
        await serving.serve(idle_client.services, token, replace(GET, authorization="Basic !!"))


async def test_a_protected_link_asks_for_its_password_before_saying_it_is_pending(
    idle_client: AppClient,
) -> None:
    token = (await upload(idle_client, DATA, headers={"Link-Password": PASSWORD})).token
    with pytest.raises(PasswordRequired):
        await serving.serve(idle_client.services, token, GET)
    with pytest.raises(NotReady):
        await serving.serve(idle_client.services, token, RIGHT)


# Passwords and tickets


async def test_the_right_password_opens_a_protected_link(client: AppClient) -> None:
    token = await _file(client, **{"Link-Password": PASSWORD})
    answer = await serving.serve(client.services, token, RIGHT)
    assert isinstance(answer, FileAnswer)
    assert await _body(answer) == DATA


async def test_a_refused_ticket_sends_a_browser_back_to_the_password_form(
    client: AppClient,
) -> None:
    token = await _file(client, **{"Link-Password": PASSWORD})
    request = replace(GET, ticket="spent", wants_html=True)
    assert await serving.serve(client.services, token, request) is Page.PASSWORD_FORM


async def test_a_refused_ticket_gets_any_other_client_the_password_challenge(
    client: AppClient,
) -> None:
    token = await _file(client, **{"Link-Password": PASSWORD})
    with pytest.raises(PasswordRequired):
        await serving.serve(client.services, token, replace(GET, ticket="spent"))


async def test_a_password_beside_a_refused_ticket_decides_alone(client: AppClient) -> None:
    token = await _file(client, **{"Link-Password": PASSWORD})
    request = replace(GET, ticket="spent", wants_html=True, authorization=basic(PASSWORD))
    answer = await serving.serve(client.services, token, request)
    assert isinstance(answer, FileAnswer)
    assert await _body(answer) == DATA


# The share link


async def test_share_answers_a_browser_with_its_page_before_reading_the_link(
    client: AppClient,
) -> None:
    # The page resolves the link itself, and answers a 404 in its own words.
    request = replace(GET, wants_html=True)
    assert await serving.share(client.services, UNKNOWN, request) is Page.SHARE


async def test_share_answers_a_limited_link_with_its_page_whoever_asks(
    client: AppClient,
) -> None:
    token = await _file(client, **{"Max-Downloads": "3"})
    assert await serving.share(client.services, token, GET) is Page.SHARE
    assert await _downloads(client, token) == 0


async def test_share_answers_other_clients_with_the_file(client: AppClient) -> None:
    token = await _file(client)
    answer = await serving.share(client.services, token, GET)
    assert isinstance(answer, FileAnswer)
    assert await _body(answer) == DATA


async def test_share_of_an_unknown_token_is_not_found_for_other_clients(
    client: AppClient,
) -> None:
    with pytest.raises(LinkNotFound):
        await serving.share(client.services, UNKNOWN, GET)
