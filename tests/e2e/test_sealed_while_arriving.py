"""A large PUT is sealed while its body still arrives, in both modes.

With a worker of its own (`worker="off"` in the API): a slow client sends part of the
body and holds the rest back: the link (pending) and its job exist already, a worker
follows the staging (`following`) and has begun the blob before the last byte is sent;
once it is, the answer is 201 (ready) and the download is byte-identical. With a local
folder, the worker follows the local staging write; in production the API stages the body
into S3 as 16 MiB pieces, each recorded on the job once committed, and the worker reseals
each one: the client sends past the first piece before it pauses. A client that gives up
half-way leaves no row, no object and no multipart upload. A worker killed while it
follows: the next attempt seals the upload from its staging, from the start.

The embedded mode as it runs by default (its worker in the API process) seals the body in
the request, straight into its blob: while the body arrives there is no row and no staged
byte, only the blob's unfinished write, sealed; the answer is 201, ready.
"""

from __future__ import annotations

import hashlib
import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.clients import curl
from tests.e2e.conftest import StackFactory
from tests.e2e.payloads import new_marker, random_chunks, sha256_of
from tests.hostile.wire import RawConnection
from tests.support.stack import SWEEP_NOW, Stack, wait_until

BOTH_MODES = pytest.mark.parametrize("stack_mode", ["embedded", "production"])

MIB = 1024 * 1024
SIZE = 24 * MIB
# What the client sends before it pauses: several whole segments, not the end; in
# production past the first staged piece (`app.domain.piece_staging.PIECE_BYTES`).
FIRST_PART = {"embedded": 9 * MIB, "production": 20 * MIB}


class SlowClient:
    """A PUT sent in two parts on a raw connection, with a pause between them."""

    def __init__(self, stack: Stack, size: int, marker: bytes) -> None:
        self.body = b"".join(random_chunks(size, marker=marker))
        self.connection = RawConnection(stack.base_url)
        self.connection.send_head(
            "PUT",
            "/arriving.bin",
            {"Content-Length": str(size), "Accept": "application/json"},
        )

    def send(self, start: int, stop: int) -> None:
        assert self.connection.send(self.body[start:stop])

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.body).digest()


@pytest.fixture
def marker() -> bytes:
    return new_marker()


@pytest.fixture
def slow_client() -> Iterator[Callable[[Stack, bytes], SlowClient]]:
    """Opens slow clients, each closed when the test ends."""
    opened: list[SlowClient] = []

    def open_client(stack: Stack, marker: bytes) -> SlowClient:
        opened.append(SlowClient(stack, SIZE, marker))
        return opened[-1]

    yield open_client
    for client in opened:
        client.connection.close()


def _finish_ready_and_download(client: SlowClient, sent: int, tmp_path: Path) -> None:
    """Send the rest of the body: the answer is 201 with the link ready, and the file
    downloads byte for byte."""
    client.send(sent, SIZE)
    answer = client.connection.read_answer(timeout=60)
    assert answer.status == 201, answer.body
    assert b'"state":"ready"' in answer.body
    download_url = answer.header("sealdrop-download-url")
    assert download_url is not None
    target = tmp_path / "downloaded"
    curl("-f", "-o", str(target), download_url)
    assert sha256_of(target) == client.sha256


def _job(stack: Stack) -> Any:
    rows = stack.sql(
        "select j.id, j.state, j.attempt_blob_id, j.lease_owner, j.staging_pieces,"
        " l.state as link_state, l.sha256 from jobs j join links l on l.id = j.link_id"
    )
    return rows[0] if len(rows) == 1 else None


def _following_with_blob_begun(stack: Stack, worker_pid: int | None = None) -> Any:
    """The job once a worker follows it and its blob's write is under way (in production,
    with a staged piece recorded for it to reseal), else None."""
    job = _job(stack)
    if job is None or job.state != "following":
        return None
    if stack.mode == "production" and not json.loads(job.staging_pieces or "[]"):
        return None
    if worker_pid is not None and f":{worker_pid}:" not in (job.lease_owner or ""):
        return None
    writing = f"blobs/{job.attempt_blob_id}" in stack.list_pending_writes("blobs/")
    return job if writing else None


def _leaves_nothing(stack: Stack) -> bool:
    counts = stack.sql(
        "select (select count(*) from links) as links, (select count(*) from jobs) as jobs,"
        " (select count(*) from blobs) as blobs,"
        " (select count(*) from storage_reservations) as reservations"
    )[0]
    return (
        (counts.links, counts.jobs, counts.blobs, counts.reservations) == (0, 0, 0, 0)
        and stack.list_objects() == []
        and stack.list_pending_writes() == []
    )


def _with_a_worker_of_its_own(make_stack: StackFactory) -> Stack:
    stack = make_stack(worker="off")
    stack.start_worker()
    return stack


