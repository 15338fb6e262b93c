"""Download tickets across API processes on real PostgreSQL and Redis.

A ticket from the share page opens its file once in the whole deployment: any API process
accepts it (the key comes from the shared key ring) and Redis remembers it as spent. With
Redis stopped, each process still refuses a ticket it has already seen.
"""

from __future__ import annotations

from collections.abc import Callable

from app import links, tickets
from app.settings import Settings
from tests.conftest import AppClient
from tests.production.apps import running
from tests.support.asgi import upload
from tests.support.services import RedisServer

PROTECTED = {"Link-Password": "pw"}


async def _ticket(client: AppClient, token: str) -> str:
    return await tickets.issue(client.services, await links.resolve(client.services, token))


async def test_ticket_spent_in_one_api_process_is_refused_in_another(
    make_prod_settings: Callable[..., Settings],
) -> None:
    settings = make_prod_settings()
    async with (
        running(settings) as first,
        running(settings) as second,
        first.client() as one,
        second.client() as other,
    ):
        created = await upload(one, b"once", headers=PROTECTED)
        ticket = await _ticket(one, created.token)
        spent = await other.get(f"/d/{created.token}?ticket={ticket}")
        replayed = await one.get(f"/d/{created.token}?ticket={ticket}")
    assert spent.content == b"once"
    assert replayed.status_code == 303


async def test_ticket_is_refused_the_second_time_with_redis_stopped(
    make_prod_settings: Callable[..., Settings], own_redis: RedisServer
) -> None:
    settings = make_prod_settings(redis_url=own_redis.url())
    async with running(settings) as app, app.client() as client:
        created = await upload(client, b"once", headers=PROTECTED)
        ticket = await _ticket(client, created.token)
        own_redis.stop()
        first = await client.get(f"/d/{created.token}?ticket={ticket}")
        second = await client.get(f"/d/{created.token}?ticket={ticket}")
    assert first.content == b"once"
    assert second.status_code == 303
