"""The Prometheus endpoint: counters move with real traffic, and no label carries a token."""

from __future__ import annotations

import os
import re

from tests.conftest import AppClient
from tests.support.asgi import upload
from tests.support.jobs import settled_by_a_worker
from tests.support.rows import link_row

_SAMPLE = re.compile(r"^(?P<name>[a-z_:]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


async def _scrape(client: AppClient) -> dict[str, float]:
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    samples: dict[str, float] = {}
    for line in answer.text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            key = match["name"] + (f"{{{match['labels']}}}" if match["labels"] else "")
            samples[key] = float(match["value"])
    return samples


def _moved(before: dict[str, float], after: dict[str, float], key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_an_upload_moves_the_upload_and_received_bytes_counters(client: AppClient) -> None:
    before = await _scrape(client)
    await upload(client, os.urandom(70_000))
    after = await _scrape(client)
    assert _moved(before, after, 'sealdrop_uploads_total{outcome="created"}') == 1
    assert _moved(before, after, "sealdrop_received_bytes_total") == 70_000
    # Sealed in the request (the embedded mode): no job waited, no worker attempt ran.
    assert _moved(before, after, 'sealdrop_sealing_duration_seconds_count{outcome="sealed"}') == 0
    assert _moved(before, after, "sealdrop_queue_wait_seconds_count") == 0


async def test_a_job_sealed_by_a_worker_moves_the_sealing_and_queue_wait_metrics(
    idle_client: AppClient,
) -> None:
    before = await _scrape(idle_client)
    created = await upload(idle_client, os.urandom(70_000))
    link = await link_row(idle_client.services, created.token)
    assert link is not None
    assert await settled_by_a_worker(idle_client.services, [link.id]) == ["ready"]
    after = await _scrape(idle_client)
    assert _moved(before, after, 'sealdrop_sealing_duration_seconds_count{outcome="sealed"}') == 1
    assert _moved(before, after, "sealdrop_queue_wait_seconds_count") == 1


async def test_a_download_moves_the_download_and_sent_bytes_counters(client: AppClient) -> None:
    created = await upload(client, os.urandom(70_000))
    before = await _scrape(client)
    answer = await client.get(f"/d/{created.token}")
    assert answer.status_code == 200
    after = await _scrape(client)
    assert _moved(before, after, 'sealdrop_downloads_total{outcome="complete"}') == 1
    assert _moved(before, after, "sealdrop_sent_bytes_total") == 70_000


async def test_an_unknown_token_counts_a_refusal_and_a_cache_miss_then_a_hit(
    client: AppClient,
) -> None:
    unknown = "A" * 22
    before = await _scrape(client)
    assert (await client.get(f"/d/{unknown}")).status_code == 404
    assert (await client.get(f"/d/{unknown}")).status_code == 404
    after = await _scrape(client)
    assert _moved(before, after, 'sealdrop_downloads_total{outcome="link_not_found"}') == 2
    assert _moved(before, after, 'sealdrop_negative_cache_lookups_total{result="miss"}') == 1
    assert _moved(before, after, 'sealdrop_negative_cache_lookups_total{result="hit"}') == 1


async def test_no_token_or_manage_token_appears_in_the_metrics(client: AppClient) -> None:
    created = await upload(client, b"secret bytes")
    await client.get(f"/d/{created.token}")
    await client.get(f"/d/{created.token}x")
    text = (await client.get("/metrics")).text
    assert created.token not in text
    assert created.manage_token not in text
    assert created.token[:8] not in text
