"""An owner's edit racing downloads on real PostgreSQL: the edit never overwrites them.

An edit moves the expiry and changes the password on PostgreSQL's clock and types. A
download that spends the last allowed download holds the link's row while the owner
raises the limit; the edit waits for it (it locks the row), then finds the link used up
and answers 410: the limit stays, the link stays ended. Many downloads racing a lowered
limit never count past it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
from sqlalchemy import text, update

from app.crypto.tokens import token_hash
from app.db.clock import as_utc
from app.db.models import Link
from app.domain import links, tickets
from tests.conftest import AppClient
from tests.support.asgi import Uploaded, upload
from tests.support.rows import link_row

RACERS = 8


def _patch(
    client: AppClient, created: Uploaded, body: dict[str, object]
) -> asyncio.Task[httpx.Response]:
    return asyncio.create_task(
        client.patch(
            f"/api/v1/links/{created.token}",
            json=body,
            headers={"Authorization": f"Bearer {created.manage_token}"},
        )
    )


async def _someone_waits_on_a_lock(client: AppClient) -> None:
    """Until a session of this database waits on a row lock (the edit, behind the download)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    while True:
        async with client.services.engine.connect() as connection:
            if await connection.scalar(query):
                return
        await asyncio.sleep(0.02)


async def test_an_edit_behind_a_download_that_uses_the_link_up_is_410(
    prod_client: AppClient,
) -> None:
    created = await upload(prod_client, b"last one", headers={"Max-Downloads": "1"})
    engine = prod_client.services.engine
    async with engine.connect() as download:
        # The download's counting UPDATE, not committed yet: it holds the row.
        await download.execute(
            update(Link)
            .where(Link.token_hash == token_hash(created.token))
            .values(download_count=Link.download_count + 1)
        )
        edit = _patch(prod_client, created, {"max_downloads": 5, "expires_in": "1h"})
        await asyncio.wait_for(_someone_waits_on_a_lock(prod_client), 30)
        assert not edit.done()
        await download.commit()
    answer = await asyncio.wait_for(edit, 30)
    assert answer.status_code == 410
    row = await link_row(prod_client.services, created.token)
    assert row is not None
    assert (row.max_downloads, row.download_count) == (1, 1)
    assert (await prod_client.get(f"/d/{created.token}")).status_code == 410


async def test_downloads_racing_a_lowered_limit_never_count_past_it(
    prod_client: AppClient,
) -> None:
    created = await upload(prod_client, b"popular", headers={"Max-Downloads": "100"})
    downloads = [asyncio.create_task(prod_client.get(f"/d/{created.token}")) for _ in range(RACERS)]
    edit = _patch(prod_client, created, {"max_downloads": 3})
    answers = await asyncio.gather(*downloads)
    edited = await edit
    row = await link_row(prod_client.services, created.token)
    assert row is not None
    served = sum(answer.status_code == 200 for answer in answers)
    assert served == row.download_count
    if edited.status_code == 200:
        # The edit came first or between downloads: the limit held from then on (its
        # answer is the link as the edit left it, whatever downloads came right after).
        assert row.max_downloads == 3
        assert row.download_count <= 3
    elif edited.status_code == 410 and row.max_downloads == 3:
        # Exactly three were counted when the edit came: applied, it ended the link.
        assert row.download_count == 3
    else:
        # More than three downloads were counted before the edit: refused, nothing changed.
        assert edited.status_code in (409, 410), edited.text
        assert row.max_downloads == 100
        assert row.download_count > 3


async def test_an_edit_on_postgresql_moves_the_expiry_and_changes_the_password(
    prod_client: AppClient,
) -> None:
    created = await upload(prod_client, b"edited", headers={"Link-Password": "old"})
    link = await links.resolve(prod_client.services, created.token)
    ticket = await tickets.issue(prod_client.services, link)
    edited = await _patch(prod_client, created, {"expires_in": "2h", "password": "new"})
    assert edited.status_code == 200, edited.text
    row = await link_row(prod_client.services, created.token)
    assert row is not None
    assert row.max_expires_at is not None
    left = (as_utc(row.expires_at) - datetime.now(UTC)).total_seconds()
    assert 7200 - 300 < left <= 7200 + 300
    assert as_utc(row.expires_at) < as_utc(row.max_expires_at)
    assert (await prod_client.get(f"/d/{created.token}?ticket={ticket}")).status_code == 401
    basic = httpx.BasicAuth("", "new")
    assert (await prod_client.get(f"/d/{created.token}", auth=basic)).content == b"edited"
    too_late = await _patch(prod_client, created, {"expires_in": "2d"})
    assert too_late.status_code == 400
