"""A worker killed in the middle of sealing: another finishes the job and nothing is left over.

The API runs without a worker and with a 3 s lease. Worker A claims the job and starts
writing the blob; it is SIGKILLed (no cleanup of any kind). Worker B takes the job once the
lease has run out, removes A's unfinished write by the ids recorded in the job row, and
seals the file. Afterwards: the download is byte-identical, there is exactly one blob, no
unfinished write, nothing staged even after a purge that treats every object as old, and
the file's marker rests nowhere.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from tests.e2e.clients import curl
from tests.e2e.conftest import StackFactory
from tests.e2e.payloads import new_marker, sha256_of, upload, write_payload
from tests.e2e.rows import link_state
from tests.support.stack import SWEEP_NOW, Stack, wait_until

SIZE = 128 * 1024 * 1024
LEASE_SECONDS = 3


def _attempt_in_progress(stack: Stack, worker_pid: int) -> Any:
    """The job's row once the worker holds its lease and has begun the blob, else None."""
    rows = stack.sql(
        "select attempt_blob_id, attempt_upload_id, lease_owner from jobs where state = 'running'"
    )
    # Lease owners are named host:pid:random.
    if len(rows) != 1 or f":{worker_pid}:" not in (rows[0].lease_owner or ""):
        return None
    if not rows[0].attempt_upload_id:
        return None
    writing = f"blobs/{rows[0].attempt_blob_id}" in stack.list_pending_writes("blobs/")
    return rows[0] if writing else None


def test_second_worker_finishes_a_job_whose_worker_was_killed_mid_seal(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    stack = make_stack(worker="off", SEALDROP_JOB_LEASE_SECONDS=str(LEASE_SECONDS))
    marker = new_marker()
    source = tmp_path / "archive.tar"
    digest = write_payload(source, SIZE, marker=marker)
    link = upload(stack, source, "-H", "Prefer: respond-async")
    assert link.status == 202

    first = stack.start_worker()
    attempt = wait_until(
        lambda: _attempt_in_progress(stack, first.pid), timeout=60, what="worker A writing"
    )
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert link_state(stack, link.token) == "pending"
    assert f"blobs/{attempt.attempt_blob_id}" in stack.list_pending_writes()

    stack.start_worker()
    wait_until(
        lambda: link_state(stack, link.token) == "ready", timeout=120, what="worker B sealing"
    )
    target = tmp_path / "downloaded"
    curl("-f", "-o", str(target), link.download_url)
    assert sha256_of(target) == digest

    blobs = stack.list_objects("blobs/")
    assert len(blobs) == 1
    assert blobs != [f"blobs/{attempt.attempt_blob_id}"]
    assert stack.list_pending_writes() == []
    assert stack.sql("select count(*) as n from jobs")[0].n == 0

    purge = stack.run_cli("purge", **SWEEP_NOW)
    assert purge.returncode == 0, purge.stderr
    assert stack.list_objects("staging/") == []
    assert stack.list_objects("blobs/") == blobs
    assert stack.list_pending_writes() == []
    assert stack.places_holding(marker) == []
