"""Uploads sealed in the request (the embedded mode): the body goes straight into its blob.

Where the worker runs in the API's process, a staged copy would be read back by the same
process and sealed again, so every upload (PUT with or without a length, the form) is
sealed under its blob's own key as it arrives and its link is ready in the answer: no job
row, no staged byte. What is stored is sealed (no plaintext on disk), counted against the
storage cap as one blob, and a failed upload leaves nothing, not even a temporary file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from app.crypto import sealing
from app.db.models import Blob, Job, Link, StorageReservation
from app.domain import storage_cap
from app.settings import Settings
from tests.conftest import AppClient
from tests.support.asgi import upload
from tests.support.datadir import blob_files, staging_files
from tests.support.forms import CONTENT_TYPE, field, file, multipart
from tests.support.rows import count_rows, link_row

MARKER = b"PLAINTEXT-MARKER-"
# Several segments of the test settings' 64 KiB, and a partial last one.
BODY = (MARKER + os.urandom(4000)) * 60
# Not waiting for the worker: a link staged for one would answer 202, pending.
ASYNC = {"Prefer": "respond-async"}


async def _reservations(client: AppClient) -> int:
    async with client.services.sessions() as session:
        return len((await session.execute(select(StorageReservation.id))).all())


async def _sealed_and_counted(client: AppClient, settings: Settings, token: str) -> None:
    """The link is ready, served byte for byte, stored sealed as one counted blob."""
    link = await link_row(client.services, token)
    assert link is not None
    assert link.state == "ready"
    assert link.blob_id is not None
    assert link.sha256 == hashlib.sha256(BODY).digest()
    assert await count_rows(client.services, Job) == 0
    assert staging_files(settings) == []
    [stored] = blob_files(settings)
    assert MARKER not in stored.read_bytes()
    async with client.services.sessions() as session:
        blob = (await session.execute(select(Blob).where(Blob.id == link.blob_id))).scalar_one()
    layout = sealing.Layout(len(BODY), settings.segment_log2)
    assert stored.stat().st_size == blob.ciphertext_size == layout.ciphertext_size
    assert stored.read_bytes()[: sealing.HEADER_SIZE] == blob.header
    assert await storage_cap.stored_bytes(client.services) == blob.ciphertext_size
    assert await _reservations(client) == 0
    assert (await client.get(f"/d/{token}")).content == BODY


async def test_a_put_is_ready_in_its_answer_with_no_job_and_no_staged_byte(
    client: AppClient, settings: Settings
) -> None:
    created = await upload(client, BODY, name="data.bin", headers=ASYNC)
    assert created.status == 201
    assert created.body["state"] == "ready"
    assert created.body["sha256"] == hashlib.sha256(BODY).hexdigest()
    await _sealed_and_counted(client, settings, created.token)


async def test_a_put_without_a_length_is_sealed_in_the_request_too(
    client: AppClient, settings: Settings
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(BODY), 50_000):
            yield BODY[start : start + 50_000]

    answer = await client.put(
        "/data.bin", content=chunks(), headers={"Accept": "application/json", **ASYNC}
    )
    assert "content-length" not in answer.request.headers
    assert answer.status_code == 201
    await _sealed_and_counted(client, settings, answer.json()["token"])


async def test_a_form_upload_is_sealed_in_the_request_its_options_read_after_the_file(
    client: AppClient, settings: Settings
) -> None:
    answer = await client.post(
        "/api/v1/links",
        content=multipart(file(BODY), field("max_downloads", "2")),
        headers={"Content-Type": CONTENT_TYPE, "Accept": "application/json", **ASYNC},
    )
    assert answer.status_code == 201
    token = answer.json()["token"]
    await _sealed_and_counted(client, settings, token)
    link = await link_row(client.services, token)
    assert link is not None
    assert link.max_downloads == 2


async def _nothing_left(client: AppClient, settings: Settings) -> None:
    assert await count_rows(client.services, Link) == 0
    assert await count_rows(client.services, Job) == 0
    assert staging_files(settings) == []
    assert blob_files(settings) == []
    assert await _reservations(client) == 0
    assert await storage_cap.stored_bytes(client.services) == 0


async def test_a_form_whose_options_after_the_file_are_bad_deletes_the_sealed_blob(
    client: AppClient, settings: Settings
) -> None:
    answer = await client.post(
        "/api/v1/links",
        content=multipart(file(BODY), field("expires_in", "forever")),
        headers={"Content-Type": CONTENT_TYPE},
    )
    assert answer.status_code == 400
    await _nothing_left(client, settings)


async def test_a_body_that_breaks_half_way_leaves_no_blob_and_no_temporary_file(
    client: AppClient, settings: Settings
) -> None:
    class Broken(Exception):
        pass

    async def breaking() -> AsyncIterator[bytes]:
        yield BODY[: len(BODY) // 2]
        raise Broken

    # The app reads the first half, and its next read of the body raises.
    with pytest.raises(Broken):
        await client.put("/data.bin", content=breaking())
    await _nothing_left(client, settings)
