"""Resumable uploads (tus 1.0) through the real ASGI app: the protocol, and hostile requests.

Each case drives `/api/v1/uploads/` as a tus client would, then looks at what the server
acknowledged, what the link serves, and what was (or was not) stored.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from app.db.clock import as_utc, db_now_plus, seconds
from app.db.models import Job, Link, StorageReservation, TusUpload
from app.db.session import transaction
from app.domain import resumable, resumable_append, storage_cap, uploaders
from app.domain.uploaders import Limits
from app.settings import Settings
from app.storage.object_keys import load_pieces
from tests.conftest import AppClient
from tests.support.asgi import running_app
from tests.support.datadir import all_files, staging_files
from tests.support.rows import count_rows
from worker import janitor, queue, seal

TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}
LIMIT = 1_000_000


def meta(**values: str | bytes) -> str:
    """An Upload-Metadata header."""
    pairs = []
    for key, value in values.items():
        raw = value.encode() if isinstance(value, str) else value
        pairs.append(f"{key} {base64.b64encode(raw).decode()}")
    return ",".join(pairs)


def sha256_header(data: bytes) -> str:
    return "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()


@pytest.fixture
async def tus_client(make_settings: Callable[..., Settings]) -> AsyncIterator[AppClient]:
    """The app (worker on) with a 1 MB upload limit."""
    async with running_app(make_settings(max_upload_bytes=LIMIT)) as client:
        yield client


async def create(
    client: AppClient, length: int, metadata: str | None = None, **headers: str
) -> str:
    """POST a new upload; its URL's path."""
    sent = {**TUS, "Upload-Length": str(length), **headers}
    if metadata is not None:
        sent["Upload-Metadata"] = metadata
    answer = await client.post("/api/v1/uploads/", headers=sent)
    assert answer.status_code == 201, answer.text
    location = answer.headers["location"]
    assert location.startswith("http://sealdrop.test/api/v1/uploads/")
    assert "upload-expires" in answer.headers
    return location.removeprefix("http://sealdrop.test")


async def patch(
    client: AppClient, url: str, offset: int, data: bytes, **headers: str
) -> httpx.Response:
    return await client.patch(
        url, content=data, headers={**PATCH, "Upload-Offset": str(offset), **headers}
    )


async def offset_of(client: AppClient, url: str) -> int:
    answer = await client.head(url, headers=TUS)
    assert answer.status_code == 200
    return int(answer.headers["upload-offset"])


async def served_once_sealed(client: AppClient, url: str, timeout: float = 60.0) -> httpx.Response:
    """GET `url` until it stops answering 503 (the worker sealed it), waiting in time, not tries.

    A count of quick retries runs out on a loaded host before the worker gets its turn.
    """
    deadline = time.monotonic() + timeout
    served = await client.get(url, headers={"Accept": "*/*"})
    while served.status_code == 503 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        served = await client.get(url, headers={"Accept": "*/*"})
    return served


