"""An API process killed while a large PUT arrives into S3 staging, piece by piece.

The body is past its first 16 MiB piece (committed, recorded on the job, followed by a
worker) and in the middle of the second (an unfinished multipart upload) when the API
dies. A janitor that finds the upload young leaves it alone: its pieces could be those of
a live upload. One past the sweep age (longer than any upload may last) cancels it: no
row, no piece, no multipart upload, and the worker that followed it stops and leaves no
blob.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator

import h11
import httpx
import pytest

from tests.production_stack.conftest import ProductionStacks
from tests.support.production import ProductionStack
from tests.support.stack import SWEEP_NOW, wait_until

pytestmark = [pytest.mark.production, pytest.mark.slow]

MIB = 1024 * 1024
SIZE = 64 * MIB
SENT = 17 * MIB  # past the first piece (`app.domain.piece_staging.PIECE_BYTES`)


def _body(stop: threading.Event) -> Iterator[bytes]:
    """`SENT` bytes at once, then a trickle that never reaches `SIZE`."""
    for _ in range(SENT // MIB):
        yield os.urandom(MIB)
    while not stop.is_set():
        yield b"k" * 4096
        stop.wait(0.05)


def _followed_piece(stack: ProductionStack) -> bool:
    rows = stack.sql("SELECT state, staging_pieces FROM jobs")
    return (
        len(rows) == 1
        and rows[0][0] == "following"
        and len(json.loads(rows[0][1] or "[]")) == 1
        and bool(stack.pending_writes("staging/"))
    )


def _nothing_left(stack: ProductionStack) -> bool:
    counts = stack.sql("SELECT (SELECT count(*) FROM links), (SELECT count(*) FROM jobs)")[0]
    return (
        tuple(counts) == (0, 0)
        and stack.list_objects() == []
        and stack.pending_writes() == []
        and stack.sql("SELECT count(*) FROM storage_reservations")[0][0] == 0
    )


def test_the_janitor_removes_every_piece_of_an_upload_whose_api_died(
    make_stack: ProductionStacks,
) -> None:
    stack = make_stack(workers=1)
    stop = threading.Event()

    def send() -> None:
        # The server dies under it, and the body then ends short: how the client fails
        # (an HTTP error, or h11 refusing to end a body short) is beside the point.
        with contextlib.suppress(httpx.HTTPError, h11.LocalProtocolError):
            httpx.put(
                f"{stack.base_url}/doomed.bin",
                content=_body(stop),
                headers={"Content-Length": str(SIZE)},
                timeout=60,
            )

    sender = threading.Thread(target=send)
    sender.start()
    try:
        wait_until(lambda: _followed_piece(stack), timeout=60, what="a followed piece")
        stack.kill_api()
    finally:
        stop.set()
        sender.join(30)
    assert len(stack.list_objects("staging/")) == 1

    kept = stack.run_cli("purge")  # a janitor that finds the upload young: it stays
    assert kept.returncode == 0, kept.stderr
    assert len(stack.list_objects("staging/")) == 1
    assert stack.pending_writes("staging/")
    assert [row[0] for row in stack.sql("SELECT state FROM jobs")] == ["following"]

    swept = stack.run_cli("purge", **SWEEP_NOW)  # a janitor past the sweep age
    assert swept.returncode == 0, swept.stderr
    wait_until(lambda: _nothing_left(stack), timeout=30, what="nothing left")
