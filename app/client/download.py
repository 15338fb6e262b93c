"""`sealdrop get`: HEAD, then the file into `NAME.part` with Range resume, then the digest.

The whole file is checked against the server's `Repr-Digest` before it is renamed into
place; on a mismatch nothing is kept. A broken connection is resumed from the bytes
already on disk (`Range` with `If-Range`, so a changed file starts over), in this run or
the next.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx

from app.client.errors import (
    EXIT_AUTH,
    EXIT_FAILURE,
    EXIT_INTEGRITY,
    EXIT_NETWORK,
    ClientError,
)
from app.client.http import RETRIES, backoff, describe, fail, with_retries
from app.client.links import filename_from, sha256_of_repr_digest
from app.client.progress import Meter

CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


@dataclass(frozen=True)
class FileInfo:
    """What a HEAD says about the file."""

    size: int
    name: str
    sha256: bytes | None
    etag: str | None


class Fetcher:
    """The requests of one download: the URL, the password, and the client."""

    def __init__(self, client: httpx.Client, url: str, password: str | None) -> None:
        self.client = client
        self.url = url
        self.has_password = password is not None
        # httpx.Auth() itself adds nothing: a link without a password.
        self.auth = httpx.BasicAuth("", password) if password is not None else httpx.Auth()

    def _check(self, response: httpx.Response) -> None:
        if response.status_code == 401:
            response.close()
            hint = (
                "wrong password"
                if self.has_password
                else "a password is needed (--password-prompt)"
            )
            raise ClientError(f"download: HTTP 401: {hint}", EXIT_AUTH)
        if response.status_code >= 400:
            raise fail(response, "download")

    def head(self) -> FileInfo:
        """The file's size, name, digest and ETag."""
        response = with_retries(lambda: self.client.head(self.url, auth=self.auth), "download")
        self._check(response)
        length = response.headers.get("content-length", "")
        if not length.isdigit():
            raise ClientError("download: the server gave no file size")
        return FileInfo(
            size=int(length),
            name=filename_from(response.headers.get("content-disposition"), self.url),
            sha256=sha256_of_repr_digest(response.headers.get("repr-digest")),
            etag=response.headers.get("etag"),
        )

    def open(self, start: int, etag: str | None) -> httpx.Response:
        """A streaming GET from byte `start` (the whole file if the server says so)."""
        headers = {"Accept-Encoding": "identity"}
        if start:
            headers["Range"] = f"bytes={start}-"
            if etag:
                headers["If-Range"] = etag

        def send() -> httpx.Response:
            request = self.client.build_request("GET", self.url, headers=headers)
            return self.client.send(request, auth=self.auth, stream=True)

        response = with_retries(send, "download")
        self._check(response)
        return response


class Sink:
    """Where the bytes go, hashed as they are written: a `.part` file or stdout."""

    def __init__(self, file: BinaryIO, *, resumable: bool) -> None:
        self.file = file
        self.resumable = resumable
        self.hash = hashlib.sha256()
        self.offset = 0

    def write(self, chunk: bytes) -> None:
        """Append `chunk`."""
        self.file.write(chunk)
        self.hash.update(chunk)
        self.offset += len(chunk)

    def restart(self) -> None:
        """Back to byte 0 (the server sent the whole file)."""
        if not self.resumable:
            if self.offset:
                raise ClientError("download: the server restarted the file; stdout cannot rewind")
            return
        self.file.seek(0)
        self.file.truncate()
        self.hash = hashlib.sha256()
        self.offset = 0


def open_part(part: Path, size: int) -> Sink:
    """The `.part` file, its bytes already there hashed (dropped if longer than the file)."""
    file = part.open("r+b" if part.exists() else "w+b")
    sink = Sink(file, resumable=True)
    if part.stat().st_size > size:
        sink.restart()
    while chunk := file.read(CHUNK):
        sink.hash.update(chunk)
        sink.offset += len(chunk)
    return sink


def _content_start(response: httpx.Response) -> int:
    """Where a 206's body starts (Content-Range)."""
    found = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
    if not found:
        raise ClientError("download: a partial answer without a usable Content-Range")
    return int(found.group(1))


def fill(
    fetcher: Fetcher,
    info: FileInfo,
    sink: Sink,
    meter: Meter,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Write the file's bytes from `sink.offset` on, resuming after broken connections."""
    meter.restart_at(sink.offset)
    failures = 0
    while sink.offset < info.size:
        response = fetcher.open(sink.offset, info.etag)
        try:
            if response.status_code == 206:
                if _content_start(response) != sink.offset:
                    raise ClientError("download: the server sent another range than asked")
            else:
                sink.restart()
                meter.restart_at(0)
            for chunk in response.iter_raw(CHUNK):
                sink.write(chunk)
                meter.advance(len(chunk))
            if sink.offset < info.size:
                raise httpx.RemoteProtocolError("the answer ended early")
        except httpx.TransportError as error:
            failures += 1
            if failures > RETRIES:
                raise ClientError(f"download: {describe(error)}", EXIT_NETWORK) from None
            sleep(backoff(failures))
        finally:
            response.close()
    if sink.offset != info.size:
        raise ClientError("download: the server sent more bytes than the file has")


def verify(info: FileInfo, sink: Sink) -> None:
    """The whole file against the server's digest: ClientError(EXIT_INTEGRITY) on mismatch."""
    if info.sha256 is None:
        print("sealdrop: warning: the server sent no Repr-Digest; not verified", file=sys.stderr)
        return
    if sink.hash.digest() != info.sha256:
        raise ClientError(
            "download: the file does not match the server's digest (Repr-Digest); nothing was kept",
            EXIT_INTEGRITY,
        )


def target_path(output: str | None, name: str) -> tuple[Path, bool]:
    """Where the file goes, and whether an existing file there may be replaced (-o)."""
    if output is None:
        return Path.cwd() / name, False
    path = Path(output)
    if path.is_dir():
        return path / name, False
    return path, True


def get_to_file(
    fetcher: Fetcher, info: FileInfo, target: Path, replace: bool, meter: Meter
) -> None:
    """Download into `target.part`, verify, and rename into place."""
    if target.exists() and not replace:
        raise ClientError(f"{target.name} already exists here (name another with -o)", EXIT_FAILURE)
    part = target.with_name(target.name + ".part")
    sink = open_part(part, info.size)
    try:
        fill(fetcher, info, sink, meter)
        sink.file.flush()
        os.fsync(sink.file.fileno())
    finally:
        sink.file.close()
    try:
        verify(info, sink)
    except ClientError:
        part.unlink()
        raise
    os.replace(part, target)


def get_to_stdout(fetcher: Fetcher, info: FileInfo, meter: Meter) -> None:
    """Download to stdout (`-o -`): verified at the end, when it is too late to unwrite."""
    sink = Sink(sys.stdout.buffer, resumable=False)
    fill(fetcher, info, sink, meter)
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.buffer.flush()
    verify(info, sink)
