"""`sealdrop worker` stopped with SIGTERM in the middle of sealing: a graceful exit.

It claims nothing more, and the job in hand is finished within the grace period (`--grace`,
20 s by default) or released when that runs out: either way the file is sealed, once, long
before the lease would have run out, and a job queued after the signal waits for another
worker.

The large files are sent chunked, so they are sealed in a second pass once staged (a PUT
of a known length would be sealed while it arrives, finished with its last byte).
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
    sealed_counts,
    wait_all_ready,
    write_random_file,
)
from tests.production_stack.conftest import ProductionStacks
from tests.support.production import ProductionStack, worker_pid
from tests.support.stack import wait_until

pytestmark = [pytest.mark.production, pytest.mark.slow]

SIZE = 128 * 1024 * 1024  # long enough to be stopped mid-seal with no grace
FINISHED_SIZE = 64 * 1024 * 1024
LEASE_SECONDS = 60


def _sealing_owner(stack: ProductionStack) -> str:
    """The lease owner of the job once its attempt has begun writing the blob."""
    rows = wait_until(
        lambda: stack.sql("SELECT lease_owner FROM jobs WHERE attempt_upload_id IS NOT NULL"),
        timeout=120,
        interval=0.02,
        what="a sealing attempt",
    )
    owner: str = rows[0][0]
    return owner


def test_a_worker_stopped_mid_seal_claims_nothing_more_and_its_job_is_sealed_at_once(
    make_stack: ProductionStacks, tmp_path: Path
) -> None:
    stack = make_stack(workers=1, concurrency=1, SEALDROP_JOB_LEASE_SECONDS=str(LEASE_SECONDS))
    large, small = tmp_path / "large.bin", tmp_path / "small.bin"
    large_digest = write_random_file(large, FINISHED_SIZE)
    small_digest = write_random_file(small, 1000)
    large_link = put_file(stack, large, known_length=False)
    owner = _sealing_owner(stack)

    stopping = stack.signal_worker(worker_pid(owner), signal.SIGTERM)
    stopped_at = time.monotonic()
    small_link = put_file(stack, small)
    assert stopping.wait(30) == 0
    assert "stopped" in stack.worker_log(stopping)
    queued = stack.sql("SELECT attempts, lease_owner FROM jobs WHERE state = 'queued'")
    assert (0, None) in queued  # the upload that came after the signal was left alone

    stack.start_worker()
    wait_all_ready(stack, 2)

    assert time.monotonic() - stopped_at < LEASE_SECONDS / 2
    counts = sealed_counts(stack)
    assert sorted(counts.values()) == [1, 1]
    assert download_digest(large_link.download_url) == large_digest
    assert download_digest(small_link.download_url) == small_digest
    assert_nothing_left_over(stack)


def test_a_worker_stopped_mid_seal_with_no_grace_releases_its_job_to_another_at_once(
    make_stack: ProductionStacks, tmp_path: Path
) -> None:
    stack = make_stack(workers=0, SEALDROP_JOB_LEASE_SECONDS=str(LEASE_SECONDS))
    stopping = stack.start_worker(concurrency=1, grace=0)
    payload = tmp_path / "large.bin"
    digest = write_random_file(payload, SIZE)
    link = put_file(stack, payload, known_length=False)
    _sealing_owner(stack)

    stopping.send_signal(signal.SIGTERM)
    stopped_at = time.monotonic()
    assert stopping.wait(30) == 0
    released = stack.sql("SELECT state, attempts, lease_owner, lease_expires_at FROM jobs")
    # Handed back, the attempt is not spent: the next worker's claim is attempt 1 again.
    assert [tuple(row) for row in released] == [("queued", 0, None, None)]
    assert stack.pending_writes("blobs/") == []  # the attempt aborted its own upload

    stack.start_worker()
    wait_all_ready(stack, 1)

    assert time.monotonic() - stopped_at < LEASE_SECONDS / 2
    assert stack.sealed_jobs()[stopping.pid] == []
    assert list(sealed_counts(stack).values()) == [1]
    assert download_digest(link.download_url) == digest
    assert_nothing_left_over(stack)
