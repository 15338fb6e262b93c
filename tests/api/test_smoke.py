"""The shortest whole path: upload with PUT, download the same bytes."""

from __future__ import annotations

import os

from tests.conftest import AppClient


async def test_put_then_download_gives_back_the_same_bytes(client: AppClient) -> None:
    data = os.urandom(200_000)
    created = await client.put("/report.bin", content=data, headers={"Accept": "application/json"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["state"] == "ready"
    download = await client.get(f"/d/{body['token']}")
    assert download.status_code == 200
    assert download.content == data
