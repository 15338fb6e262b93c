"""The storage cap on the production stack: API processes on PostgreSQL and S3.

Two API processes racing for the last bytes: exactly one upload wins, every time. A
refused upload, announced or chunked, leaves no S3 object and no multipart upload. An API
process SIGKILLed mid-upload leaves its reservation in flight; the janitor releases it
(and aborts the unfinished write) once it is older than the sweep age.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from app.domain import storage_cap
from tests.e2e.clients import curl
from tests.production_stack.checks import write_random_file
from tests.production_stack.conftest import ProductionStacks
from tests.support.production import ProductionStack
from tests.support.stack import SWEEP_NOW, wait_until

pytestmark = [pytest.mark.production, pytest.mark.slow]

LOG2 = 16
SIZE = 300_000
# Room for one pending upload of SIZE bytes (its staged copy and its blob), not two.
CAP = storage_cap.charge(SIZE, LOG2) + 10_000
ROUNDS = 4


def _capped(make_stack: ProductionStacks, cap: int = CAP) -> ProductionStack:
    # No worker: an upload stays pending and holds twice its sealed size.
    return make_stack(
        workers=0,
        SEALDROP_SEGMENT_LOG2=str(LOG2),
        SEALDROP_MAX_STORED_BYTES=str(cap),
        SEALDROP_UPLOAD_WAIT_SECONDS="0",
    )


def _total(stack: ProductionStack) -> int:
    return int(stack.sql("SELECT stored_bytes FROM storage_usage WHERE id = 1")[0][0])


def _put(url: str, path: Path) -> httpx.Response:
    with path.open("rb") as body:
        return httpx.put(
            url, content=body.read(), headers={"Accept": "application/json"}, timeout=60
        )


def test_two_api_processes_racing_for_the_last_bytes_let_exactly_one_in(
    make_stack: ProductionStacks, tmp_path: Path
) -> None:
    stack = _capped(make_stack)
    other = stack.start_api()
    payload = tmp_path / "race.bin"
    write_random_file(payload, SIZE)
    barrier = threading.Barrier(2)

    def put(base_url: str) -> httpx.Response:
        barrier.wait()
        return _put(f"{base_url}/race.bin", payload)

    with ThreadPoolExecutor(2) as pool:
        for _round in range(ROUNDS):
            answers = list(pool.map(put, [stack.base_url, other.base_url]))
            statuses = sorted(answer.status_code for answer in answers)
            assert statuses == [202, 507], [answer.text for answer in answers]
            assert _total(stack) == storage_cap.charge(SIZE, LOG2)
            assert len(stack.list_objects("staging/")) == 1
            assert stack.pending_writes() == []
            (won,) = [answer.json() for answer in answers if answer.status_code == 202]
            deleted = httpx.delete(
                f"{stack.base_url}/api/v1/links/{won['token']}",
                headers={"Authorization": f"Bearer {won['manage_token']}"},
            )
            assert deleted.status_code == 204
            assert _total(stack) == 0
            assert stack.list_objects() == []


def test_a_refused_upload_leaves_no_object_and_no_multipart_upload(
    make_stack: ProductionStacks, tmp_path: Path
) -> None:
    stack = _capped(make_stack)
    large = tmp_path / "large.bin"
    write_random_file(large, 3 * SIZE)

    announced = _put(f"{stack.base_url}/large.bin", large)
    with large.open("rb") as body:
        chunked = curl(
            "-T", "-", "-H", "Transfer-Encoding: chunked", f"{stack.base_url}/large.bin", stdin=body
        )

    assert announced.status_code == 507
    assert chunked.status == 507
    assert chunked.text == "the server's storage is full; nothing was kept\n"
    assert stack.list_objects() == []
    assert stack.pending_writes() == []
    assert stack.sql("SELECT count(*) FROM links")[0][0] == 0
    assert stack.sql("SELECT count(*) FROM storage_reservations")[0][0] == 0
    assert _total(stack) == 0


def _slow_body(stop: threading.Event) -> Iterator[bytes]:
    while not stop.is_set():
        yield b"k" * 16_384
        stop.wait(0.05)


def test_a_killed_api_process_leaves_a_reservation_the_janitor_releases(
    make_stack: ProductionStacks,
) -> None:
    stack = _capped(make_stack, cap=1024**3)  # room for the whole slow upload
    stop = threading.Event()

    def send() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the server dies under it
            httpx.put(f"{stack.base_url}/slow.bin", content=_slow_body(stop), timeout=60)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        wait_until(
            lambda: stack.sql("SELECT bytes FROM storage_reservations WHERE in_flight"),
            timeout=30,
            what="a reservation in flight",
        )
        wait_until(lambda: stack.pending_writes("staging/"), timeout=30, what="a staged write")
        stack.kill_api()
    finally:
        stop.set()
        sender.join(30)
    assert _total(stack) > 0

    kept = stack.run_cli("purge")  # a janitor that finds it young: it stays
    assert kept.returncode == 0, kept.stderr
    assert "released 0 abandoned reservations" in kept.stdout
    assert _total(stack) > 0

    swept = stack.run_cli("purge", **SWEEP_NOW)  # a janitor past the sweep age
    assert swept.returncode == 0, swept.stderr
    assert "released 1 abandoned reservations" in swept.stdout
    assert _total(stack) == 0
    assert stack.sql("SELECT count(*) FROM storage_reservations")[0][0] == 0
    assert stack.pending_writes() == []
    assert stack.list_objects() == []
