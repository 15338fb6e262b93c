"""Per-client limits: an upload flood gets 429 before its body is read, and the client is the
one uvicorn names: X-Forwarded-For counts only from a trusted proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from app.settings import Settings
from tests.production.apps import random_address, running, serving
from tests.support.services import unique_prefix

LIMIT = 3
ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
def make_limited(make_prod_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """Three uploads a minute per client, counted under a key prefix of this test's own."""

    def build(**overrides: str) -> Settings:
        return make_prod_settings(
            upload_rate_per_minute=LIMIT, redis_prefix=unique_prefix(), **overrides
        )

    return build


@pytest.fixture
def limited_settings(make_limited: Callable[..., Settings]) -> Settings:
    """`make_limited` with its defaults."""
    return make_limited()


async def test_an_upload_flood_from_one_address_gets_429_with_retry_after(
    limited_settings: Settings,
) -> None:
    async with running(limited_settings) as app, app.client(random_address()) as client:
        for n in range(LIMIT):
            assert (await client.put(f"/f{n}.txt", content=b"x", headers=ASYNC)).status_code == 201
        refused = await client.put("/one-too-many.txt", content=b"x", headers=ASYNC)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


async def test_a_refused_upload_is_refused_before_its_body_is_read(
    limited_settings: Settings,
) -> None:
    read: list[bytes] = []

    async def body() -> AsyncIterator[bytes]:
        read.append(b"chunk")
        yield b"chunk"

    async with running(limited_settings) as app, app.client(random_address()) as client:
        for n in range(LIMIT):
            await client.put(f"/f{n}.txt", content=b"x", headers=ASYNC)
        refused = await client.put("/flood.txt", content=body(), headers=ASYNC)
    assert refused.status_code == 429
    assert read == []


async def test_each_client_address_has_an_upload_budget_of_its_own(
    limited_settings: Settings,
) -> None:
    async with running(limited_settings) as app:
        for _ in range(2):
            async with app.client(random_address()) as client:
                for n in range(LIMIT):
                    answer = await client.put(f"/f{n}.txt", content=b"x", headers=ASYNC)
                    assert answer.status_code == 201


async def test_x_forwarded_for_from_a_trusted_proxy_names_the_client(
    make_limited: Callable[..., Settings],
) -> None:
    settings = make_limited(trusted_proxies="127.0.0.1")
    async with serving(settings) as base, httpx.AsyncClient(base_url=base) as http:
        statuses = [
            (
                await http.put("/f.txt", content=b"x", headers={**ASYNC, "X-Forwarded-For": ip})
            ).status_code
            for ip in [random_address() for _ in range(LIMIT + 2)]
        ]
        assert statuses == [201] * (LIMIT + 2)
        one = {**ASYNC, "X-Forwarded-For": random_address()}
        statuses = [
            (await http.put("/f.txt", content=b"x", headers=one)).status_code
            for _ in range(LIMIT + 1)
        ]
    assert statuses == [201] * LIMIT + [429]


@pytest.mark.parametrize("trusted", ["", "10.0.0.1", "192.168.0.0/16"])
async def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(
    make_limited: Callable[..., Settings], trusted: str
) -> None:
    settings = make_limited(trusted_proxies=trusted)
    async with serving(settings) as base, httpx.AsyncClient(base_url=base) as http:
        statuses = [
            (
                await http.put("/f.txt", content=b"x", headers={**ASYNC, "X-Forwarded-For": ip})
            ).status_code
            for ip in [random_address() for _ in range(LIMIT + 1)]
        ]
    assert statuses == [201] * LIMIT + [429]
