"""`sealdrop send` and `sealdrop get` against real stacks (embedded and production).

Round trips are byte-identical; a download broken mid-way resumes with Range, in the same
run and in the next; a corrupted download (a proxy flips one byte) is caught by the
digest and leaves nothing behind; password links take the password from a prompt or the
URL; `--json` prints one object per file with the link-creation fields.
"""

from __future__ import annotations

import os
import pty
import subprocess
import time
from pathlib import Path

import pytest

from app.client.errors import (
    EXIT_AUTH,
    EXIT_INTEGRITY,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_RATE_LIMITED,
)
from tests.e2e.clients import curl
from tests.e2e.conftest import StackFactory
from tests.e2e.payloads import sha256_of, write_payload
from tests.e2e.sealdrop_client import client_env, sealdrop, start_sealdrop
from tests.support.fault_proxy import Faults, fault_proxy
from tests.support.shared_stacks import PASSWORD_MAX_FAILURES
from tests.support.stack import SEALDROP, Stack, wait_until

SIZE = 3 * (1 << 20) + 4321
LINK_FIELDS = {
    "file", "token", "url", "download_url", "manage_token", "expires_at", "state", "size",
    "sha256",
}  # fmt: skip


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A folder for the client's files; its state folder beside it."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def _payload(work: Path, name: str = "report.bin", size: int = SIZE) -> Path:
    path = work / name
    write_payload(path, size)
    return path


def _send(stack: Stack, work: Path, *args: str, base: str | None = None) -> str:
    run = sealdrop(
        "send", *args, "--server", base or stack.base_url, state=work.parent / "state", cwd=work
    )
    assert len(run.lines) == 1, run.stdout
    return run.lines[0]


def _get(work: Path, *args: str, expect_exit: int = EXIT_OK, stdin: str = "") -> str:
    run = sealdrop(
        "get", *args, state=work.parent / "state", cwd=work, expect_exit=expect_exit, stdin=stdin
    )
    return run.stderr


def test_send_then_get_gives_the_same_bytes(stack: Stack, work: Path) -> None:
    source = _payload(work)
    link = _send(stack, work, str(source))
    assert link.startswith(f"{stack.base_url}/s/")
    out = work / "out"
    out.mkdir()
    _get(work, link, "-o", str(out))
    assert sha256_of(out / source.name) == sha256_of(source)
    assert sorted(p.name for p in out.iterdir()) == [source.name]  # no .part left