@BOTH_MODES
def test_a_slow_put_is_followed_while_it_arrives_and_ready_after_its_last_byte(
    make_stack: StackFactory,
    slow_client: Callable[[Stack, bytes], SlowClient],
    marker: bytes,
    tmp_path: Path,
) -> None:
    stack = _with_a_worker_of_its_own(make_stack)
    client = slow_client(stack, marker)
    first_part = FIRST_PART[stack.mode]
    client.send(0, first_part)

    # Before the body ends: link pending without a digest, its job followed by the
    # worker, whose blob is already being written.
    job = wait_until(lambda: _following_with_blob_begun(stack), timeout=60, what="following")
    assert (job.link_state, job.sha256) == ("pending", None)
    assert stack.places_holding(marker) == []

    _finish_ready_and_download(client, first_part, tmp_path)

    # The blob is the one the following attempt began; nothing else is left.
    rows = stack.sql("select blob_id, sha256 from links")
    assert [(row.blob_id, bytes(row.sha256)) for row in rows] == [
        (job.attempt_blob_id, client.sha256)
    ]
    assert stack.sql("select count(*) as n from jobs")[0].n == 0
    assert stack.list_objects("staging/") == []
    assert stack.list_pending_writes() == []
    assert stack.places_holding(marker) == []


@BOTH_MODES
def test_an_upload_given_up_half_way_leaves_no_row_and_no_object(
    make_stack: StackFactory, slow_client: Callable[[Stack, bytes], SlowClient], marker: bytes
) -> None:
    stack = _with_a_worker_of_its_own(make_stack)
    client = slow_client(stack, marker)
    first_part = FIRST_PART[stack.mode]
    client.send(0, first_part)
    wait_until(lambda: _following_with_blob_begun(stack), timeout=60, what="following")

    client.connection.close()
    wait_until(lambda: _leaves_nothing(stack), timeout=30, what="nothing left")
    assert stack.places_holding(marker) == []


@BOTH_MODES
def test_a_worker_killed_while_following_is_replaced_by_the_next_attempt(
    make_stack: StackFactory,
    slow_client: Callable[[Stack, bytes], SlowClient],
    marker: bytes,
    tmp_path: Path,
) -> None:
    stack = make_stack(worker="off", SEALDROP_JOB_LEASE_SECONDS="3")
    client = slow_client(stack, marker)
    first_part = FIRST_PART[stack.mode]
    client.send(0, first_part)
    assert wait_until(lambda: _job(stack), timeout=30, what="job row").state == "receiving"

    first = stack.start_worker()
    killed = wait_until(
        lambda: _following_with_blob_begun(stack, first.pid), timeout=60, what="worker A"
    )
    first.send_signal(signal.SIGKILL)
    first.wait(10)

    second = stack.start_worker()
    wait_until(lambda: _following_with_blob_begun(stack, second.pid), timeout=60, what="worker B")
    client.send(first_part, SIZE)
    answer = client.connection.read_answer(timeout=60)
    assert answer.status in (201, 202), answer.body
    wait_until(
        lambda: stack.sql("select state from links")[0].state == "ready",
        timeout=60,
        what="ready",
    )
    download_url = answer.header("sealdrop-download-url")
    assert download_url is not None
    target = tmp_path / "downloaded"
    curl("-f", "-o", str(target), download_url)
    assert sha256_of(target) == client.sha256

    blobs = stack.list_objects("blobs/")
    assert len(blobs) == 1
    assert blobs != [f"blobs/{killed.attempt_blob_id}"]
    assert stack.sql("select count(*) as n from jobs")[0].n == 0
    # Worker A's unfinished blob write went with the next attempt's clean-up.
    assert stack.list_pending_writes() == []
    purge = stack.run_cli("purge", **SWEEP_NOW)
    assert purge.returncode == 0, purge.stderr
    assert stack.list_objects("staging/") == []
    assert stack.list_objects("blobs/") == blobs
    assert stack.places_holding(marker) == []


def _sealing_in_the_request(stack: Stack) -> list[str] | None:
    """The blob writes under way while no row exists yet, else None."""
    rows = stack.sql("select (select count(*) from links) + (select count(*) from jobs) as n")
    writes = stack.list_pending_writes("blobs/")
    return writes if rows[0].n == 0 and writes else None


@pytest.mark.parametrize("stack_mode", ["embedded"])
def test_embedded_a_slow_put_is_sealed_in_the_request_into_its_blob(
    make_stack: StackFactory,
    slow_client: Callable[[Stack, bytes], SlowClient],
    marker: bytes,
    tmp_path: Path,
) -> None:
    stack = make_stack()
    client = slow_client(stack, marker)
    client.send(0, FIRST_PART["embedded"])
    [write] = wait_until(lambda: _sealing_in_the_request(stack), timeout=60, what="blob write")
    assert stack.list_objects("staging/") == []
    assert stack.list_pending_writes("staging/") == []
    assert stack.places_holding(marker) == []

    _finish_ready_and_download(client, FIRST_PART["embedded"], tmp_path)
    rows = stack.sql("select blob_id, sha256 from links")
    assert [(f"blobs/{row.blob_id}", bytes(row.sha256)) for row in rows] == [(write, client.sha256)]
    assert stack.list_objects() == [write]
    assert stack.list_pending_writes() == []
    assert stack.places_holding(marker) == []


@pytest.mark.parametrize("stack_mode", ["embedded"])
def test_embedded_an_upload_given_up_half_way_leaves_no_blob_and_no_row(
    make_stack: StackFactory, slow_client: Callable[[Stack, bytes], SlowClient], marker: bytes
) -> None:
    stack = make_stack()
    client = slow_client(stack, marker)
    client.send(0, FIRST_PART["embedded"])
    wait_until(lambda: _sealing_in_the_request(stack), timeout=60, what="blob write")
    client.connection.close()
    wait_until(lambda: _leaves_nothing(stack), timeout=30, what="nothing left")
    assert stack.places_holding(marker) == []
