"""Spending downloads: exactly `max_downloads` GETs get the file, even all at once.

Only a GET that sends body bytes counts; HEAD, 304, 401 and 416 answers never do.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tests.conftest import AppClient
from tests.support.asgi import upload
from tests.support.forms import basic
from tests.support.rows import link_row

DATA = b"counted bytes " * 1000


async def _downloads(client: AppClient, token: str) -> int:
    row = await link_row(client.services, token)
    assert row is not None
    return row.download_count


@pytest.mark.parametrize("limit", [1, 3])
async def test_concurrent_gets_of_a_limited_link_succeed_exactly_max_downloads_times(
    client: AppClient, limit: int
) -> None:
    created = await upload(client, DATA, headers={"Max-Downloads": str(limit)})
    answers = await asyncio.gather(*(client.get(f"/d/{created.token}") for _ in range(3 * limit)))
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {200: limit, 410: 2 * limit}
    assert all(a.content == DATA for a in answers if a.status_code == 200)
    assert await _downloads(client, created.token) == limit


async def test_head_never_counts(client: AppClient) -> None:
    created = await upload(client, DATA, headers={"Max-Downloads": "1"})
    for _ in range(3):
        assert (await client.head(f"/d/{created.token}")).status_code == 200
    assert await _downloads(client, created.token) == 0


async def test_not_modified_never_counts(client: AppClient) -> None:
    created = await upload(client, DATA, headers={"Max-Downloads": "1"})
    etag = (await client.head(f"/d/{created.token}")).headers["etag"]
    for _ in range(3):
        answer = await client.get(f"/d/{created.token}", headers={"If-None-Match": etag})
        assert answer.status_code == 304
    assert await _downloads(client, created.token) == 0


async def test_unauthorized_never_counts(client: AppClient) -> None:
    created = await upload(
        client, DATA, headers={"Max-Downloads": "1", "Link-Password": "open sesame"}
    )
    for password in (None, "wrong"):
        headers = {} if password is None else {"Authorization": basic(password)}
        assert (await client.get(f"/d/{created.token}", headers=headers)).status_code == 401
    assert await _downloads(client, created.token) == 0
    opened = await client.get(
        f"/d/{created.token}", headers={"Authorization": basic("open sesame")}
    )
    assert opened.status_code == 200


async def test_range_not_satisfiable_never_counts(client: AppClient) -> None:
    created = await upload(client, DATA, headers={"Max-Downloads": "1"})
    answer = await client.get(f"/d/{created.token}", headers={"Range": f"bytes={len(DATA)}-"})
    assert answer.status_code == 416
    assert await _downloads(client, created.token) == 0


async def test_status_endpoint_never_counts(client: AppClient) -> None:
    created = await upload(client, DATA, headers={"Max-Downloads": "1"})
    for _ in range(3):
        assert (await client.get(f"/api/v1/links/{created.token}")).status_code == 200
    assert await _downloads(client, created.token) == 0


async def test_each_ranged_request_counts(client: AppClient) -> None:
    created = await upload(client, DATA, headers={"Max-Downloads": "2"})
    first = await client.get(f"/d/{created.token}", headers={"Range": "bytes=0-99"})
    rest = await client.get(f"/d/{created.token}", headers={"Range": "bytes=100-"})
    assert (first.status_code, rest.status_code) == (206, 206)
    assert first.content + rest.content == DATA
    assert (await client.get(f"/d/{created.token}")).status_code == 410