def test_get_to_stdout_and_into_the_working_folder(stack: Stack, work: Path) -> None:
    source = _payload(work, size=100_000)
    link = _send(stack, work, str(source))
    piped = subprocess.run(
        [*SEALDROP, "get", link, "-o", "-"],
        env=client_env(work.parent / "state"),
        cwd=work,
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert piped.stdout == source.read_bytes()
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    sealdrop("get", link, "-q", state=work.parent / "state", cwd=elsewhere)
    assert (elsewhere / source.name).read_bytes() == source.read_bytes()
    # Never over a file that is already there, unless -o names it.
    again = sealdrop("get", link, state=work.parent / "state", cwd=elsewhere, expect_exit=1)
    assert "already exists" in again.stderr


def test_json_prints_one_object_per_file(stack: Stack, work: Path) -> None:
    first, second = _payload(work, "a.txt", 1000), _payload(work, "b.txt", 0)
    run = sealdrop(
        "send", "--json", "--expires", "2h", "--max-downloads", "3", str(first), str(second),
        "--server", stack.base_url, state=work.parent / "state", cwd=work,
    )  # fmt: skip
    objects = run.json_lines()
    assert [set(o) for o in objects] == [LINK_FIELDS, LINK_FIELDS]
    assert [o["file"] for o in objects] == [str(first), str(second)]
    assert [o["size"] for o in objects] == [1000, 0]
    assert objects[0]["sha256"] == sha256_of(first).hex()
    assert all(o["url"] == f"{stack.base_url}/s/{o['token']}" for o in objects)
    # The options reached the server: the owner's view of the link shows them.
    status = curl(
        "-f", "-H", f"Authorization: Bearer {objects[0]['manage_token']}",
        f"{stack.base_url}/api/v1/links/{objects[0]['token']}",
    )  # fmt: skip
    assert '"max_downloads":3' in status.text.replace(" ", "")
    # A limited link's /s/ URL answers a page, not the file: get fetches its /d/ URL.
    _get(work, objects[0]["url"], "-o", str(work / "limited"))
    assert (work / "limited").read_bytes() == first.read_bytes()


def test_a_password_link_needs_its_password(stack: Stack, work: Path) -> None:
    source = _payload(work, size=50_000)
    run = sealdrop(
        "send", "--password-prompt", str(source), "--server", stack.base_url,
        state=work.parent / "state", cwd=work, stdin="s3cret pässword\n",
    )  # fmt: skip
    link = run.lines[-1]
    error = _get(work, link, "-o", str(work / "none"), expect_exit=EXIT_AUTH)
    assert "password" in error
    assert "s3cret" not in error
    assert not (work / "none").exists()
    _get(work, link, "-o", str(work / "prompted"), "--password-prompt", stdin="s3cret pässword\n")
    assert (work / "prompted").read_bytes() == source.read_bytes()
    userinfo = link.replace("http://", "http://:s3cret%20p%C3%A4ssword@")
    _get(work, userinfo, "-o", str(work / "from-url"))
    assert (work / "from-url").read_bytes() == source.read_bytes()


def test_unknown_and_deleted_links_exit_not_found(stack: Stack, work: Path) -> None:
    source = _payload(work, size=1000)
    run = sealdrop(
        "send", "--json", str(source), "--server", stack.base_url,
        state=work.parent / "state", cwd=work,
    )  # fmt: skip
    link = run.json_lines()[0]
    curl("-f", "-X", "DELETE", "-H", f"Authorization: Bearer {link['manage_token']}",
         f"{stack.base_url}/api/v1/links/{link['token']}")  # fmt: skip
    gone = _get(work, link["url"], expect_exit=EXIT_NOT_FOUND)
    assert "HTTP 410" in gone
    assert link["token"] not in gone
    missing = _get(work, f"{stack.base_url}/s/{'x' * 22}", expect_exit=EXIT_NOT_FOUND)
    assert "HTTP 404" in missing


def test_a_broken_download_resumes_with_range_in_the_same_run(stack: Stack, work: Path) -> None:
    source = _payload(work)
    link = _send(stack, work, str(source))
    with fault_proxy(stack.base_url, Faults(cut_down_after=SIZE // 2, cut_connections=2)) as proxy:
        # HEAD and the first GET run on one connection, cut half-way; then a second cut.
        proxied = link.replace(stack.base_url, proxy.url)
        _get(work, proxied, "-o", str(work / "copy"))
        requests = [seen.head.decode("latin-1").lower() for seen in proxy.connections]
    assert (work / "copy").read_bytes() == source.read_bytes()
    assert any("range: bytes=" in head for head in requests[1:]), requests
    assert proxy.sent_down() < SIZE + SIZE // 2 + 64 * 1024  # nothing was fetched twice


def test_a_killed_download_resumes_in_the_next_run(stack: Stack, work: Path) -> None:
    source = _payload(work)
    link = _send(stack, work, str(source))
    target = work / "copy"
    part = work / "copy.part"
    with fault_proxy(stack.base_url, Faults(down_delay=0.02)) as proxy:
        proxied = link.replace(stack.base_url, proxy.url)
        process = start_sealdrop(
            "get", proxied, "-o", str(target), state=work.parent / "state", cwd=work
        )
        try:
            wait_until(
                lambda: part.exists() and part.stat().st_size > SIZE // 4,
                timeout=60,
                what="part of the download on disk",
            )
        finally:
            process.kill()
            process.communicate(timeout=10)
        kept = part.stat().st_size
        assert 0 < kept < SIZE
        assert not target.exists()
        proxy.faults.down_delay = 0.0
        before = proxy.sent_down()
        _get(work, proxied, "-o", str(target))
        second_run = proxy.sent_down() - before
    assert target.read_bytes() == source.read_bytes()
    assert not part.exists()
    assert second_run < SIZE - kept + 64 * 1024, (second_run, kept)


def test_a_corrupted_download_is_refused_and_nothing_is_kept(stack: Stack, work: Path) -> None:
    source = _payload(work)
    link = _send(stack, work, str(source))
    # One connection carries the HEAD (a few hundred bytes) and the GET: byte 1 MB of that
    # stream is in the file's body.
    with fault_proxy(stack.base_url, Faults(flip_down_at=1_000_000)) as proxy:
        proxied = link.replace(stack.base_url, proxy.url)
        error = _get(work, proxied, "-o", str(work / "copy"), expect_exit=EXIT_INTEGRITY)
        piped = sealdrop(
            "get", proxied, "-o", "-", state=work.parent / "state", cwd=work, expect_exit=None
        )
    assert "digest" in error
    assert not (work / "copy").exists()
    assert not (work / "copy.part").exists()
    assert piped.exit_code == EXIT_INTEGRITY


def test_no_progress_bar_off_a_terminal(stack: Stack, work: Path) -> None:
    source = _payload(work, size=10_000)
    started = time.monotonic()
    run = sealdrop(
        "send", str(source), "--server", stack.base_url, state=work.parent / "state", cwd=work
    )
    assert run.stderr == ""
    assert time.monotonic() - started < 60


def test_a_locked_link_exits_rate_limited(stack: Stack, work: Path) -> None:
    source = _payload(work, size=1000)
    run = sealdrop(
        "send", "--password-prompt", str(source), "--server", stack.base_url,
        state=work.parent / "state", cwd=work, stdin="right\n",
    )  # fmt: skip
    wrong = run.lines[0].replace("http://", "http://:wrong@")
    codes = [
        sealdrop("get", wrong, state=work.parent / "state", cwd=work, expect_exit=None).exit_code
        for _ in range(PASSWORD_MAX_FAILURES + 1)
    ]
    assert codes[0] == EXIT_AUTH
    assert codes[-1] == EXIT_RATE_LIMITED


def test_the_progress_bar_shows_on_a_terminal_only(stack: Stack, work: Path) -> None:
    source = _payload(work, size=2 << 20)
    shown = _stderr_on_a_terminal(work, "send", str(source), "--server", stack.base_url)
    assert "MiB" in shown
    assert "report.bin" in shown
    quiet = _stderr_on_a_terminal(work, "send", "-q", str(source), "--server", stack.base_url)
    assert quiet == ""


def _stderr_on_a_terminal(work: Path, *args: str) -> str:
    """Run the client with stderr on a pseudo-terminal; what it wrote there."""
    primary, secondary = pty.openpty()
    try:
        process = subprocess.Popen(
            [*SEALDROP, *args],
            cwd=work,
            env=client_env(work.parent / "state", COLUMNS="120"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=secondary,
        )
        os.close(secondary)
        output = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the client closed its end
                break
            if not chunk:
                break
            output += chunk
        stdout, _ = process.communicate(timeout=60)
    finally:
        os.close(primary)
    assert process.returncode == 0
    assert stdout.decode().startswith(stack_link_prefix(args))
    return output.decode(errors="replace")


def stack_link_prefix(args: tuple[str, ...]) -> str:
    """The start of the share link a `send … --server URL` prints."""
    return args[args.index("--server") + 1] + "/s/"


def test_the_upload_key_comes_from_the_environment(make_stack: StackFactory, work: Path) -> None:
    stack = make_stack(SEALDROP_UPLOAD_POLICY="keys")
    added = stack.run_cli("uploaders", "add", "alice")
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip().splitlines()[-1]
    source = _payload(work, size=20_000)
    state = work.parent / "state"
    refused = sealdrop(
        "send", str(source), "--server", stack.base_url, state=state, cwd=work,
        expect_exit=EXIT_AUTH,
    )  # fmt: skip
    assert "HTTP 401" in refused.stderr
    run = sealdrop(
        "send", str(source), state=state, cwd=work,
        SEALDROP_SERVER=stack.base_url, SEALDROP_UPLOAD_KEY=key,
    )  # fmt: skip
    assert key not in run.stdout + run.stderr
    _get(work, run.lines[0], "-o", str(work / "copy"))
    assert (work / "copy").read_bytes() == source.read_bytes()


def test_get_waits_out_a_link_still_being_sealed(make_stack: StackFactory, work: Path) -> None:
    stack = make_stack(worker="off")  # nothing seals until a worker starts
    source = _payload(work, size=200_000)
    uploaded = curl(
        "-f", "-T", str(source), "-H", "Prefer: respond-async", f"{stack.base_url}/"
    )  # fmt: skip
    assert uploaded.status == 202
    link = uploaded.text.strip()
    assert curl("-I", link.replace("/s/", "/d/") + "/", expect_exit=0).status == 503
    process = start_sealdrop(
        "get", link, "-o", str(work / "copy"), state=work.parent / "state", cwd=work
    )
    try:
        time.sleep(1.0)  # the client has had its first 503 (Retry-After: 2) and waits
        assert process.poll() is None
        stack.start_worker()
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == EXIT_OK, err
    assert (work / "copy").read_bytes() == source.read_bytes()
