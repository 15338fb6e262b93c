"""The negative-lookup cache: tokens that answer 404 or 410 stop costing database queries.

Statements are counted on the engine itself (`before_cursor_execute`); the app runs with
its worker off, so no background work runs a query while a test counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from app.db.clock import db_now_plus, seconds
from tests.conftest import AppClient
from tests.support.asgi import upload
from tests.support.rows import update_link

UNKNOWN = "AAAAAAAAAAAAAAAAAAAAAA"
BROWSER = "text/html,*/*;q=0.8"


@contextmanager
def counting_statements(client: AppClient) -> Iterator[list[str]]:
    """Collect every SQL statement the app's engine runs inside the block."""
    statements: list[str] = []
    engine = client.services.engine.sync_engine

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def _expired(client: AppClient) -> str:
    created = await upload(client)
    await update_link(client.services, created.token, expires_at=db_now_plus(seconds(-1)))
    return created.token


async def test_first_get_of_an_unknown_token_asks_the_database(idle_client: AppClient) -> None:
    with counting_statements(idle_client) as statements:
        assert (await idle_client.get(f"/d/{UNKNOWN}")).status_code == 404
    assert statements != []


async def test_later_gets_of_an_unknown_token_run_no_query(idle_client: AppClient) -> None:
    await idle_client.get(f"/d/{UNKNOWN}")
    with counting_statements(idle_client) as statements:
        for _ in range(3):
            assert (await idle_client.get(f"/d/{UNKNOWN}")).status_code == 404
    assert statements == []


async def test_later_gets_of_an_expired_token_run_no_query(idle_client: AppClient) -> None:
    token = await _expired(idle_client)
    assert (await idle_client.get(f"/d/{token}")).status_code == 410
    with counting_statements(idle_client) as statements:
        for _ in range(3):
            assert (await idle_client.get(f"/d/{token}")).status_code == 410
    assert statements == []


async def test_a_deleted_token_runs_no_query(idle_client: AppClient) -> None:
    created = await upload(idle_client)
    await idle_client.delete(
        f"/api/v1/links/{created.token}",
        headers={"Authorization": f"Bearer {created.manage_token}"},
    )
    with counting_statements(idle_client) as statements:
        assert (await idle_client.get(f"/d/{created.token}")).status_code == 410
    assert statements == []


@pytest.mark.parametrize(
    ("path", "accept"),
    [("/s/{token}", BROWSER), ("/s/{token}", "*/*"), ("/api/v1/links/{token}", "*/*")],
)
async def test_share_and_status_routes_use_the_cache_too(
    idle_client: AppClient, path: str, accept: str
) -> None:
    token = await _expired(idle_client)
    await idle_client.get(f"/d/{token}")
    with counting_statements(idle_client) as statements:
        answer = await idle_client.get(path.format(token=token), headers={"Accept": accept})
    assert answer.status_code == 410
    assert statements == []


@pytest.mark.parametrize("token", ["short", "a" * 200, "not*a*token*at*all*xxxx"])
async def test_badly_shaped_token_never_reaches_the_database(
    idle_client: AppClient, token: str
) -> None:
    with counting_statements(idle_client) as statements:
        assert (await idle_client.get(f"/d/{token}")).status_code == 404
    assert statements == []


async def test_a_live_link_is_not_answered_from_the_cache(idle_client: AppClient) -> None:
    created = await upload(idle_client)
    await idle_client.get(f"/d/{created.token}")
    with counting_statements(idle_client) as statements:
        assert (await idle_client.get(f"/d/{created.token}")).status_code == 503
    assert statements != []
