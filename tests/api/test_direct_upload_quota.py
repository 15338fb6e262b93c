"""Direct uploads and the uploader's daily quota, on the real app with S3 staging (the
session's S3 endpoint) and SQLite: the whole size is taken from the quota at creation;
what the client never sent to S3 is given back when the upload is cancelled or expires."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from app.db.clock import db_now_plus, seconds
from app.db.models import DirectUpload
from app.db.session import transaction
from app.domain import uploaders
from app.domain.uploaders import Limits
from app.settings import Settings
from tests.support import direct
from tests.support.asgi import running_app
from tests.support.production import (
    production_backends_cleanup,  # noqa: F401 - a session fixture: stops the services
    s3_url,
    shared_backends,
)
from tests.support.s3 import create_bucket, environment, remove_bucket
from worker import janitor

API = "/api/v1/direct-uploads"
MIB = 1 << 20


@pytest.fixture(scope="module")
def staging_url() -> Iterator[str]:
    """A bucket of this module's own on the session's S3 endpoint, as a staging URL."""
    backends = shared_backends()
    with environment(backends.s3_env):
        bucket = create_bucket(backends.s3_env)
        try:
            yield s3_url(bucket, backends.endpoint_url)
        finally:
            remove_bucket(backends.s3_env, bucket)


@pytest.fixture
def keyed_settings(make_settings: Callable[..., Settings], staging_url: str) -> Settings:
    return make_settings(
        staging_url=staging_url, upload_policy="keys", worker="off", upload_wait_seconds=0
    )


async def test_a_cancelled_direct_upload_gives_its_quota_back(keyed_settings: Settings) -> None:
    async with running_app(keyed_settings) as client:
        key = await uploaders.add_uploader(
            client.services, "alice", Limits(max_bytes_per_day=1000), proxy=False
        )
        auth = {"Authorization": f"Bearer {key}"}
        created = await client.post(API, json={"filename": "a", "size": 800}, headers=auth)
        assert created.status_code == 201, created.text
        over = await client.post(API, json={"filename": "b", "size": 300}, headers=auth)
        assert over.status_code == 429
        assert (await client.delete(created.json()["upload_url"])).status_code == 204
        again = await client.post(API, json={"filename": "c", "size": 1000}, headers=auth)
        assert again.status_code == 201, again.text
        assert (await client.delete(again.json()["upload_url"])).status_code == 204


async def test_what_went_to_s3_stays_counted_after_a_cancel(
    keyed_settings: Settings, tmp_path: Path
) -> None:
    async with running_app(keyed_settings) as client:
        key = await uploaders.add_uploader(
            client.services, "carol", Limits(max_bytes_per_day=20 * MIB), proxy=False
        )
        auth = {"Authorization": f"Bearer {key}"}
        path = tmp_path / "a.bin"
        path.write_bytes(os.urandom(12 * MIB))
        created = await client.post(API, json={"filename": "a", "size": 12 * MIB}, headers=auth)
        assert created.status_code == 201, created.text
        upload = created.json()
        await asyncio.to_thread(direct.put_parts, upload, path, [1])
        sent = direct.plan_of(upload).sealed_size(1)
        assert (await client.delete(upload["upload_url"])).status_code == 204
        left = 20 * MIB - sent
        over = await client.post(API, json={"filename": "b", "size": left + 1}, headers=auth)
        assert over.status_code == 429
        fits = await client.post(API, json={"filename": "c", "size": left}, headers=auth)
        assert fits.status_code == 201, fits.text
        assert (await client.delete(fits.json()["upload_url"])).status_code == 204


async def test_an_expired_direct_upload_gives_its_quota_back(keyed_settings: Settings) -> None:
    async with running_app(keyed_settings) as client:
        key = await uploaders.add_uploader(
            client.services, "bob", Limits(max_bytes_per_day=1000), proxy=False
        )
        auth = {"Authorization": f"Bearer {key}"}
        created = await client.post(API, json={"filename": "a", "size": 1000}, headers=auth)
        assert created.status_code == 201, created.text
        async with transaction(client.services.sessions) as session:
            await session.execute(update(DirectUpload).values(deadline_at=db_now_plus(seconds(-1))))
        report = await janitor.run_once(client.services)
        assert report.direct_uploads_expired == 1
        again = await client.post(API, json={"filename": "b", "size": 1000}, headers=auth)
        assert again.status_code == 201, again.text
        assert (await client.delete(again.json()["upload_url"])).status_code == 204
