"""`sealdrop send` over tus: chosen from discovery, resumed after a kill or a broken
connection without sending acknowledged bytes again, and `--via put` still there.

Uploads go through a TCP proxy that counts the request bytes of every connection, so a
test can tell how much a resumed run sent; chunks are 1 MiB (`--chunk-size`) so that a
file of a few MiB takes several PATCHes.
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest

from app.client.errors import EXIT_REFUSED
from tests.e2e.clients import curl
from tests.e2e.payloads import write_payload
from tests.e2e.sealdrop_client import sealdrop, start_sealdrop
from tests.support.fault_proxy import Faults, fault_proxy
from tests.support.shared_stacks import SMALL_UPLOAD_LIMIT
from tests.support.stack import Stack, wait_until

SIZE = 6 * (1 << 20) + 777
CHUNK = "1M"
OVERHEAD = 64 * 1024  # request heads of a few requests, generously


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A folder for the client's files; its state folder beside it."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def _state(work: Path) -> Path:
    return work.parent / "state"


def _stored_uploads(work: Path) -> list[str]:
    path = _state(work) / "sealdrop" / "transfers.json"
    if not path.exists():
        return []
    return [entry["url"] for entry in json.loads(path.read_text()).values()]


def _offset(stack: Stack, upload_url: str) -> int:
    direct = re.sub(r"^http://127\.0\.0\.1:\d+", stack.base_url, upload_url)
    answer = curl("-f", "-I", "-H", "Tus-Resumable: 1.0.0", direct)
    return int(answer.headers["upload-offset"])


def _fetch(stack: Stack, work: Path, link: str, name: str) -> bytes:
    sealdrop("get", link, "-o", str(work / name), state=_state(work), cwd=work)
    return (work / name).read_bytes()


@pytest.mark.parametrize("via", ["auto", "put"])
def test_send_takes_tus_unless_told_otherwise(stack: Stack, work: Path, via: str) -> None:
    source = work / "a.bin"
    write_payload(source, SIZE)
    with fault_proxy(stack.base_url) as proxy:
        run = sealdrop(
            "send", "--via", via, "--chunk-size", CHUNK, str(source), "--server", proxy.url,
            state=_state(work), cwd=work,
        )  # fmt: skip
        heads = b"".join(seen.head for seen in proxy.connections)
    uses_tus = b"POST /api/v1/uploads/" in heads
    assert uses_tus is (via == "auto"), heads[:2000]
    assert (b"PUT /a.bin" in heads) is (via == "put")
    link = run.lines[0].replace(proxy.url, stack.base_url)
    assert _fetch(stack, work, link, "copy") == source.read_bytes()
    assert _stored_uploads(work) == []  # done: nothing left to resume


def test_a_killed_send_resumes_without_resending_acknowledged_bytes(
    stack: Stack, work: Path
) -> None:
    source = work / "big.bin"
    write_payload(source, SIZE)
    with fault_proxy(stack.base_url, Faults(up_delay=0.01)) as proxy:
        args = ("send", "--chunk-size", CHUNK, str(source), "--server", proxy.url)
        process = start_sealdrop(*args, state=_state(work), cwd=work)
        try:
            url = wait_until(lambda: _stored_uploads(work), timeout=60, what="a stored upload")[0]
            wait_until(lambda: _offset(stack, url) >= 2 << 20, timeout=60, what="2 MiB acked")
        finally:
            process.kill()
            process.communicate(timeout=10)
        acknowledged = _offset(stack, url)
        assert 0 < acknowledged < SIZE
        # The upload URL is a capability: the state file is the user's alone.
        assert stat.S_IMODE((_state(work) / "sealdrop" / "transfers.json").stat().st_mode) == 0o600
        proxy.faults.up_delay = 0.0
        before = proxy.sent_up()
        run = sealdrop(*args, state=_state(work), cwd=work)
        second_run = proxy.sent_up() - before
    assert second_run <= SIZE - acknowledged + OVERHEAD, (second_run, acknowledged)
    link = run.lines[0].replace(proxy.url, stack.base_url)
    assert _fetch(stack, work, link, "copy") == source.read_bytes()
    assert _stored_uploads(work) == []


def test_a_connection_cut_mid_patch_is_resumed_in_the_same_run(stack: Stack, work: Path) -> None:
    source = work / "cut.bin"
    write_payload(source, SIZE)
    # The first connection (creation and the first PATCHes) breaks 2.5 MiB in.
    faults = Faults(cut_up_after=(5 << 20) // 2, cut_up_connections=1)
    with fault_proxy(stack.base_url, faults) as proxy:
        run = sealdrop(
            "send", "--chunk-size", CHUNK, str(source), "--server", proxy.url,
            state=_state(work), cwd=work,
        )  # fmt: skip
        sent = proxy.sent_up()
        connections = len(proxy.connections)
    assert connections >= 2
    assert sent <= SIZE + (1 << 20) + OVERHEAD  # at most the broken chunk again
    link = run.lines[0].replace(proxy.url, stack.base_url)
    assert _fetch(stack, work, link, "copy") == source.read_bytes()


@pytest.mark.parametrize("via", ["auto", "put"])
def test_a_file_over_the_limit_is_refused_before_its_bytes(
    stack: Stack, work: Path, via: str
) -> None:
    source = work / "huge.bin"
    write_payload(source, SMALL_UPLOAD_LIMIT + 1)
    with fault_proxy(stack.base_url) as proxy:
        run = sealdrop(
            "send", "--via", via, str(source), "--server", proxy.url,
            state=_state(work), cwd=work, expect_exit=EXIT_REFUSED,
        )  # fmt: skip
        sent = proxy.sent_up()
    assert run.stderr.startswith("sealdrop: upload of huge.bin: HTTP 413: ")
    assert run.stdout == ""
    assert _stored_uploads(work) == []
    if via == "auto":  # tus asks first; a PUT may have sent some of its body before the 413
        assert sent < 64 * 1024
