"""The global storage cap on the embedded app: what an upload reserves, when it is refused
(507, before anything is staged, or mid-stream for a body of unknown length, leaving
nothing), and when its bytes are given back (sealed, failed, deleted, purged, abandoned).

The total is checked against the rows after every step: the janitor's recount must find
nothing to correct.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import select, update

from app.db.clock import db_now_plus, seconds
from app.db.models import Blob, Job, Link, StorageReservation
from app.domain import storage_cap
from app.settings import Settings
from app.storage.object_keys import staging_object_key
from tests.support.asgi import AppClient, running_app, upload
from tests.support.datadir import blob_files, staging_files
from tests.support.jobs import seal_queued
from tests.support.rows import count_rows, jobs_of, link_row, update_link
from worker import janitor, queue

LOG2 = 16  # the test settings' segments
FILE = 100_000
CAP = storage_cap.charge(FILE, LOG2) + 1000  # one file of FILE bytes, not two


@pytest.fixture
def capped_settings(make_settings: Callable[..., Settings]) -> Settings:
    """No worker (a test seals when it says so), room for one file of FILE bytes."""
    return make_settings(worker="off", upload_wait_seconds=0, max_stored_bytes=CAP)


@pytest.fixture
async def capped(capped_settings: Settings) -> AsyncIterator[AppClient]:
    """The app with the storage cap."""
    async with running_app(capped_settings) as client:
        yield client


async def _total(client: AppClient) -> int:
    """The counted total, checked against the rows (a recount corrects nothing)."""
    assert await storage_cap.recount(client.services) == 0
    return await storage_cap.stored_bytes(client.services)


async def _reservations(client: AppClient) -> list[tuple[int, bool]]:
    async with client.services.sessions() as session:
        rows = await session.execute(select(StorageReservation.bytes, StorageReservation.in_flight))
        return [(row.bytes, row.in_flight) for row in rows]


async def _chunks(count: int, size: int = 10_000) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b"c" * size


async def _nothing_kept(client: AppClient, settings: Settings) -> None:
    assert staging_files(settings) == []
    assert blob_files(settings) == []
    assert await count_rows(client.services, Link) == 0
    assert await count_rows(client.services, Job) == 0
    assert await _reservations(client) == []


# Refusing


async def test_an_announced_size_past_the_cap_is_507_before_anything_is_staged(
    capped: AppClient, capped_settings: Settings
) -> None:
    answer = await capped.put("/big.bin", content=b"b" * (FILE + 1000))
    assert answer.status_code == 507
    assert answer.text == "the server's storage is full; nothing was kept\n"
    await _nothing_kept(capped, capped_settings)
    assert await _total(capped) == 0


async def test_the_json_api_hears_507_as_json(capped: AppClient) -> None:
    answer = await capped.put(
        "/big.bin", content=b"b" * (FILE + 1000), headers={"Accept": "application/json"}
    )
    assert answer.status_code == 507
    assert answer.json() == {
        "error": "the server's storage is full; nothing was kept",
        "status": 507,
    }


async def test_a_second_file_that_no_longer_fits_is_refused_and_the_first_kept(
    capped: AppClient, capped_settings: Settings
) -> None:
    first = await upload(capped, b"a" * FILE, name="first.bin")
    held = await _total(capped)
    assert held == storage_cap.charge(FILE, LOG2)
    answer = await capped.put("/second.bin", content=b"s" * 1000)
    assert answer.status_code == 507
    (job,) = await jobs_of(capped.services, first.token)
    assert [p.name for p in staging_files(capped_settings)] == [staging_object_key(job.id)[8:]]
    assert await _total(capped) == held


async def test_a_file_filling_the_cap_exactly_is_accepted(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(worker="off", upload_wait_seconds=0)
    settings.max_stored_bytes = storage_cap.charge(FILE, LOG2)
    async with running_app(settings) as client:
        await upload(client, b"e" * FILE, name="exact.bin")
        assert await _total(client) == settings.max_stored_bytes
        assert (await client.put("/more.bin", content=b"")).status_code == 507


async def test_a_streamed_body_is_refused_mid_stream_and_leaves_nothing(
    capped: AppClient, capped_settings: Settings
) -> None:
    answer = await capped.put("/stream.bin", content=_chunks(30))
    assert "content-length" not in answer.request.headers
    assert answer.status_code == 507
    await _nothing_kept(capped, capped_settings)
    assert await _total(capped) == 0


async def test_a_streamed_body_that_fits_is_counted_exactly_once_staged(
    capped: AppClient,
) -> None:
    created = await upload(capped, b"", name="empty.bin")
    assert created.status == 202
    answer = await capped.put("/stream.bin", content=_chunks(9))
    assert answer.status_code in (201, 202), answer.text
    assert await _total(capped) == storage_cap.charge(0, LOG2) + storage_cap.charge(90_000, LOG2)
    assert sorted(await _reservations(capped)) == sorted(
        [(storage_cap.charge(0, LOG2), False), (storage_cap.charge(90_000, LOG2), False)]
    )


async def test_a_form_upload_past_the_cap_is_507(
    capped: AppClient, capped_settings: Settings
) -> None:
    boundary = "capboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f.bin"\r\n\r\n'
        ).encode()
        + b"f" * (FILE + 1000)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    answer = await capped.post(
        "/api/v1/links",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert answer.status_code == 507
    await _nothing_kept(capped, capped_settings)


async def test_without_a_cap_uploads_are_counted_but_never_refused(idle_client: AppClient) -> None:
    await upload(idle_client, b"n" * FILE)
    assert await _total(idle_client) == storage_cap.charge(FILE, LOG2)


# Giving back


async def test_a_sealed_file_counts_its_blob_only(
    capped: AppClient, capped_settings: Settings
) -> None:
    await upload(capped, b"s" * FILE)
    assert await seal_queued(capped.services) == 1
    async with capped.services.sessions() as session:
        sealed = await session.scalar(select(Blob.ciphertext_size))
    assert sealed is not None
    assert await _total(capped) == sealed == storage_cap.charge(FILE, LOG2) // 2
    assert await _reservations(capped) == []
    assert len(blob_files(capped_settings)) == 1


async def test_a_purged_link_gives_its_blob_back(capped: AppClient) -> None:
    created = await upload(capped, b"p" * FILE)
    await seal_queued(capped.services)
    grace = capped.services.settings.purge_grace_seconds
    await update_link(capped.services, created.token, expires_at=db_now_plus(seconds(-grace - 5)))
    assert (await janitor.run_once(capped.services)).links_purged == 1
    assert await _total(capped) == 0
    assert (await capped.put("/next.bin", content=b"n" * FILE)).status_code in (201, 202)


async def test_deleting_a_pending_link_gives_its_bytes_back(capped: AppClient) -> None:
    created = await upload(capped, b"d" * FILE)
    answer = await capped.delete(
        f"/api/v1/links/{created.token}",
        headers={"Authorization": f"Bearer {created.manage_token}"},
    )
    assert answer.status_code == 204
    assert await _total(capped) == 0


async def test_a_failed_job_gives_its_bytes_back(capped: AppClient) -> None:
    created = await upload(capped, b"f" * FILE)
    job = await queue.claim(capped.services, "test-worker")
    assert job is not None
    assert await queue.fail(capped.services, job, "broken on purpose")
    assert await _total(capped) == 0
    row = await link_row(capped.services, created.token)
    assert row is not None
    assert row.state == "failed"


async def test_a_job_the_janitor_fails_gives_its_bytes_back(capped: AppClient) -> None:
    created = await upload(capped, b"j" * FILE)
    jobs = await jobs_of(capped.services, created.token)
    async with capped.services.sessions() as session, session.begin():
        await session.execute(
            update(Job)
            .where(Job.id == jobs[0].id)
            .values(attempts=capped.services.settings.job_max_attempts)
        )
    assert (await janitor.run_once(capped.services)).jobs_failed == 1
    assert await _total(capped) == 0


# An upload whose process died


async def test_an_abandoned_reservation_is_released_once_older_than_the_sweep_age(
    capped: AppClient,
) -> None:
    # What a process killed mid-upload leaves: a reservation in flight, never released.
    reservation = storage_cap.Reservation(capped.services, job_id="killed-upload")
    await reservation.cover(FILE, exact=True)
    assert (await capped.put("/other.bin", content=b"o" * 1000)).status_code == 507
    assert (await janitor.run_once(capped.services)).reservations_released == 0
    age = capped.services.settings.sweep_age_seconds
    async with capped.services.sessions() as session, session.begin():
        await session.execute(
            update(StorageReservation).values(created_at=db_now_plus(seconds(-age - 60)))
        )
    assert (await janitor.run_once(capped.services)).reservations_released == 1
    assert await _total(capped) == 0
    assert (await capped.put("/other.bin", content=b"o" * 1000)).status_code in (201, 202)


async def test_an_upload_whose_reservation_was_released_still_counts_what_it_staged(
    capped: AppClient,
) -> None:
    reservation = storage_cap.Reservation(capped.services, job_id="slow-upload")
    await reservation.cover(1000, exact=True)
    async with capped.services.sessions() as session, session.begin():
        await session.execute(
            update(StorageReservation).values(created_at=db_now_plus(seconds(-1e6)))
        )
    await storage_cap.release_abandoned(capped.services)
    await reservation.cover(5000, exact=True)
    assert await _total(capped) == storage_cap.charge(5000, LOG2)


async def test_a_drifted_total_is_recounted_from_the_rows(capped: AppClient) -> None:
    await upload(capped, b"r" * 1000)
    async with capped.services.sessions() as session, session.begin():
        await storage_cap.add(session, 12345)  # a change no row explains
    assert await storage_cap.recount(capped.services) == -12345
    assert await _total(capped) == storage_cap.charge(1000, LOG2)


async def test_the_worker_publishes_the_cap_and_the_stored_bytes(
    make_settings: Callable[..., Settings],
) -> None:
    async with running_app(make_settings(max_stored_bytes=CAP)) as client:
        await upload(client, b"m" * 1000)

        async def gauges() -> str:
            return (await client.get("/metrics")).text

        sealed = storage_cap.charge(1000, LOG2) // 2
        for _ in range(600):  # the worker refreshes them every 5 s
            text = await gauges()
            if f"sealdrop_stored_bytes {float(sealed)}" in text:
                break
            await asyncio.sleep(0.05)
        assert f"sealdrop_stored_bytes_cap {float(CAP)}" in text
        assert f"sealdrop_stored_bytes {float(sealed)}" in text