async def staging_emptied(settings: Settings, timeout: float = 30.0) -> list[Path]:
    """The staging files left once the worker's clean-up after sealing has had its time."""
    deadline = time.monotonic() + timeout
    while (left := staging_files(settings)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return left


# Discovery


async def test_options_announce_version_extensions_size_and_checksum(tus_client: AppClient) -> None:
    answer = await tus_client.options("/api/v1/uploads/")
    assert answer.status_code == 204
    assert answer.headers["tus-version"] == "1.0.0"
    extensions = set(answer.headers["tus-extension"].split(","))
    assert extensions == {
        "creation",
        "creation-with-upload",
        "termination",
        "expiration",
        "checksum",
    }
    assert answer.headers["tus-max-size"] == str(LIMIT)
    assert answer.headers["tus-checksum-algorithm"] == "sha256"


async def test_discovery_names_the_upload_paths(tus_client: AppClient) -> None:
    answer = await tus_client.get("/api/v1/")
    assert answer.status_code == 200
    body = answer.json()
    assert body["service"] == "sealdrop"
    assert body["api_version"] == 1
    assert body["max_upload_bytes"] == LIMIT
    assert body["uploads"]["put"] == {"url": "/"}
    assert body["uploads"]["tus"]["url"] == "/api/v1/uploads/"
    assert body["uploads"]["tus"]["version"] == "1.0.0"
    assert "direct" not in body["uploads"]  # local staging


# The core: create, PATCH in pieces, complete, download


async def test_upload_in_three_patches_serves_the_same_bytes(tus_client: AppClient) -> None:
    data = os.urandom(300_000)
    url = await create(
        tus_client, len(data), meta(filename="report.bin", expires_in="2h", max_downloads="3")
    )
    assert await offset_of(tus_client, url) == 0
    cuts = [0, 70_001, 200_000, len(data)]
    for start, stop in itertools.pairwise(cuts):
        answer = await patch(tus_client, url, start, data[start:stop])
        assert answer.status_code == 204, answer.text
        assert answer.headers["upload-offset"] == str(stop)
        assert answer.headers["tus-resumable"] == "1.0.0"
    link = answer.headers["sealdrop-link"]
    assert answer.headers["sealdrop-manage-token"]
    assert "sealdrop-expires-at" in answer.headers
    assert "upload-expires" not in answer.headers  # complete: it no longer expires
    download = answer.headers["sealdrop-download-url"]
    assert download.endswith("/report.bin")
    served = await served_once_sealed(tus_client, download)
    assert served.status_code == 200
    assert served.content == data
    assert served.headers["repr-digest"] == (
        "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"
    )
    state = (await tus_client.get(url, headers={"Accept": "application/json"})).json()
    assert state["upload_state"] == "complete"
    assert state["url"] == link
    assert state["offset"] == state["length"] == len(data)
    assert "manage_token" not in state
    # The file's name and type live in the link row alone (cleared when it is purged).
    async with tus_client.services.sessions() as session:
        row = (await session.execute(select(TusUpload))).scalar_one()
    assert (row.filename, row.content_type, row.upload_metadata, row.password_hash) == (
        "",
        "",
        None,
        None,
    )
    assert "upload-metadata" not in (await tus_client.head(url, headers=TUS)).headers
    assert await count_rows(tus_client.services, Job) == 0  # sealed: the job is done
    # the pieces go with it, deleted just after the job's finishing commit
    assert await staging_emptied(tus_client.services.settings) == []


async def test_creation_with_upload_takes_the_first_bytes(tus_client: AppClient) -> None:
    data = os.urandom(5000)
    answer = await tus_client.post(
        "/api/v1/uploads/",
        content=data[:3000],
        headers={**PATCH, "Upload-Length": str(len(data))},
    )
    assert answer.status_code == 201
    assert answer.headers["upload-offset"] == "3000"
    url = answer.headers["location"]
    finished = await patch(tus_client, url, 3000, data[3000:])
    assert finished.status_code == 204
    assert "sealdrop-link" in finished.headers


async def test_an_empty_upload_completes_at_creation(tus_client: AppClient) -> None:
    answer = await tus_client.post("/api/v1/uploads/", headers={**TUS, "Upload-Length": "0"})
    assert answer.status_code == 201
    assert answer.headers["upload-offset"] == "0"
    assert "sealdrop-link" in answer.headers


async def test_head_answers_length_metadata_and_no_store(tus_client: AppClient) -> None:
    metadata = meta(filename="a.txt", filetype="text/plain")
    url = await create(tus_client, 10, metadata)
    answer = await tus_client.head(url, headers=TUS)
    assert answer.headers["upload-length"] == "10"
    assert answer.headers["upload-metadata"] == metadata
    assert answer.headers["cache-control"] == "no-store"
    assert "upload-expires" in answer.headers


async def test_matching_checksum_is_acknowledged(tus_client: AppClient) -> None:
    url = await create(tus_client, 10)
    answer = await patch(
        tus_client, url, 0, b"0123456789", **{"Upload-Checksum": sha256_header(b"0123456789")}
    )
    assert answer.status_code == 204


# Hostile


async def test_wrong_offset_is_409_and_changes_nothing(tus_client: AppClient) -> None:
    url = await create(tus_client, 100)
    assert (await patch(tus_client, url, 0, b"x" * 40)).status_code == 204
    for wrong in (0, 39, 41, 100):
        answer = await patch(tus_client, url, wrong, b"y" * 10)
        assert answer.status_code == 409, wrong
    assert await offset_of(tus_client, url) == 40


async def test_a_patch_past_upload_length_is_413_and_keeps_nothing(tus_client: AppClient) -> None:
    url = await create(tus_client, 100)
    answer = await patch(tus_client, url, 0, b"z" * 101)
    assert answer.status_code == 413
    assert await offset_of(tus_client, url) == 0

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(11):
            yield b"w" * 10

    answer = await tus_client.patch(url, content=chunked(), headers={**PATCH, "Upload-Offset": "0"})
    assert answer.status_code == 413
    assert await offset_of(tus_client, url) == 0
    assert len(staging_files(tus_client.services.settings)) == 0


async def test_upload_length_over_the_limit_is_413_and_creates_nothing(
    tus_client: AppClient,
) -> None:
    answer = await tus_client.post(
        "/api/v1/uploads/", headers={**TUS, "Upload-Length": str(LIMIT + 1)}
    )
    assert answer.status_code == 413
    assert await count_rows(tus_client.services, TusUpload) == 0
    assert await count_rows(tus_client.services, StorageReservation) == 0


async def test_checksum_mismatch_is_460_and_acknowledges_nothing(tus_client: AppClient) -> None:
    url = await create(tus_client, 10)
    answer = await patch(
        tus_client, url, 0, b"0123456789", **{"Upload-Checksum": sha256_header(b"something else")}
    )
    assert answer.status_code == 460
    assert await offset_of(tus_client, url) == 0
    assert staging_files(tus_client.services.settings) == []


async def test_unknown_checksum_algorithm_is_400(tus_client: AppClient) -> None:
    url = await create(tus_client, 10)
    answer = await patch(tus_client, url, 0, b"0123456789", **{"Upload-Checksum": "md5 AAAA"})
    assert answer.status_code == 400
    assert await offset_of(tus_client, url) == 0


@pytest.mark.parametrize("version", [None, "0.2.2", "2.0.0"])
async def test_missing_or_other_tus_version_is_412(
    tus_client: AppClient, version: str | None
) -> None:
    headers = {"Upload-Length": "10"}
    if version is not None:
        headers["Tus-Resumable"] = version
    answer = await tus_client.post("/api/v1/uploads/", headers=headers)
    assert answer.status_code == 412
    assert answer.headers["tus-resumable"] == "1.0.0"
    assert await count_rows(tus_client.services, TusUpload) == 0


async def test_a_patch_without_the_tus_content_type_is_415(tus_client: AppClient) -> None:
    url = await create(tus_client, 10)
    answer = await tus_client.patch(
        url, content=b"0123456789", headers={**TUS, "Upload-Offset": "0"}
    )
    assert answer.status_code == 415
    assert await offset_of(tus_client, url) == 0


@pytest.mark.parametrize("method", ["HEAD", "PATCH", "DELETE", "GET"])
async def test_unknown_upload_is_404(tus_client: AppClient, method: str) -> None:
    for upload_id in ("A" * 22, "nope", "x" * 64):
        answer = await tus_client.request(
            method, f"/api/v1/uploads/{upload_id}", headers={**PATCH, "Upload-Offset": "0"}
        )
        assert answer.status_code == 404, (method, upload_id)


async def test_terminated_upload_is_gone_with_its_pieces(tus_client: AppClient) -> None:
    url = await create(tus_client, 100)
    await patch(tus_client, url, 0, b"a" * 30)
    await patch(tus_client, url, 30, b"b" * 30)
    assert len(staging_files(tus_client.services.settings)) == 2
    answer = await tus_client.delete(url, headers=TUS)
    assert answer.status_code == 204
    assert (await tus_client.head(url, headers=TUS)).status_code == 404
    assert (await patch(tus_client, url, 60, b"c")).status_code == 404
    assert staging_files(tus_client.services.settings) == []
    assert await count_rows(tus_client.services, TusUpload) == 0
    assert await count_rows(tus_client.services, StorageReservation) == 0


@pytest.mark.parametrize(
    "metadata",
    [
        meta(expires_in="forever"),
        meta(expires_in="999d"),
        meta(max_downloads="0"),
        meta(max_downloads="many"),
        meta(password=b"\xff\xfe"),
        "filename not-base64!",
        "filename",  # a key alone is fine in tus, but then a second is a duplicate
    ],
)
async def test_bad_metadata_is_400_and_creates_nothing(
    tus_client: AppClient, metadata: str
) -> None:
    if metadata == "filename":
        metadata = "filename,filename"
    answer = await tus_client.post(
        "/api/v1/uploads/", headers={**TUS, "Upload-Length": "10", "Upload-Metadata": metadata}
    )
    assert answer.status_code == 400, answer.text
    assert await count_rows(tus_client.services, TusUpload) == 0
    assert await count_rows(tus_client.services, StorageReservation) == 0


async def test_missing_upload_length_is_400(tus_client: AppClient) -> None:
    answer = await tus_client.post("/api/v1/uploads/", headers={**TUS, "Upload-Defer-Length": "1"})
    assert answer.status_code == 400
    assert await count_rows(tus_client.services, TusUpload) == 0


async def test_the_link_token_follows_from_the_upload_id_only() -> None:
    token = resumable.link_token("A" * 22)
    assert token == resumable.link_token("A" * 22)
    assert token != resumable.link_token("B" * 22)
    assert len(token) == 22


async def test_password_metadata_protects_the_link(tus_client: AppClient) -> None:
    url = await create(tus_client, 5, meta(password="hunter2"))
    answer = await patch(tus_client, url, 0, b"12345")
    download = answer.headers["sealdrop-download-url"]
    assert (await tus_client.get(download)).status_code in (401, 503)
    assert await count_rows(tus_client.services, Link) == 1


# Admission: the storage cap, the upload policy and its quota, expiry


async def test_creation_reserves_the_length_and_termination_releases_it(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(max_stored_bytes=storage_cap.charge(150_000, 16) + 10)
    async with running_app(settings) as client:
        url = await create(client, 100_000)
        held = await storage_cap.stored_bytes(client.services)
        assert held == storage_cap.charge(100_000, 16)
        # The cap holds against the reservation, before a byte is sent.
        refused = await client.post("/api/v1/uploads/", headers={**TUS, "Upload-Length": "60000"})
        assert refused.status_code == 507
        assert await count_rows(client.services, TusUpload) == 1
        assert (await client.delete(url, headers=TUS)).status_code == 204
        assert await storage_cap.stored_bytes(client.services) == 0
        await create(client, 140_000)  # fits again


async def test_policy_keys_needs_a_key_and_quota_counts_what_was_received(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(upload_policy="keys", worker="off", upload_wait_seconds=0)
    async with running_app(settings) as client:
        key = await uploaders.add_uploader(
            client.services, "alice", Limits(max_bytes_per_day=1000), proxy=False
        )
        assert key is not None
        anonymous = await client.post("/api/v1/uploads/", headers={**TUS, "Upload-Length": "10"})
        assert anonymous.status_code == 401
        auth = {"Authorization": f"Bearer {key}"}
        url = await create(client, 800, **auth)
        over = await client.post(
            "/api/v1/uploads/", headers={**TUS, "Upload-Length": "300", **auth}
        )
        assert over.status_code == 429
        assert (await patch(client, url, 0, b"a" * 300)).status_code == 204
        assert (await client.delete(url, headers=TUS)).status_code == 204
        # The terminated upload gave back the 500 bytes it never received.
        over = await client.post(
            "/api/v1/uploads/", headers={**TUS, "Upload-Length": "701", **auth}
        )
        assert over.status_code == 429
        await create(client, 700, **auth)


async def test_an_expired_upload_is_410_and_the_janitor_removes_it(tus_client: AppClient) -> None:
    url = await create(tus_client, 100)
    await patch(tus_client, url, 0, b"a" * 40)
    before = (await tus_client.get(url)).json()
    async with transaction(tus_client.services.sessions) as session:
        await session.execute(update(TusUpload).values(expires_at=db_now_plus(seconds(-1))))
    assert (await tus_client.head(url, headers=TUS)).status_code == 410
    assert (await patch(tus_client, url, 40, b"b")).status_code == 410
    report = await janitor.run_once(tus_client.services)
    assert report.resumable_expired == 1
    assert (await tus_client.head(url, headers=TUS)).status_code == 404
    assert staging_files(tus_client.services.settings) == []
    assert await storage_cap.stored_bytes(tus_client.services) == 0
    assert before["upload_state"] == "open"


async def test_each_patch_pushes_upload_expires_up_to_the_longest_upload(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(unfinished_upload_seconds=600, max_upload_seconds=900)
    async with running_app(settings) as client:
        url = await create(client, 100)
        async with client.services.sessions() as session:
            row = (await session.execute(select(TusUpload))).scalar_one()
        assert 590 < (as_utc(row.expires_at) - as_utc(row.created_at)).total_seconds() <= 600
        answer = await patch(client, url, 0, b"x")
        expires = parsedate_to_datetime(answer.headers["upload-expires"])
        # Past the deadline (creation + 900 s) it never goes.
        assert expires <= as_utc(row.deadline_at)
        assert (as_utc(row.deadline_at) - as_utc(row.created_at)).total_seconds() == pytest.approx(
            900, abs=1
        )


async def test_expires_in_metadata_sets_the_link_expiry(tus_client: AppClient) -> None:
    url = await create(tus_client, 3, meta(expires_in="90m"))
    answer = await patch(tus_client, url, 0, b"abc")
    async with tus_client.services.sessions() as session:
        link = (await session.execute(select(Link))).scalar_one()
    lifetime = (as_utc(link.expires_at) - as_utc(link.created_at)).total_seconds()
    assert lifetime == pytest.approx(5400, abs=2)
    assert "sealdrop-expires-at" in answer.headers


async def test_a_long_patch_is_acknowledged_piece_by_piece(
    tus_client: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resumable_append, "PIECE_BYTES", 100_000)
    data = os.urandom(250_000)
    url = await create(tus_client, len(data) + 10)
    answer = await patch(tus_client, url, 0, data)
    assert answer.status_code == 204
    assert answer.headers["upload-offset"] == str(len(data))
    async with tus_client.services.sessions() as session:
        row = (await session.execute(select(TusUpload))).scalar_one()
    assert [piece.size for piece in load_pieces(row.pieces) or []] == [100_000, 100_000, 50_000]
    done = await patch(tus_client, url, len(data), b"0123456789")
    served = await served_once_sealed(tus_client, done.headers["sealdrop-download-url"])
    assert served.content == data + b"0123456789"


async def test_a_body_past_the_length_at_a_piece_edge_is_still_413(
    tus_client: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resumable_append, "PIECE_BYTES", 100)

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(21):
            yield b"w" * 10

    url = await create(tus_client, 200)
    answer = await tus_client.patch(url, content=chunked(), headers={**PATCH, "Upload-Offset": "0"})
    assert answer.status_code == 413
    # The first piece was whole and within the length: it stays acknowledged.
    assert await offset_of(tus_client, url) == 100
    assert await count_rows(tus_client.services, Link) == 0


async def test_the_password_is_never_stored_nor_echoed(tus_client: AppClient) -> None:
    secret = "correct horse battery staple"
    url = await create(tus_client, 5, meta(filename="a.txt", password=secret))
    answer = await tus_client.head(url, headers=TUS)
    assert answer.headers["upload-metadata"] == meta(filename="a.txt")
    async with tus_client.services.sessions() as session:
        row = (await session.execute(select(TusUpload))).scalar_one()
    stored = " ".join(str(value) for value in row.__dict__.values())
    assert secret not in stored
    assert base64.b64encode(secret.encode()).decode() not in stored
    assert row.password_hash is not None
    assert row.password_hash.startswith("$argon2id$")


async def test_no_upload_id_token_password_or_plaintext_rests_or_is_logged(
    tus_client: AppClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "a password nobody may read"
    marker = b"TUS-PLAINTEXT-MARKER|" * 10_000
    path = await create(tus_client, len(marker), meta(password=secret))
    upload_id = path.rsplit("/", 1)[1]
    await patch(tus_client, path, 0, marker[:100_000])
    settings = tus_client.services.settings
    needles = [upload_id.encode(), secret.encode(), b"TUS-PLAINTEXT-MARKER"]
    holding = [p for p in all_files(settings) for n in needles if n in p.read_bytes()]
    assert holding == []  # half-way: the pieces are sealed
    done = await patch(tus_client, path, 100_000, marker[100_000:])
    token = done.headers["sealdrop-link"].rsplit("/", 1)[1]
    manage = done.headers["sealdrop-manage-token"]
    needles += [token.encode(), manage.encode()]
    holding = [p for p in all_files(settings) for n in needles if n in p.read_bytes()]
    assert holding == []
    server = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    text = "\n".join(logging.Formatter().format(record) for record in server)
    assert "resumable upload" in text
    for needle in needles:
        assert needle.decode() not in text


async def test_an_upload_holds_at_most_max_pieces(
    tus_client: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resumable_append, "MAX_PIECES", 3)
    url = await create(tus_client, 10)
    for offset in range(3):
        assert (await patch(tus_client, url, offset, b"x")).status_code == 204
    refused = await patch(tus_client, url, 3, b"y")
    assert refused.status_code == 400
    assert "pieces" in refused.text
    assert await offset_of(tus_client, url) == 3


async def test_pieces_swapped_in_staging_fail_the_link_instead_of_reordering_it(
    idle_client: AppClient, idle_settings: Settings
) -> None:
    url = await create(idle_client, 200_000)
    await patch(idle_client, url, 0, os.urandom(100_000))
    done = await patch(idle_client, url, 100_000, os.urandom(100_000))
    assert done.status_code == 204
    # Two valid pieces of equal size, each under the upload's key: swapped in the store.
    first, second = staging_files(idle_settings)
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(b)
    second.write_bytes(a)
    job = await queue.claim(idle_client.services, "test-worker")
    assert job is not None
    with pytest.raises(seal.PermanentFailure):
        await seal.seal_attempt(idle_client.services, job)
