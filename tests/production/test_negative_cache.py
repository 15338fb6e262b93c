"""The negative-lookup cache on Redis: after the first miss, the database is not asked again.

The apps here run without a worker, so every statement counted comes from the requests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from app.crypto.tokens import new_token, token_hash
from app.db.clock import db_now_plus, seconds
from app.infra.negative_cache_redis import RedisNegativeCache
from app.infra.redis_client import GuardedRedis
from app.settings import Settings
from tests.conftest import AppClient
from tests.production.counting import counting_queries
from tests.support.asgi import running_app, upload
from tests.support.rows import update_link
from tests.support.services import RedisServer

REPEATS = 20
ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
def quiet_settings(make_prod_settings: Callable[..., Settings]) -> Settings:
    """Production settings without a worker: nothing queries the database in the background."""
    return make_prod_settings(worker="off")


@pytest.fixture
async def quiet_client(quiet_settings: Settings) -> AsyncIterator[AppClient]:
    """The app for `quiet_settings`."""
    async with running_app(quiet_settings) as client:
        yield client


async def test_repeated_downloads_of_an_unknown_token_run_no_query_after_the_first_miss(
    quiet_client: AppClient,
) -> None:
    token = new_token()
    with counting_queries(quiet_client.services.engine) as queries:
        assert (await quiet_client.get(f"/d/{token}")).status_code == 404
        assert len(queries) >= 1
        queries.reset()
        for _ in range(REPEATS):
            assert (await quiet_client.get(f"/d/{token}")).status_code == 404
        assert len(queries) == 0, queries.statements


async def test_repeated_downloads_of_an_expired_link_run_no_query_after_the_first_miss(
    quiet_client: AppClient,
) -> None:
    link = await upload(quiet_client, headers=ASYNC)
    await update_link(quiet_client.services, link.token, expires_at=db_now_plus(seconds(-1)))
    with counting_queries(quiet_client.services.engine) as queries:
        assert (await quiet_client.get(f"/d/{link.token}")).status_code == 410
        queries.reset()
        for _ in range(REPEATS):
            assert (await quiet_client.get(f"/d/{link.token}")).status_code == 410
        assert len(queries) == 0, queries.statements


async def test_a_miss_learned_by_one_process_is_answered_from_redis_by_another(
    quiet_client: AppClient, quiet_settings: Settings
) -> None:
    token = new_token()
    assert (await quiet_client.get(f"/d/{token}")).status_code == 404
    async with running_app(quiet_settings) as other:
        with counting_queries(other.services.engine) as queries:
            assert (await other.get(f"/d/{token}")).status_code == 404
            assert (await other.get(f"/s/{token}")).status_code == 404
        assert len(queries) == 0, queries.statements


async def test_a_deleted_link_answers_410_from_redis_in_another_process(
    quiet_client: AppClient, quiet_settings: Settings
) -> None:
    link = await upload(quiet_client, headers=ASYNC)
    deleted = await quiet_client.delete(
        f"/api/v1/links/{link.token}", headers={"Authorization": f"Bearer {link.manage_token}"}
    )
    assert deleted.status_code == 204
    async with running_app(quiet_settings) as other:
        with counting_queries(other.services.engine) as queries:
            assert (await other.get(f"/d/{link.token}")).status_code == 410
        assert len(queries) == 0, queries.statements


async def test_with_redis_stopped_the_in_process_tier_still_spares_the_database(
    make_prod_settings: Callable[..., Settings], own_redis: RedisServer
) -> None:
    settings = make_prod_settings(redis_url=own_redis.url(), worker="off")
    async with running_app(settings) as client:
        own_redis.stop()
        token = new_token()
        with counting_queries(client.services.engine) as queries:
            assert (await client.get(f"/d/{token}")).status_code == 404
            queries.reset()
            for _ in range(REPEATS):
                assert (await client.get(f"/d/{token}")).status_code == 404
            assert len(queries) == 0, queries.statements


async def test_forgetting_a_token_clears_both_tiers(
    shared_redis: RedisServer, redis_prefix: str
) -> None:
    redis = GuardedRedis.from_url(shared_redis.url(), prefix=redis_prefix, timeout=1.0)
    cache = RedisNegativeCache(redis, ttl_seconds=30)
    hashed = token_hash(new_token())
    try:
        await cache.put(hashed, 410)
        assert await cache.get(hashed) == 410
        await cache.forget(hashed)
        assert await cache.local.get(hashed) is None
        assert await cache.get(hashed) is None
    finally:
        await redis.close()
