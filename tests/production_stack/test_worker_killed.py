"""A worker SIGKILLed in the middle of sealing a 200 MiB file: another one finishes the job.

The file is sent chunked, so it is sealed in a second pass once staged (a PUT of a known
length is followed while it arrives: `test_sealed_while_arriving` kills a worker then).

The dead attempt's multipart upload is left behind in the blob bucket; the next attempt,
claimed once the lease has run out, aborts every unfinished write of the dead attempt's
blob (found by listing, not only the one whose id the row recorded), seals the file again,
and commits exactly one blob.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.production_stack.checks import (
    assert_nothing_left_over,
    download_digest,
    put_file,
    wait_all_ready,
    write_random_file,
)
from tests.production_stack.conftest import ProductionStacks
from tests.support.production import SEALED_LINE, ProductionStack, worker_pid
from tests.support.stack import wait_until

pytestmark = [pytest.mark.production, pytest.mark.slow]

SIZE = 200 * 1024 * 1024
LEASE_SECONDS = 4


def _attempt_in_flight(stack: ProductionStack) -> tuple[str, str, str, float] | None:
    """The sealing attempt once its multipart upload exists: owner, blob, upload, lease left."""
    rows = stack.sql(
        "SELECT lease_owner, attempt_blob_id, attempt_upload_id,"
        " extract(epoch FROM lease_expires_at - statement_timestamp())"
        " FROM jobs WHERE state = 'running' AND attempt_upload_id IS NOT NULL"
    )
    if not rows:
        return None
    owner, blob_id, upload_id, lease_left = rows[0]
    uploads = {write.upload_id for write in stack.pending_writes(f"blobs/{blob_id}")}
    return (owner, blob_id, upload_id, float(lease_left)) if upload_id in uploads else None


def test_a_worker_killed_mid_seal_is_replaced_after_its_lease(
    make_stack: ProductionStacks, tmp_path: Path
) -> None:
    stack = make_stack(workers=2, concurrency=1, SEALDROP_JOB_LEASE_SECONDS=str(LEASE_SECONDS))
    payload = tmp_path / "large.bin"
    digest = write_random_file(payload, SIZE)
    link = put_file(stack, payload, known_length=False)

    owner, stale_blob, stale_upload, lease_left = wait_until(
        lambda: _attempt_in_flight(stack), timeout=120, interval=0.02, what="a sealing attempt"
    )
    victim = stack.signal_worker(worker_pid(owner), signal.SIGKILL)
    killed_at = time.monotonic()
    victim.wait(10)
    wait_all_ready(stack, 1, timeout=120)

    assert time.monotonic() - killed_at >= lease_left
    sealed_lines = [
        line for process in stack.workers for line in SEALED_LINE.findall(stack.worker_log(process))
    ]
    assert len(sealed_lines) == 1
    # 2 as a rule; more if a loaded machine let a lease lapse before the kill.
    assert int(sealed_lines[0][1]) >= 2
    assert stack.sealed_jobs()[victim.pid] == []
    blob_rows = stack.sql("SELECT id FROM blobs")
    assert len(blob_rows) == 1
    assert blob_rows[0][0] != stale_blob
    assert f"blobs/{stale_blob}" not in stack.list_objects("blobs/")
    assert stale_upload not in {write.upload_id for write in stack.pending_writes()}
    assert download_digest(link.download_url) == digest
    assert_nothing_left_over(stack)
