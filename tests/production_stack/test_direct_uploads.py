"""Direct-to-storage uploads on the production stack (PostgreSQL, Redis, SeaweedFS S3).

The client seals parts under the staging key of the creation answer and PUTs them to
presigned S3 URLs; the API completes and queues the job; the worker reseals it and works
out the SHA-256. Tampered or foreign parts fail the worker's tag check (the link fails,
nothing is served); presigned URLs expire; idle uploads are removed by the janitor.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.production_stack.checks import write_random_file
from tests.support import direct
from tests.support.production import ProductionStack
from tests.support.stack import wait_until

pytestmark = [pytest.mark.production, pytest.mark.slow]

MIB = 1 << 20
SIZE = 12 * MIB + 1234  # three parts of 5 MiB plaintext
LOG2 = 16


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProductionStack]:
    """One stack for the module's round trips (64 KiB segments: many per part)."""
    running = ProductionStack(
        tmp_path_factory.mktemp("direct"), env={"SEALDROP_SEGMENT_LOG2": str(LOG2)}
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def idle_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProductionStack]:
    """URLs valid 2 s, uploads idle for 8 s removed, the janitor every second."""
    running = ProductionStack(
        tmp_path_factory.mktemp("direct-idle"),
        env={
            "SEALDROP_SEGMENT_LOG2": str(LOG2),
            "SEALDROP_DIRECT_URL_SECONDS": "2",
            "SEALDROP_UNFINISHED_UPLOAD_SECONDS": "8",
            "SEALDROP_JANITOR_INTERVAL_SECONDS": "1",
        },
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _payload(tmp_path: Path, size: int = SIZE) -> tuple[Path, bytes]:
    path = tmp_path / "film.bin"
    write_random_file(path, size)
    return path, path.read_bytes()


def _download(link: dict[str, Any]) -> httpx.Response:
    return httpx.get(link["download_url"], timeout=120)


def _wait_state(stack: ProductionStack, token: str, wanted: str) -> None:
    def state() -> bool:
        answer = httpx.get(f"{stack.base_url}/api/v1/links/{token}", timeout=10)
        if answer.status_code == 410:
            return wanted == "failed"
        return answer.status_code == 200 and answer.json().get("state") == wanted

    try:
        wait_until(state, timeout=60, interval=0.2, what=f"link {wanted}")
    except TimeoutError as error:
        raise AssertionError(f"{error}\n{stack.log_tails()}") from None


def test_discovery_offers_direct_uploads_with_s3_staging(stack: ProductionStack) -> None:
    found = httpx.get(f"{stack.base_url}/api/v1/", timeout=10).json()
    assert found["uploads"]["direct"] == {"url": "/api/v1/direct-uploads"}


def test_direct_round_trip_downloads_byte_identical(stack: ProductionStack, tmp_path: Path) -> None:
    path, data = _payload(tmp_path)
    created = direct.create(stack.base_url, path.name, len(data), expires_in="1h")
    assert created["part_count"] == 3
    assert created["part_size"] == 5 * MIB
    assert len(direct.b64decode(created["staging_key"])) == 32
    assert direct.b64decode(created["header"])[:4] == b"SDRP"
    etags = direct.put_parts(created, path)
    assert all(etags)
    answer = direct.complete(stack.base_url, created)
    assert answer.status_code in (201, 202), answer.text
    link = answer.json()
    assert set(link) == {
        "token", "url", "download_url", "manage_token", "expires_at", "state", "size", "sha256"
    }  # fmt: skip
    assert link["size"] == len(data)
    _wait_state(stack, link["token"], "ready")
    got = _download(link)
    assert got.status_code == 200
    assert got.content == data
    # The worker computed the digest the API never could.
    digest = hashlib.sha256(data).digest()
    assert got.headers["repr-digest"] == f"sha-256=:{base64.b64encode(digest).decode()}:"
    # Nothing of the upload is left: no multipart upload, no row, no staged object.
    assert stack.pending_writes("staging/") == []
    assert stack.sql("SELECT count(*) FROM direct_uploads")[0][0] == 0
    assert stack.list_objects("staging/") == []
    # Neither the staging key nor a URL's signature is in any log or object.
    signature = created["parts"][0]["url"].split("X-Amz-Signature=")[1][:64]
    assert stack.places_holding(created["staging_key"].encode()) == []
    assert stack.places_holding(signature.encode()) == []


def test_urls_are_presigned_for_the_endpoint_uploaders_reach(
    stack: ProductionStack, tmp_path: Path
) -> None:
    public = stack.backends.endpoint_url.replace("127.0.0.1", "localhost")
    api = stack.start_api(SEALDROP_DIRECT_ENDPOINT_URL=public)
    try:
        path, data = _payload(tmp_path, 100_000)
        created = direct.create(api.base_url, path.name, len(data))
        assert all(part["url"].startswith(public + "/") for part in created["parts"])
        page = httpx.get(api.base_url + "/", timeout=30)
        assert f"connect-src 'self' {public}" in page.headers["content-security-policy"]
    finally:
        api.stop()
    direct.put_parts(created, path)
    answer = direct.complete(stack.base_url, created)
    assert answer.status_code in (201, 202), answer.text
    link = answer.json()
    _wait_state(stack, link["token"], "ready")
    assert _download(link).content == data


def test_an_empty_file_goes_up_as_one_part(stack: ProductionStack, tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    link = direct.upload(stack.base_url, path)
    _wait_state(stack, link["token"], "ready")
    got = _download(link)
    assert got.status_code == 200
    assert got.content == b""


def test_resume_lists_the_parts_done_and_signs_the_rest(
    stack: ProductionStack, tmp_path: Path
) -> None:
    path, data = _payload(tmp_path)
    created = direct.create(stack.base_url, path.name, len(data))
    direct.put_parts(created, path, [1, 3])
    early = direct.complete(stack.base_url, created)
    assert early.status_code == 409
    assert "missing parts 2" in early.text
    status = httpx.get(stack.base_url + created["upload_url"], timeout=30)
    assert status.status_code == 200
    found = status.json()
    assert [part["number"] for part in found["parts_done"]] == [1, 3]
    assert [part["number"] for part in found["parts"]] == [2]
    assert status.headers["cache-control"] == "no-store"
    # A client that kept only the upload URL (a page after a reload) learns how to seal.
    for field in ("staging_key", "header", "size", "segment_size", "part_size", "part_count"):
        assert found[field] == created[field], field
    # Part 2 sealed from the GET's answer alone completes the upload.
    direct.put_part(found["parts"][0]["url"], direct.sealed_part(found, path, 2))
    answer = direct.complete(stack.base_url, created)
    assert answer.status_code in (201, 202), answer.text
    link = answer.json()
    _wait_state(stack, link["token"], "ready")
    assert _download(link).content == data
    # The capability is spent.
    assert httpx.get(stack.base_url + created["upload_url"], timeout=10).status_code == 404


def test_two_completions_at_once_make_one_link(stack: ProductionStack, tmp_path: Path) -> None:
    path, data = _payload(tmp_path, 5 * MIB + 10)
    created = direct.create(stack.base_url, path.name, len(data))
    direct.put_parts(created, path)

    def complete(_: int) -> httpx.Response:
        return direct.complete(stack.base_url, created, Prefer="respond-async")

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(complete, [0, 1]))
    statuses = sorted(answer.status_code for answer in answers)
    # The loser is told another request completes it (409), or, if it came after, that
    # the upload is spent (404).
    assert statuses in ([202, 404], [202, 409]), [a.text for a in answers]
    (made,) = [answer.json() for answer in answers if answer.status_code == 202]
    _wait_state(stack, made["token"], "ready")
    assert _download(made).content == data


def test_a_part_of_the_wrong_size_is_refused_at_completion(
    stack: ProductionStack, tmp_path: Path
) -> None:
    path, data = _payload(tmp_path, 5 * MIB + 10)
    created = direct.create(stack.base_url, path.name, len(data))
    direct.put_parts(created, path, [1])
    short = direct.sealed_part(created, path, 2)[:-1]
    direct.put_part(created["parts"][1]["url"], short)
    answer = direct.complete(stack.base_url, created)
    assert answer.status_code == 409
    assert "wrong size 2" in answer.text
    cancel = httpx.delete(stack.base_url + created["upload_url"], timeout=30)
    assert cancel.status_code == 204
    assert stack.pending_writes("staging/") == []


def _tampered_upload(stack: ProductionStack, tmp_path: Path, replace: bytes | None) -> str:
    """Upload with other bytes in part 2, through its presigned URL; the link token.

    Parts 1 and 3 are the client's; part 2 is sent only once (SeaweedFS keeps every upload
    of a part number, so an overwrite there is a second copy: the next test)."""
    path, data = _payload(tmp_path)
    created = direct.create(stack.base_url, path.name, len(data))
    direct.put_parts(created, path, [1, 3])
    url = created["parts"][1]["url"]
    if replace is None:
        sealed = bytearray(direct.sealed_part(created, path, 2))
        sealed[len(sealed) // 2] ^= 0x01
        replace = bytes(sealed)
    assert direct.put_part(url, replace).status_code == 200
    answer = direct.complete(stack.base_url, created, Prefer="respond-async")
    assert answer.status_code == 202, answer.text
    token: str = answer.json()["token"]
    return token


def _assert_failed_and_nothing_served(stack: ProductionStack, token: str) -> None:
    _wait_state(stack, token, "failed")
    got = httpx.get(f"{stack.base_url}/d/{token}", timeout=30)
    assert got.status_code == 410
    failed = stack.sql(
        "SELECT j.last_error FROM jobs j JOIN links l ON l.id = j.link_id WHERE l.token_hash = :h",
        h=hashlib.sha256(token.encode()).digest(),
    )
    assert failed
    assert "failed" in (failed[0][0] or "")


def test_a_flipped_byte_in_a_part_fails_the_link(stack: ProductionStack, tmp_path: Path) -> None:
    token = _tampered_upload(stack, tmp_path, None)
    _assert_failed_and_nothing_served(stack, token)


def test_a_part_sealed_under_another_key_fails_the_link(
    stack: ProductionStack, tmp_path: Path
) -> None:
    path, data = _payload(tmp_path)
    created = direct.create(stack.base_url, path.name, len(data))
    foreign = direct.sealed_part(created, path, 2, key=os.urandom(32))
    token = _tampered_upload(stack, tmp_path, foreign)
    _assert_failed_and_nothing_served(stack, token)
    httpx.delete(stack.base_url + created["upload_url"], timeout=30)


def test_an_overwritten_part_is_never_served(stack: ProductionStack, tmp_path: Path) -> None:
    path, data = _payload(tmp_path)
    created = direct.create(stack.base_url, path.name, len(data))
    direct.put_parts(created, path)
    sealed = bytearray(direct.sealed_part(created, path, 2))
    sealed[100] ^= 0x01
    assert direct.put_part(created["parts"][1]["url"], bytes(sealed)).status_code == 200
    answer = direct.complete(stack.base_url, created, Prefer="respond-async")
    if answer.status_code == 409:
        # SeaweedFS kept both copies in the same second: refused, nothing queued.
        assert "sent twice" in answer.text
        assert httpx.delete(stack.base_url + created["upload_url"], timeout=30).status_code == 204
        return
    # S3 kept the overwrite (AWS), or the newer copy was told apart: the worker refuses it
    # (or, had the client's own copy been chosen, serves the file intact).
    assert answer.status_code == 202, answer.text
    token = answer.json()["token"]
    got = httpx.get(f"{stack.base_url}/d/{token}", timeout=60)
    while got.status_code == 503:
        time.sleep(0.2)
        got = httpx.get(f"{stack.base_url}/d/{token}", timeout=60)
    assert got.status_code in (200, 410)
    if got.status_code == 200:
        assert got.content == data


def test_bad_creations_are_refused_and_change_nothing(stack: ProductionStack) -> None:
    before = stack.pending_writes("staging/")
    for body in (
        {"filename": "a", "size": -1},
        {"filename": "a", "size": "12"},
        {"filename": "a"},
        {"filename": "a", "size": 10, "expires_in": "forever"},
        {"filename": "a", "size": 10, "max_downloads": 0},
        {"filename": "a", "size": 10, "surprise": True},
    ):
        answer = httpx.post(stack.base_url + direct.API, json=body, timeout=30)
        assert 400 <= answer.status_code < 500, (body, answer.text)
    too_big = httpx.post(
        stack.base_url + direct.API, json={"filename": "a", "size": 1 << 50}, timeout=30
    )
    assert too_big.status_code == 413
    assert stack.pending_writes("staging/") == before
    unknown = httpx.get(stack.base_url + direct.API + "/" + "A" * 22, timeout=30)
    assert unknown.status_code == 404


def test_a_cancelled_upload_cannot_be_completed_or_resumed(
    stack: ProductionStack, tmp_path: Path
) -> None:
    path, data = _payload(tmp_path, 100)
    created = direct.create(stack.base_url, path.name, len(data))
    direct.put_parts(created, path)
    assert httpx.delete(stack.base_url + created["upload_url"], timeout=30).status_code == 204
    assert direct.complete(stack.base_url, created).status_code == 404
    assert httpx.get(stack.base_url + created["upload_url"], timeout=30).status_code == 404
    late = direct.put_part(created["parts"][0]["url"], direct.sealed_part(created, path, 1))
    assert late.status_code == 404  # NoSuchUpload: the multipart upload is gone
    assert [w for w in stack.pending_writes("staging/") if created["id"] in w.key] == []


def test_presigned_urls_expire(idle_stack: ProductionStack, tmp_path: Path) -> None:
    path, data = _payload(tmp_path, 100)
    created = direct.create(idle_stack.base_url, path.name, len(data))
    time.sleep(3)
    late = direct.put_part(created["parts"][0]["url"], direct.sealed_part(created, path, 1))
    assert late.status_code == 403, late.text
    # A fresh URL from the status answer works.
    fresh = httpx.get(idle_stack.base_url + created["upload_url"], timeout=30).json()
    answer = direct.put_part(fresh["parts"][0]["url"], direct.sealed_part(created, path, 1))
    assert answer.status_code == 200
    httpx.delete(idle_stack.base_url + created["upload_url"], timeout=30)


def test_idle_direct_uploads_leave_no_object_no_multipart_upload_no_row(
    idle_stack: ProductionStack, tmp_path: Path
) -> None:
    path, data = _payload(tmp_path, 6 * MIB)
    created = direct.create(idle_stack.base_url, path.name, len(data))
    direct.put_parts(created, path, [1])
    assert len(idle_stack.pending_writes("staging/")) == 1

    def gone() -> bool:
        rows = idle_stack.sql("SELECT count(*) FROM direct_uploads")[0][0]
        return rows == 0 and idle_stack.pending_writes("staging/") == []

    wait_until(gone, timeout=60, interval=0.5, what="the idle upload removed")
    assert idle_stack.list_objects("staging/") == []
    assert idle_stack.sql("SELECT count(*) FROM storage_reservations")[0][0] == 0
    assert httpx.get(idle_stack.base_url + created["upload_url"], timeout=10).status_code == 404


def test_a_part_newer_than_the_last_activity_keeps_an_upload_alive(
    idle_stack: ProductionStack, tmp_path: Path
) -> None:
    path, data = _payload(tmp_path, 100)
    created = direct.create(idle_stack.base_url, path.name, len(data))
    # A part arrives straight to S3; the API last saw the upload long ago.
    direct.put_parts(created, path)
    idle_stack.sql(
        "UPDATE direct_uploads SET last_activity_at = now() - interval '1 hour' WHERE id_hash = :h",
        h=hashlib.sha256(created["id"].encode()).digest(),
    )

    def touched() -> bool:
        rows = idle_stack.sql(
            "SELECT last_activity_at > now() - interval '5 seconds' FROM direct_uploads "
            "WHERE id_hash = :h",
            h=hashlib.sha256(created["id"].encode()).digest(),
        )
        return bool(rows and rows[0][0])

    # The janitor (every second) asked S3, found the new part, and kept the upload.
    wait_until(touched, timeout=30, interval=0.3, what="the janitor's touch")
    answer = direct.complete(idle_stack.base_url, created)
    assert answer.status_code in (201, 202), answer.text
