"""Uploads over HTTP: `PUT /{name}` and `POST /api/v1/links`, their options and limits.

Each option is checked the way a client meets it: the answer's status and body, what the
link then does, and what was (or was not) stored.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import unicodedata
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest

from app.db.clock import as_utc
from app.db.models import Job, Link
from app.settings import Settings
from tests.conftest import AppClient
from tests.support.asgi import running_app, upload
from tests.support.datadir import blob_files, staging_files
from tests.support.forms import CONTENT_TYPE, basic, field, file, multipart
from tests.support.jobs import settled_by_a_worker
from tests.support.rows import count_rows, link_row

SHARE_URL = re.compile(r"^http://sealdrop\.test/s/([A-Za-z0-9_-]{22,})$")
JSON_KEYS = {
    "token",
    "url",
    "download_url",
    "manage_token",
    "expires_at",
    "state",
    "size",
    "sha256",
}
LIMIT = 100_000


@pytest.fixture
def small_settings(make_settings: Callable[..., Settings]) -> Settings:
    """A server that accepts at most 100 000 bytes."""
    return make_settings(max_upload_bytes=LIMIT)


@pytest.fixture
async def small_client(small_settings: Settings) -> AsyncIterator[AppClient]:
    """The app with a 100 000-byte upload limit."""
    async with running_app(small_settings) as client:
        yield client


async def _ttl_of(client: AppClient, token: str) -> float:
    row = await link_row(client.services, token)
    assert row is not None
    return (as_utc(row.expires_at) - as_utc(row.created_at)).total_seconds()


async def _nothing_stored(client: AppClient, settings: Settings) -> None:
    assert staging_files(settings) == []
    assert blob_files(settings) == []
    assert await count_rows(client.services, Link) == 0
    assert await count_rows(client.services, Job) == 0


# The answer


async def test_put_answers_201_with_the_share_url_and_a_newline(client: AppClient) -> None:
    answer = await client.put("/notes.txt", content=b"some notes")
    assert answer.status_code == 201
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.text.endswith("\n")
    url = answer.text.removesuffix("\n")
    assert SHARE_URL.match(url)
    assert (await client.get(url, headers={"Accept": "*/*"})).content == b"some notes"


async def test_put_with_accept_json_answers_the_documented_keys(client: AppClient) -> None:
    answer = await client.put(
        "/notes.txt", content=b"some notes", headers={"Accept": "application/json"}
    )
    body = answer.json()
    assert answer.status_code == 201
    assert set(body) == JSON_KEYS
    assert body["state"] == "ready"
    assert body["size"] == 10
    assert body["url"] == f"http://sealdrop.test/s/{body['token']}"
    assert body["download_url"] == f"http://sealdrop.test/d/{body['token']}/notes.txt"
    assert body["expires_at"].endswith("Z")
    assert re.fullmatch(r"[0-9a-f]{64}", body["sha256"])


async def test_put_sends_location_download_url_and_manage_token_headers(
    client: AppClient,
) -> None:
    answer = await client.put("/notes.txt", content=b"x", headers={"Accept": "application/json"})
    body = answer.json()
    assert answer.headers["location"] == body["url"]
    assert answer.headers["sealdrop-download-url"] == body["download_url"]
    assert answer.headers["sealdrop-manage-token"] == body["manage_token"]
    assert answer.headers["cache-control"] == "no-store"


async def test_prefer_respond_async_answers_202_and_the_link_works_once_sealed(
    idle_client: AppClient,
) -> None:
    # A worker of its own (as in production): the embedded mode seals in the request.
    created = await upload(idle_client, b"later", headers={"Prefer": "respond-async"})
    assert created.status == 202
    assert created.body["state"] == "pending"
    row = await link_row(idle_client.services, created.token)
    assert row is not None
    assert await settled_by_a_worker(idle_client.services, [row.id]) == ["ready"]
    assert (await idle_client.get(f"/d/{created.token}")).content == b"later"


async def test_an_upload_sealed_in_the_request_answers_ready_even_when_asked_not_to_wait(
    client: AppClient,
) -> None:
    created = await upload(client, b"at once", headers={"Prefer": "respond-async"})
    assert created.status == 201
    assert created.body["state"] == "ready"


async def test_put_without_a_worker_waits_upload_wait_seconds_then_answers_202(
    make_settings: Callable[..., Settings],
) -> None:
    async with running_app(make_settings(worker="off", upload_wait_seconds=0.5)) as client:
        started = time.monotonic()
        answer = await client.put("/a.txt", content=b"a")
        waited = time.monotonic() - started
    assert answer.status_code == 202
    assert 0.45 <= waited < 10


# Expires-In


@pytest.mark.parametrize(
    ("expires_in", "seconds"), [("90", 90), ("15m", 900), ("2h", 7200), ("1d", 86400)]
)
async def test_expires_in_within_the_maximum_sets_the_expiry(
    client: AppClient, expires_in: str, seconds: int
) -> None:
    created = await upload(client, headers={"Expires-In": expires_in})
    assert await _ttl_of(client, created.token) == pytest.approx(seconds, abs=0.01)


async def test_no_expires_in_gives_the_maximum(client: AppClient) -> None:
    created = await upload(client)
    assert await _ttl_of(client, created.token) == pytest.approx(
        timedelta(hours=24).total_seconds(), abs=0.01
    )


@pytest.mark.parametrize("expires_in", ["0", "0m", "abc", "1w", "-5", "1.5h", "15 m", "m"])
async def test_malformed_or_zero_expires_in_is_refused(
    client: AppClient, settings: Settings, expires_in: str
) -> None:
    answer = await client.put("/a.txt", content=b"a", headers={"Expires-In": expires_in})
    assert answer.status_code == 400
    assert "Expires-In" in answer.text
    await _nothing_stored(client, settings)


@pytest.mark.parametrize("expires_in", ["86401", "25h", "1441m", "2d"])
async def test_expires_in_over_the_maximum_is_refused_not_shortened(
    client: AppClient, settings: Settings, expires_in: str
) -> None:
    answer = await client.put("/a.txt", content=b"a", headers={"Expires-In": expires_in})
    assert answer.status_code == 400
    await _nothing_stored(client, settings)


# Max-Downloads


@pytest.mark.parametrize("limit", [1, 1_000_000])
async def test_max_downloads_within_bounds_is_stored(client: AppClient, limit: int) -> None:
    created = await upload(client, headers={"Max-Downloads": str(limit)})
    row = await link_row(client.services, created.token)
    assert row is not None
    assert row.max_downloads == limit


@pytest.mark.parametrize("limit", ["0", "1000001", "-1", "1.0", "ten", "1e3"])
async def test_max_downloads_out_of_bounds_is_refused(
    client: AppClient, settings: Settings, limit: str
) -> None:
    answer = await client.put("/a.txt", content=b"a", headers={"Max-Downloads": limit})
    assert answer.status_code == 400
    assert "Max-Downloads" in answer.text
    await _nothing_stored(client, settings)


# '²' as Starlette reads the latin-1 byte 0xb2: str.isdigit() says yes, int() says no.
SUPERSCRIPT_TWO = "\u00b2".encode("latin-1")


@pytest.mark.parametrize("limit", [SUPERSCRIPT_TWO, b"9" * 5000])
async def test_max_downloads_that_is_not_a_short_ascii_number_is_a_short_400(
    client: AppClient, settings: Settings, limit: bytes
) -> None:
    answer = await client.put("/a.txt", content=b"a", headers={"Max-Downloads": limit})
    assert answer.status_code == 400
    assert answer.text.count("\n") == 1
    assert "Max-Downloads" in answer.text
    await _nothing_stored(client, settings)


# Link-Password


async def test_link_password_that_is_not_utf8_is_refused(
    client: AppClient, settings: Settings
) -> None:
    answer = await client.put(
        "/a.txt", content=b"a", headers=[(b"Link-Password", b"\xff\xfesecret")]
    )
    assert answer.status_code == 400
    await _nothing_stored(client, settings)


async def test_link_password_over_1024_bytes_is_refused(
    client: AppClient, settings: Settings
) -> None:
    answer = await client.put("/a.txt", content=b"a", headers={"Link-Password": "p" * 1025})
    assert answer.status_code == 400
    await _nothing_stored(client, settings)


async def test_link_password_of_exactly_1024_bytes_is_accepted(client: AppClient) -> None:
    created = await upload(client, headers={"Link-Password": "p" * 1024})
    opened = await client.get(f"/d/{created.token}", headers={"Authorization": basic("p" * 1024)})
    assert opened.status_code == 200


async def test_password_set_in_nfd_opens_with_the_nfc_spelling(client: AppClient) -> None:
    nfd = unicodedata.normalize("NFD", "café")
    nfc = unicodedata.normalize("NFC", "café")
    assert nfd.encode() != nfc.encode()
    created = await upload(client, headers={"Link-Password": nfd.encode()})
    opened = await client.get(f"/d/{created.token}", headers={"Authorization": basic(nfc)})
    assert opened.status_code == 200


# Size limit


async def test_declared_content_length_over_the_limit_is_413_and_nothing_is_stored(
    small_client: AppClient, small_settings: Settings
) -> None:
    answer = await small_client.put("/big.bin", content=b"x" * (LIMIT + 1))
    assert answer.status_code == 413
    await _nothing_stored(small_client, small_settings)


async def test_body_exactly_at_the_limit_is_accepted(small_client: AppClient) -> None:
    created = await upload(small_client, b"x" * LIMIT, name="big.bin")
    assert created.body["size"] == LIMIT


async def test_streamed_body_crossing_the_limit_is_413_and_leaves_nothing(
    small_client: AppClient, small_settings: Settings
) -> None:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(30):
            yield b"y" * 10_000

    answer = await small_client.put("/big.bin", content=body())
    assert "content-length" not in answer.request.headers
    assert answer.status_code == 413
    await _nothing_stored(small_client, small_settings)


async def test_post_declaring_a_body_over_the_limit_is_413(
    small_client: AppClient, small_settings: Settings
) -> None:
    answer = await small_client.post(
        "/api/v1/links",
        content=multipart(file(b"z" * (LIMIT + 10))),
        headers={"Content-Type": CONTENT_TYPE},
    )
    assert answer.status_code == 413
    await _nothing_stored(small_client, small_settings)


@pytest.mark.parametrize(("length", "status"), [(SUPERSCRIPT_TWO, 400), (b"9" * 5000, 413)])
async def test_content_length_of_strange_or_thousands_of_digits_is_refused_before_the_body(
    client: AppClient, settings: Settings, length: bytes, status: int
) -> None:
    answer = await client.put("/a.txt", content=b"a", headers={"Content-Length": length})
    assert answer.status_code == status
    assert answer.text.count("\n") == 1
    await _nothing_stored(client, settings)


# Duration limit


async def _endless_body() -> AsyncIterator[bytes]:
    """A body that keeps coming, never idle, for far longer than the limit below."""
    for _ in range(100):
        yield b"s" * 1000
        await asyncio.sleep(0.05)


@pytest.fixture
async def brief_client(make_settings: Callable[..., Settings]) -> AsyncIterator[AppClient]:
    """The app with uploads allowed to last 0.3 s (and no worker, no wait for sealing)."""
    settings = make_settings(max_upload_seconds=0.3, worker="off", upload_wait_seconds=0)
    async with running_app(settings) as client:
        yield client


async def test_put_lasting_longer_than_the_longest_upload_is_408_and_leaves_nothing(
    brief_client: AppClient,
) -> None:
    answer = await brief_client.put("/slow.bin", content=_endless_body())
    assert answer.status_code == 408
    assert (
        answer.text == "the upload took longer than this server allows (0.3 s); nothing was kept\n"
    )
    assert answer.headers["connection"] == "close"
    await _nothing_stored(brief_client, brief_client.services.settings)


async def test_post_lasting_longer_than_the_longest_upload_is_408_and_leaves_nothing(
    brief_client: AppClient,
) -> None:
    async def form() -> AsyncIterator[bytes]:
        head, _, tail = multipart(file(b"<file>")).partition(b"<file>")
        yield head
        async for chunk in _endless_body():
            yield chunk
        yield tail

    answer = await brief_client.post(
        "/api/v1/links", content=form(), headers={"Content-Type": CONTENT_TYPE}
    )
    assert answer.status_code == 408
    assert answer.json()["error"].startswith("the upload took longer than this server allows")
    await _nothing_stored(brief_client, brief_client.services.settings)


# POST multipart


async def _post(client: AppClient, body: bytes) -> tuple[int, dict[str, object]]:
    answer = await client.post(
        "/api/v1/links",
        content=body,
        headers={"Content-Type": CONTENT_TYPE, "Accept": "application/json"},
    )
    return answer.status_code, answer.json()


async def test_post_reads_fields_before_and_after_the_file(client: AppClient) -> None:
    status, body = await _post(
        client,
        multipart(
            field("expires_in", "2h"),
            file(b"%PDF-1.7 report", filename="report.pdf"),
            field("max_downloads", "3"),
            field("password", "after the file"),
        ),
    )
    assert status == 201, body
    token = str(body["token"])
    assert await _ttl_of(client, token) == pytest.approx(7200, abs=0.01)
    row = await link_row(client.services, token)
    assert row is not None
    assert (row.max_downloads, row.filename, row.content_type) == (
        3,
        "report.pdf",
        "application/pdf",
    )
    assert (await client.get(f"/d/{token}")).status_code == 401
    opened = await client.get(f"/d/{token}", headers={"Authorization": basic("after the file")})
    assert opened.content == b"%PDF-1.7 report"


async def test_post_without_a_file_is_400_and_leaves_nothing(
    client: AppClient, settings: Settings
) -> None:
    status, body = await _post(client, multipart(field("expires_in", "1h")))
    assert status == 400
    assert "file" in str(body["error"])
    await _nothing_stored(client, settings)


async def test_post_with_two_files_is_400_and_leaves_nothing(
    client: AppClient, settings: Settings
) -> None:
    status, _ = await _post(client, multipart(file(b"one"), file(b"two", filename="b.pdf")))
    assert status == 400
    await _nothing_stored(client, settings)


@pytest.mark.parametrize(
    "option", [("expires_in", "2d"), ("max_downloads", "0"), ("password", b"\xc3\x28")]
)
async def test_post_with_a_bad_option_after_the_file_is_400_and_leaves_no_staging_object(
    client: AppClient, settings: Settings, option: tuple[str, str | bytes]
) -> None:
    status, _ = await _post(client, multipart(file(b"staged then dropped"), field(*option)))
    assert status == 400
    await _nothing_stored(client, settings)


@pytest.mark.parametrize(
    "option",
    [
        ("max_downloads", "\u00b2"),  # superscript two: isdigit() but no int()
        ("max_downloads", "\u0663"),  # Arabic-Indic three: int() reads it, the contract not
        ("expires_in", "\u0663\u0666\u0660\u0660"),
    ],
)
async def test_post_with_a_number_in_other_digits_than_ascii_is_400_and_leaves_nothing(
    client: AppClient, settings: Settings, option: tuple[str, str]
) -> None:
    status, body = await _post(client, multipart(file(b"staged then dropped"), field(*option)))
    assert status == 400
    assert option[0].replace("_", "-").lower() in str(body["error"]).lower()
    await _nothing_stored(client, settings)


async def test_post_with_a_bad_option_before_the_file_is_refused_before_the_body_is_read(
    client: AppClient, settings: Settings
) -> None:
    body = multipart(field("max_downloads", "0"), file(os.urandom(1 << 20)))
    chunk = 1 << 14
    sent = 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal sent
        for start in range(0, len(body), chunk):
            sent += 1
            yield body[start : start + chunk]

    answer = await client.post(
        "/api/v1/links", content=stream(), headers={"Content-Type": CONTENT_TYPE}
    )
    assert answer.status_code == 400
    assert "max_downloads" in answer.json()["error"].lower().replace("-", "_")
    assert sent < len(body) // chunk // 2
    await _nothing_stored(client, settings)


async def test_post_that_is_not_multipart_is_400(client: AppClient) -> None:
    answer = await client.post(
        "/api/v1/links", content=b"raw", headers={"Content-Type": "application/octet-stream"}
    )
    assert answer.status_code == 400


# File names


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\report.pdf", "report.pdf"),
        ("bell\x07and\u202eoverride.txt", "bellandoverride.txt"),
        ("...", "file"),
    ],
)
async def test_form_file_name_is_stored_without_path_parts_or_controls(
    client: AppClient, sent: str, stored: str
) -> None:
    status, body = await _post(client, multipart(file(b"data", filename=sent)))
    assert status == 201, body
    row = await link_row(client.services, str(body["token"]))
    assert row is not None
    assert row.filename == stored


async def test_put_file_name_loses_control_characters(client: AppClient) -> None:
    created = await upload(client, name="%01evil%0Aname.txt")
    row = await link_row(client.services, created.token)
    assert row is not None
    assert row.filename == "evilname.txt"
    assert created.body["download_url"].endswith("/evilname.txt")
