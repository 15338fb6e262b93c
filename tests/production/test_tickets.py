"""Download tickets across API processes on real PostgreSQL and Redis.

A ticket from the share page opens its file once in the whole deployment: any API process
accepts it (the key comes from the shared key ring) and Redis remembers it as spent. With
Redis stopped, each process still refuses a ticket it has already seen.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from app.domain import links, tickets
from app.settings import Settings
from tests.conftest import AppClient
from tests.production.apps import running
from tests.support.asgi import upload
from tests.support.services import RedisServer

PROTECTED = {"Link-Password": "pw"}
BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# Spellings of a ticket that a lax base64 decoder reads as the same signature.
RESPELLINGS: dict[str, Callable[[str], str]] = {
    "'!!' appended": lambda ticket: ticket + "!!",
    "'~~' appended": lambda ticket: ticket + "~~",
    "'%3D' appended": lambda ticket: ticket + "%3D",
    "'=' appended": lambda ticket: ticket + "=",
    "unused low bits of the last character set": lambda ticket: (
        ticket[:-1] + BASE64URL[BASE64URL.index(ticket[-1]) | 1]
    ),
}


async def _ticket(client: AppClient, token: str) -> str:
    return await tickets.issue(client.services, await links.resolve(client.services, token))


async def _spend_then_replay(
    settings: Settings, respell: Callable[[str], str]
) -> tuple[httpx.Response, httpx.Response, str]:
    """Spend a ticket in one API process, then replay `respell(ticket)` in a second one."""
    async with (
        running(settings) as first,
        running(settings) as second,
        first.client() as one,
        second.client() as other,
    ):
        created = await upload(one, b"once", headers=PROTECTED)
        ticket = await _ticket(one, created.token)
        spent = await one.get(f"/d/{created.token}?ticket={ticket}")
        replayed = await other.get(f"/d/{created.token}?ticket={respell(ticket)}")
    return spent, replayed, ticket


async def test_ticket_spent_in_one_api_process_is_refused_in_another(
    make_prod_settings: Callable[..., Settings],
) -> None:
    spent, replayed, _ = await _spend_then_replay(make_prod_settings(), lambda ticket: ticket)
    assert spent.content == b"once"
    assert replayed.status_code == 401


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
    assert second.status_code == 401


@pytest.mark.parametrize("respell", RESPELLINGS.values(), ids=RESPELLINGS.keys())
async def test_respelled_ticket_is_refused_in_another_api_process_once_spent(
    make_prod_settings: Callable[..., Settings], respell: Callable[[str], str]
) -> None:
    spent, replayed, _ = await _spend_then_replay(make_prod_settings(), respell)
    assert spent.content == b"once"
    assert replayed.status_code == 401


async def test_ticket_named_by_another_id_of_the_same_key_is_refused_in_another_process(
    make_prod_settings: Callable[..., Settings], master_keys: str
) -> None:
    key_id, _, key = master_keys.partition(":")
    # The same key under a second id: both names verify the same signature, and Redis
    # must know them as one ticket (the second process has seen neither).
    settings = make_prod_settings(master_keys=f"{master_keys},alias:{key}")
    spent, replayed, ticket = await _spend_then_replay(
        settings, lambda ticket: ticket.replace(f".{key_id}.", ".alias.")
    )
    assert f".{key_id}." in ticket
    assert spent.content == b"once"
    assert replayed.status_code == 401
