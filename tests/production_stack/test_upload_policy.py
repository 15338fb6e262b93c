"""Upload policies across real API processes sharing PostgreSQL, Redis and S3.

A key's daily quota holds exactly under parallel uploads through three API processes; a
revoke made while they run is refused by each of them at once; under `proxy` the user
header counts only from a trusted peer.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter

import httpx
import pytest

from tests.production_stack.conftest import ProductionStacks
from tests.support.production import ProductionStack

pytestmark = [pytest.mark.production, pytest.mark.slow]

ASYNC = {"Prefer": "respond-async", "Accept": "application/json"}
SIZE = 70_000
ALLOWED = 7
UPLOADS = 24


def keys_stack(make_stack: ProductionStacks) -> tuple[ProductionStack, list[str]]:
    """A `keys` stack (no worker: links stay pending) and the URLs of its 3 API processes."""
    stack = make_stack(
        workers=0, SEALDROP_UPLOAD_POLICY="keys", SEALDROP_UPLOAD_RATE_PER_MINUTE="0"
    )
    return stack, [stack.base_url, stack.start_api().base_url, stack.start_api().base_url]


def add_uploader(stack: ProductionStack, name: str, *limits: str) -> str:
    """`sealdrop uploaders add` against the stack; the key it printed."""
    done = stack.run_cli("uploaders", "add", name, *limits)
    assert done.returncode == 0, done.stderr
    key = done.stdout.splitlines()[-1]
    assert key.startswith("sdk_")
    assert key not in done.stderr  # the audit line names the uploader only
    return key


async def put(base_url: str, key: str | None, data: bytes, **headers: str) -> httpx.Response:
    """PUT `data` to one API process with `key` as Bearer."""
    sent = {**ASYNC, **headers, **({"Authorization": f"Bearer {key}"} if key else {})}
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        return await http.put("/f.bin", content=data, headers=sent)


async def test_a_daily_quota_holds_exactly_under_parallel_uploads_on_three_processes(
    make_stack: ProductionStacks,
) -> None:
    stack, urls = keys_stack(make_stack)
    key = add_uploader(stack, "alice", "--max-bytes-per-day", str(ALLOWED * SIZE))
    data = os.urandom(SIZE)

    answers = await asyncio.gather(*(put(urls[n % len(urls)], key, data) for n in range(UPLOADS)))

    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {202: ALLOWED, 429: UPLOADS - ALLOWED}, statuses
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    (used,) = stack.sql("SELECT bytes FROM uploader_usage")
    assert used.bytes == ALLOWED * SIZE
    rows = stack.sql(
        "SELECT count(*) AS n FROM links JOIN uploaders ON uploaders.id = links.uploader_id"
        " WHERE uploaders.name = 'alice'"
    )
    assert rows[0].n == ALLOWED


async def test_a_revoked_key_is_refused_at_once_by_every_process(
    make_stack: ProductionStacks,
) -> None:
    stack, urls = keys_stack(make_stack)
    key = add_uploader(stack, "bob")
    before = await asyncio.gather(*(put(url, key, b"before") for url in urls))
    assert [answer.status_code for answer in before] == [202, 202, 202]

    done = stack.run_cli("uploaders", "revoke", "bob")
    assert done.returncode == 0, done.stderr

    after = await asyncio.gather(*(put(url, key, b"after") for url in urls))
    assert [answer.status_code for answer in after] == [401, 401, 401]
    assert all(a.headers["www-authenticate"].startswith("Bearer ") for a in after)
    assert stack.sql("SELECT count(*) AS n FROM links")[0].n == 3


async def test_proxy_mode_believes_the_user_header_only_from_a_trusted_peer(
    make_stack: ProductionStacks,
) -> None:
    stack = make_stack(
        workers=0,
        SEALDROP_UPLOAD_POLICY="proxy",
        SEALDROP_TRUSTED_PROXIES="127.0.0.1",
        SEALDROP_UPLOAD_RATE_PER_MINUTE="0",
    )
    untrusting = stack.start_api(SEALDROP_TRUSTED_PROXIES="10.0.0.0/8")
    user = {"X-Auth-Request-User": "dana@example.org"}

    ignored = await put(untrusting.base_url, None, b"x", **user)
    assert ignored.status_code == 403
    assert stack.sql("SELECT count(*) AS n FROM uploaders")[0].n == 0

    created = await put(stack.base_url, None, b"x", **user)
    assert created.status_code == 202, created.text
    rows = stack.sql(
        "SELECT uploaders.name, uploaders.key_hash FROM links"
        " JOIN uploaders ON uploaders.id = links.uploader_id"
    )
    assert [(row.name, row.key_hash) for row in rows] == [("dana@example.org", None)]
    anonymous = await put(stack.base_url, None, b"x")
    assert anonymous.status_code == 403
