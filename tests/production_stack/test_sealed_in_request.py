"""Production with `SEALDROP_SEAL_IN_REQUEST=true`: the API seals uploads into S3 itself.

The stack runs no worker at all: a PUT (and a form) is sealed by the API process straight
into the blobs bucket as a multipart upload, and its answer is 201 with the link ready;
the staging bucket never holds a byte. The stored blob holds no plaintext and downloads
byte for byte. A client that gives up half-way leaves no row, no object and no multipart
upload.
"""

from __future__ import annotations

import hashlib
import os

import httpx
import pytest

from tests.hostile.wire import RawConnection
from tests.production_stack.conftest import ProductionStacks
from tests.support.production import ProductionStack
from tests.support.stack import wait_until

pytestmark = [pytest.mark.production, pytest.mark.slow]

MIB = 1024 * 1024
MARKER = b"SEALED-IN-REQUEST-MARKER-"
# Past one 5 MiB part of the S3 writer, and not a whole number of segments.
BODY = (MARKER + os.urandom(MIB - len(MARKER))) * 12 + b"tail"


def _nothing_left(stack: ProductionStack) -> bool:
    counts = stack.sql(
        "SELECT (SELECT count(*) FROM links), (SELECT count(*) FROM jobs),"
        " (SELECT count(*) FROM blobs), (SELECT count(*) FROM storage_reservations)"
    )[0]
    return (
        tuple(counts) == (0, 0, 0, 0)
        and stack.list_objects() == []
        and stack.pending_writes() == []
    )


def _given_up_half_way(stack: ProductionStack) -> None:
    connection = RawConnection(stack.base_url)
    try:
        connection.send_head("PUT", "/doomed.bin", {"Content-Length": str(len(BODY))})
        assert connection.send(BODY[: 7 * MIB])
        wait_until(lambda: stack.pending_writes("blobs/"), timeout=60, what="blob write")
        assert stack.list_objects("staging/") == []
    finally:
        connection.close()
    wait_until(lambda: _nothing_left(stack), timeout=60, what="nothing left")


def test_uploads_are_sealed_by_the_api_with_no_worker_and_one_given_up_leaves_nothing(
    make_stack: ProductionStacks,
) -> None:
    # One stack for both halves (each stack costs seconds): the abandoned upload first,
    # while the stack is empty, so that "nothing left" means nothing at all.
    stack = make_stack(workers=0, SEALDROP_SEAL_IN_REQUEST="true")
    _given_up_half_way(stack)
    put = httpx.put(
        f"{stack.base_url}/report.bin",
        content=BODY,
        headers={"Accept": "application/json", "Prefer": "respond-async"},
        timeout=60,
    )
    form = httpx.post(
        f"{stack.base_url}/api/v1/links",
        files={"file": ("form.bin", BODY)},
        headers={"Accept": "application/json", "Prefer": "respond-async"},
        timeout=60,
    )
    for answer in (put, form):
        assert answer.status_code == 201, answer.text
        assert answer.json()["state"] == "ready"
        assert answer.json()["sha256"] == hashlib.sha256(BODY).hexdigest()
        download = httpx.get(answer.headers["sealdrop-download-url"], timeout=60)
        assert download.content == BODY
    blobs = {f"blobs/{row[0]}" for row in stack.sql("SELECT blob_id FROM links")}
    assert len(blobs) == 2
    assert set(stack.list_objects()) == blobs
    assert stack.pending_writes() == []
    assert stack.sql("SELECT count(*) FROM jobs")[0][0] == 0
    assert stack.places_holding(MARKER) == []
