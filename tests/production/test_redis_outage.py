"""Redis stopped or frozen mid-test: Sealdrop keeps serving, and its limits still hold.

Each test has a Redis of its own (`own_redis`) to stop (SIGTERM) or freeze (SIGSTOP). A
frozen Redis accepts connections and never answers: requests must not wait on it. Waits
are bounded generously (`asyncio.timeout`) so a hang fails the test; nothing asserts timing.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable

import pytest

from app.settings import Settings
from tests.production.apps import running
from tests.support.asgi import upload
from tests.support.services import RedisServer

FAILURES = 3
HANG_GUARD_SECONDS = 30.0


@pytest.fixture
def outage_settings(
    make_prod_settings: Callable[..., Settings], own_redis: RedisServer
) -> Settings:
    """Production settings on the test's own Redis, three wrong passwords per client."""
    return make_prod_settings(
        redis_url=own_redis.url(), client_password_failures=FAILURES, upload_rate_per_minute=3
    )


def basic(password: str) -> dict[str, str]:
    """An HTTP Basic header carrying `password` (the user name is ignored)."""
    return {"Authorization": "Basic " + base64.b64encode(f":{password}".encode()).decode()}


async def test_uploads_and_downloads_still_work_with_redis_stopped(
    outage_settings: Settings, own_redis: RedisServer
) -> None:
    data = os.urandom(100_000)
    async with running(outage_settings) as app, app.client() as client:
        own_redis.stop()
        created = await upload(client, data)
        assert created.status == 201
        download = await client.get(f"/d/{created.token}")
    assert download.status_code == 200
    assert download.content == data


async def test_the_password_limit_answers_429_after_the_configured_failures_with_redis_stopped(
    outage_settings: Settings, own_redis: RedisServer
) -> None:
    async with running(outage_settings) as app, app.client() as client:
        link = await upload(client, headers={"Link-Password": "right"})
        own_redis.stop()
        for _ in range(FAILURES):
            assert (await client.get(f"/d/{link.token}", headers=basic("wrong"))).status_code == 401
        refused = await client.get(f"/d/{link.token}", headers=basic("right"))
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1


async def test_the_upload_limit_still_holds_with_redis_stopped(
    outage_settings: Settings, own_redis: RedisServer
) -> None:
    async with running(outage_settings) as app, app.client() as client:
        own_redis.stop()
        statuses = [
            (
                await client.put("/f.txt", content=b"x", headers={"Prefer": "respond-async"})
            ).status_code
            for _ in range(4)
        ]
    assert statuses == [201, 201, 201, 429]


async def test_wrong_passwords_are_counted_across_processes_through_redis(
    outage_settings: Settings,
) -> None:
    async with running(outage_settings) as first, running(outage_settings) as second:
        async with first.client() as client:
            link = await upload(client, headers={"Link-Password": "right"})
            for _ in range(FAILURES - 1):
                await client.get(f"/d/{link.token}", headers=basic("wrong"))
        async with second.client() as client:
            last = await client.get(f"/d/{link.token}", headers=basic("wrong"))
            refused = await client.get(f"/d/{link.token}", headers=basic("wrong"))
    assert last.status_code == 401
    assert refused.status_code == 429


async def test_readiness_reports_a_stopped_redis_as_degraded_and_stays_ready(
    outage_settings: Settings, own_redis: RedisServer
) -> None:
    async with running(outage_settings) as app, app.client() as client:
        before = await client.get("/readyz")
        own_redis.stop()
        after = await client.get("/readyz")
    assert before.status_code == 200
    assert before.json()["checks"]["redis"] == "ok"
    assert after.status_code == 200
    assert after.json() == {"ready": True, "checks": after.json()["checks"]}
    assert after.json()["checks"]["redis"] == "degraded"


async def test_a_frozen_redis_holds_up_no_request(
    outage_settings: Settings, own_redis: RedisServer
) -> None:
    data = os.urandom(50_000)
    async with running(outage_settings) as app, app.client() as client:
        own_redis.pause()
        try:
            async with asyncio.timeout(HANG_GUARD_SECONDS):
                created = await upload(client, data)
                download = await client.get(f"/d/{created.token}")
                unknown = await client.get("/d/AAAAAAAAAAAAAAAAAAAAAA")
                ready = await client.get("/readyz")
        finally:
            own_redis.resume()
        redis = app.services.redis
        assert redis is not None
        assert redis.failures >= 1
    assert created.status == 201
    assert download.content == data
    assert unknown.status_code == 404
    assert ready.status_code == 200
    assert ready.json()["checks"]["redis"] == "degraded"
