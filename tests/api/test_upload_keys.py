"""Upload policy `keys`: an upload key is needed, and its uploader's limits hold.

Each limit is met the way a client meets it (status, message, headers) and checked for
what it left behind: no link, no staged object, the quota row given back.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import select

from app.db.models import Link, UploaderUsage
from app.domain import uploaders
from app.domain.uploaders import Limits
from app.settings import Settings
from tests.conftest import AppClient
from tests.support.asgi import running_app, upload
from tests.support.datadir import blob_files, staging_files
from tests.support.forms import CONTENT_TYPE, file, multipart
from tests.support.rows import count_rows, link_row

CHALLENGE = 'Bearer realm="sealdrop uploads"'
ASYNC = {"Prefer": "respond-async", "Accept": "application/json"}


@pytest.fixture
async def keys_client(make_settings: Callable[..., Settings]) -> AsyncIterator[AppClient]:
    """An app under upload policy `keys`, its worker off."""
    settings = make_settings(upload_policy="keys", worker="off", upload_wait_seconds=0)
    async with running_app(settings) as http:
        yield http


async def new_key(http: AppClient, name: str = "alice", **limits: int) -> str:
    """Add an uploader with `limits` and return its key."""
    key = await uploaders.add_uploader(http.services, name, Limits(**limits), proxy=False)
    assert key is not None
    return key


def bearer(key: str) -> dict[str, str]:
    """The headers sending `key`."""
    return {**ASYNC, "Authorization": f"Bearer {key}"}


async def usage_today(http: AppClient) -> list[int]:
    """The bytes of every quota row."""
    async with http.services.sessions() as session:
        return list((await session.scalars(select(UploaderUsage.bytes))).all())


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer sdk_unknownunknownunknownunknownunknownunknown1", "Basic dXNlcjpwYXNz"],
)
async def test_an_upload_without_a_known_key_gets_401_with_a_bearer_challenge(
    keys_client: AppClient, authorization: str | None
) -> None:
    await new_key(keys_client)
    headers = {**ASYNC, **({"Authorization": authorization} if authorization else {})}
    answer = await keys_client.put("/f.txt", content=b"data", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == CHALLENGE
    assert "upload key" in answer.json()["error"]
    assert await count_rows(keys_client.services, Link) == 0
    assert staging_files(keys_client.services.settings) == []
    assert blob_files(keys_client.services.settings) == []


async def test_a_key_uploads_and_its_link_names_the_uploader(keys_client: AppClient) -> None:
    key = await new_key(keys_client, max_bytes_per_day=1000)
    created = await upload(keys_client, b"x" * 10, headers=bearer(key))
    row = await link_row(keys_client.services, created.token)
    assert row is not None
    assert row.uploader_id is not None
    assert await usage_today(keys_client) == [10]


async def test_a_form_upload_takes_the_key_too(keys_client: AppClient) -> None:
    key = await new_key(keys_client)
    body = multipart(file(b"hello", "a.txt", "text/plain"))
    headers = {**bearer(key), "Content-Type": CONTENT_TYPE}
    answer = await keys_client.post("/api/v1/links", content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    refused = await keys_client.post(
        "/api/v1/links", content=body, headers={**ASYNC, "Content-Type": CONTENT_TYPE}
    )
    assert refused.status_code == 401


async def test_a_revoked_key_is_refused_at_once(keys_client: AppClient) -> None:
    key = await new_key(keys_client)
    await upload(keys_client, headers=bearer(key))
    assert await uploaders.revoke_uploader(keys_client.services, "alice")
    answer = await keys_client.put("/f.txt", content=b"data", headers=bearer(key))
    assert answer.status_code == 401
    assert not await uploaders.revoke_uploader(keys_client.services, "alice")


async def test_a_malformed_bearer_header_is_a_400(keys_client: AppClient) -> None:
    answer = await keys_client.put(
        "/f.txt", content=b"data", headers={**ASYNC, "Authorization": "Bearer a b"}
    )
    assert answer.status_code == 400


async def test_the_daily_quota_refuses_with_429_and_retry_after_and_keeps_nothing(
    keys_client: AppClient,
) -> None:
    key = await new_key(keys_client, max_bytes_per_day=25)
    await upload(keys_client, b"x" * 10, headers=bearer(key))
    await upload(keys_client, b"x" * 10, headers=bearer(key))
    answer = await keys_client.put("/f.txt", content=b"x" * 10, headers=bearer(key))
    assert answer.status_code == 429
    assert 1 <= int(answer.headers["retry-after"]) <= 86401
    assert "daily quota of 25 bytes" in answer.json()["error"]
    assert await usage_today(keys_client) == [20]
    await upload(keys_client, b"x" * 5, headers=bearer(key))
    assert await usage_today(keys_client) == [25]
    assert staging_files(keys_client.services.settings) != []  # the three links' own


async def test_a_chunked_body_is_counted_as_it_arrives_and_what_is_unused_given_back(
    keys_client: AppClient,
) -> None:
    key = await new_key(keys_client, max_bytes_per_day=100)

    async def chunks(total: int) -> AsyncIterator[bytes]:
        for _ in range(total // 10):
            yield b"y" * 10

    answer = await keys_client.put("/c.txt", content=chunks(60), headers=bearer(key))
    assert answer.status_code == 202, answer.text
    assert await usage_today(keys_client) == [60]
    answer = await keys_client.put("/c.txt", content=chunks(50), headers=bearer(key))
    assert answer.status_code == 429
    assert await usage_today(keys_client) == [60]
    assert await count_rows(keys_client.services, Link) == 1


async def test_a_file_over_the_uploaders_size_is_a_413_declared_or_streamed(
    keys_client: AppClient,
) -> None:
    key = await new_key(keys_client, max_file_size=15, max_bytes_per_day=1000)
    answer = await keys_client.put("/f.txt", content=b"x" * 16, headers=bearer(key))
    assert answer.status_code == 413
    assert "at most 15 bytes" in answer.json()["error"]

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"z" * 5

    answer = await keys_client.put("/f.txt", content=chunks(), headers=bearer(key))
    assert answer.status_code == 413
    assert await usage_today(keys_client) == [0]
    assert await count_rows(keys_client.services, Link) == 0
    await upload(keys_client, b"x" * 15, headers=bearer(key))


async def test_the_uploaders_ttl_is_the_default_and_the_most(keys_client: AppClient) -> None:
    key = await new_key(keys_client, max_ttl_seconds=3600)
    created = await upload(keys_client, headers=bearer(key))
    row = await link_row(keys_client.services, created.token)
    assert row is not None
    lifetime = (row.expires_at - row.created_at).total_seconds()
    assert 3590 <= lifetime <= 3600
    answer = await keys_client.put(
        "/f.txt", content=b"x", headers={**bearer(key), "Expires-In": "2h"}
    )
    assert answer.status_code == 400
    assert "3600" in answer.json()["error"]


async def test_live_links_are_limited_and_a_deleted_one_frees_its_place(
    keys_client: AppClient,
) -> None:
    key = await new_key(keys_client, max_live_links=2)
    first = await upload(keys_client, headers=bearer(key))
    await upload(keys_client, headers=bearer(key))
    answer = await keys_client.put("/f.txt", content=b"x", headers=bearer(key))
    assert answer.status_code == 429
    assert "live links" in answer.json()["error"]
    assert "retry-after" in answer.headers
    assert staging_files(keys_client.services.settings).__len__() == 2
    deleted = await keys_client.delete(
        f"/api/v1/links/{first.token}",
        headers={"Authorization": f"Bearer {first.manage_token}"},
    )
    assert deleted.status_code == 204
    await upload(keys_client, headers=bearer(key))


async def test_keys_are_stored_hashed_and_audited_by_name_only(
    keys_client: AppClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="sealdrop.audit"):
        key = await new_key(keys_client, "bob")
        await uploaders.revoke_uploader(keys_client.services, "bob")
    assert key.startswith("sdk_")
    assert len(key) == 47
    lines = [r.getMessage() for r in caplog.records if r.name == "sealdrop.audit"]
    assert lines == [
        "uploader created name=bob kind=key by=operator",
        "uploader revoked name=bob by=operator",
    ]
    assert all(key not in r.getMessage() for r in caplog.records)
    data_dir = keys_client.services.settings.data_dir
    database = b"".join(p.read_bytes() for p in data_dir.glob("sealdrop.db*"))
    assert key.encode() not in database
    assert uploaders.key_hash(key) in database


async def test_under_open_a_bearer_header_is_ignored(client: AppClient) -> None:
    created = await upload(client, headers={"Authorization": "Bearer sdk_whatever"})
    row = await link_row(client.services, created.token)
    assert row is not None
    assert row.uploader_id is None


@pytest.mark.parametrize("name", ["", "a" * 65, "has space", "slash/", "é"])
async def test_a_bad_uploader_name_is_refused(keys_client: AppClient, name: str) -> None:
    with pytest.raises(Exception, match="1 to 64"):
        await uploaders.add_uploader(keys_client.services, name, Limits(), proxy=False)
