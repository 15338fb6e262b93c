"""Memory stays bounded whatever the file size: a 2 GiB round trip under 150 MiB peak RSS.

The file is streamed into `curl -T -` from a generator (nothing on disk) and downloaded
through a pipe that hashes it. In the embedded mode one process runs the API and the
worker, so its VmHWM (peak resident memory since start) covers receiving, staging,
resealing and serving. The figures go to the terminal and to `test-artifacts/memory.txt`.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.clients import curl, curl_sha256
from tests.e2e.conftest import StackFactory
from tests.e2e.rows import link_state
from tests.support.stack import REPO, read_status, wait_until

SIZE = 2 * 1024**3
CHUNK = 1 << 20
PEAK_LIMIT = 150 * 1024**2
ARTIFACT = REPO / "test-artifacts" / "memory.txt"


def _chunks(size: int) -> Iterator[bytes]:
    """`size` bytes, cheap to make: one random MiB, each copy stamped with its number."""
    block = bytearray(os.urandom(CHUNK))
    for number in range(size // CHUNK):
        block[:8] = number.to_bytes(8, "big")
        yield bytes(block)


def _feed(pipe: int, seen: Callable[[bytes], object]) -> threading.Thread:
    """Write SIZE bytes into `pipe` from a thread, showing each chunk to `seen` first."""

    def write() -> None:
        with os.fdopen(pipe, "wb") as sink:
            try:
                for chunk in _chunks(SIZE):
                    seen(chunk)
                    sink.write(chunk)
            except BrokenPipeError:
                pass  # curl stopped reading; its exit code tells the test why

    thread = threading.Thread(target=write, name="upload-feed", daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_two_gib_round_trip_keeps_the_server_under_150_mib(
    make_stack: StackFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = make_stack()
    baseline = read_status(stack.api_pid, "VmHWM")
    sent = hashlib.sha256()
    read_end, write_end = os.pipe()
    feeder = _feed(write_end, sent.update)
    started = time.monotonic()
    with os.fdopen(read_end, "rb") as body:
        created = curl(
            "-f",
            "-T",
            "-",
            "-H",
            "Prefer: respond-async",
            "-H",
            "Accept: application/json",
            f"{stack.base_url}/big.bin",
            stdin=body,
            timeout=600,
        )
    upload_seconds = time.monotonic() - started
    feeder.join(10)
    link = json.loads(created.body)
    assert link["size"] == SIZE
    assert link["sha256"] == sent.hexdigest()

    wait_until(lambda: link_state(stack, link["token"]) == "ready", timeout=600, interval=0.2)
    seal_seconds = time.monotonic() - started - upload_seconds

    started = time.monotonic()
    received, count = curl_sha256(link["download_url"], timeout=600)
    download_seconds = time.monotonic() - started
    assert count == SIZE
    assert received == sent.digest()

    peak = read_status(stack.api_pid, "VmHWM")
    figures = (
        f"2 GiB round trip, {stack.mode} mode (API and worker in one process)\n"
        f"upload   {SIZE / upload_seconds / 1e6:7.1f} MB/s ({upload_seconds:.1f} s)\n"
        f"seal     {SIZE / seal_seconds / 1e6:7.1f} MB/s ({seal_seconds:.1f} s, after upload)\n"
        f"download {SIZE / download_seconds / 1e6:7.1f} MB/s ({download_seconds:.1f} s)\n"
        f"VmHWM    {peak / 1024**2:7.1f} MiB (limit {PEAK_LIMIT / 1024**2:.0f} MiB; "
        f"{baseline / 1024**2:.1f} MiB once started, before the upload)\n"
    )
    with capsys.disabled():  # shown in `make test`'s output, not only on failure
        print(f"\n{figures}")
    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text(figures)
    assert peak < PEAK_LIMIT
