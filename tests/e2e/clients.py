"""Real command-line clients for the end-to-end tests: curl and wget, run as subprocesses.

`curl(...)` adds what every test needs: no proxy, no progress meter but errors shown
(`-sS`), a time limit, the response headers dumped to a file (`-D`), and a `--write-out`
trailer after the body with the HTTP status and transfer figures. It checks curl's exit
code against what the test expects (0 unless told otherwise) and returns a `CurlResult`.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import IO

TIMEOUT_SECONDS = 120.0
_TRAILER = b"\n@@sealdrop-e2e@@ "
_WRITE_OUT = (
    _TRAILER.decode()
    + "%{http_code} %{size_download} %{size_upload} %{speed_download} %{speed_upload}"
)

CURL_PARTIAL_FILE = 18  # the server closed the connection before Content-Length bytes
CURL_HTTP_ERROR = 22  # -f and a status >= 400
CURL_RECV_ERROR = 56  # the connection broke while receiving


@dataclass(frozen=True)
class CurlResult:
    """What one curl run did."""

    exit_code: int
    status: int  # the last response's status; 0 when none came
    body: bytes  # what curl wrote to stdout (empty with -o / -O)
    headers: dict[str, str]  # the last response's headers, names lower-cased
    stderr: str
    size_download: int
    size_upload: int
    speed_download: float  # bytes per second
    speed_upload: float

    @property
    def text(self) -> str:
        """The body as UTF-8 text."""
        return self.body.decode()


class ClientFailed(AssertionError):
    """curl or wget exited with a code the test did not expect."""


def curl(
    *args: str,
    cwd: Path | None = None,
    stdin: bytes | IO[bytes] | None = None,
    expect_exit: int | Collection[int] = 0,
    timeout: float = TIMEOUT_SECONDS,
) -> CurlResult:
    """Run `curl <args>`; fail the test unless it exits with `expect_exit`."""
    expected = {expect_exit} if isinstance(expect_exit, int) else set(expect_exit)
    with tempfile.TemporaryDirectory(prefix="curl-") as scratch:
        header_file = Path(scratch) / "headers"
        command = [
            _tool("curl"),
            "-sS",
            "--noproxy",
            "*",
            "--max-time",
            str(int(timeout)),
            "-D",
            str(header_file),
            "-w",
            _WRITE_OUT,
            *args,
        ]
        process = subprocess.run(
            command,
            cwd=cwd,
            input=stdin if isinstance(stdin, bytes) else None,
            stdin=None if isinstance(stdin, bytes) or stdin is None else stdin,
            capture_output=True,
            timeout=timeout + 10,
            check=False,
        )
        headers = _last_header_block(header_file)
    body, _, trailer = process.stdout.rpartition(_TRAILER)
    status, down, up, speed_down, speed_up = trailer.decode().split()
    result = CurlResult(
        exit_code=process.returncode,
        status=int(status),
        body=body,
        headers=headers,
        stderr=process.stderr.decode(errors="replace"),
        size_download=int(down),
        size_upload=int(up),
        speed_download=float(speed_down),
        speed_upload=float(speed_up),
    )
    if result.exit_code not in expected:
        raise ClientFailed(
            f"curl exited {result.exit_code} (expected {sorted(expected)}), HTTP {result.status}: "
            f"{result.stderr.strip()} {result.body[:300]!r}"
        )
    return result


def wget(*args: str, cwd: Path, expect_exit: int = 0, timeout: float = TIMEOUT_SECONDS) -> str:
    """Run `wget <args>` in `cwd`; fail the test unless it exits with `expect_exit`.

    Returns wget's log (stderr), which has the status lines.
    """
    process = subprocess.run(
        [_tool("wget"), "--no-proxy", "--no-verbose", f"--timeout={int(timeout)}", *args],
        cwd=cwd,
        capture_output=True,
        timeout=timeout + 10,
        check=False,
    )
    log = process.stderr.decode(errors="replace")
    if process.returncode != expect_exit:
        raise ClientFailed(f"wget exited {process.returncode} (expected {expect_exit}): {log}")
    return log


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ClientFailed(f"{name} is not installed: run scripts/install-test-deps")
    return path


def _last_header_block(path: Path) -> dict[str, str]:
    """The headers of the final response in a `curl -D` dump (after any 100 Continue)."""
    if not path.exists():
        return {}
    blocks = [b for b in path.read_bytes().replace(b"\r\n", b"\n").split(b"\n\n") if b.strip()]
    if not blocks:
        return {}
    headers: dict[str, str] = {}
    for line in blocks[-1].decode("latin-1").splitlines()[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers


def curl_sha256(*args: str, timeout: float = TIMEOUT_SECONDS) -> tuple[bytes, int]:
    """Run `curl -f <args> -o -` and hash what it writes as it comes: (SHA-256, byte count).

    For downloads too large to hold in memory or worth writing to disk.
    """
    command = [_tool("curl"), "-sSf", "--noproxy", "*", "--max-time", str(int(timeout))]
    digest = hashlib.sha256()
    count = 0
    with subprocess.Popen([*command, *args, "-o", "-"], stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        while chunk := process.stdout.read(1 << 20):
            digest.update(chunk)
            count += len(chunk)
        exit_code = process.wait(timeout)
    if exit_code != 0:
        raise ClientFailed(f"curl exited {exit_code} after {count} bytes")
    return digest.digest(), count
