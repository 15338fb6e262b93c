"""Resumable uploads with tus 1.0 (`/api/v1/uploads/`): create, then PATCH chunk by chunk.

Each PATCH carries `Upload-Checksum: sha256 …` of its chunk (read twice from disk: once to
hash, once to send, so memory stays flat). What the server acknowledged (`Upload-Offset`)
is never sent again: after a broken connection or a 5xx the client asks with HEAD where
the upload stands and goes on from there. The upload URL is kept in the state file
(`app.client.state`) so that the next run of `sealdrop send` on the same file continues it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from app.client.discovery import Offer
from app.client.errors import EXIT_NETWORK, EXIT_UNAVAILABLE, ClientError
from app.client.http import RETRIES, backoff, describe, fail, with_retries
from app.client.progress import Meter
from app.client.put import CHUNK, LINK_FIELDS, SendOptions, auth_headers, file_chunks
from app.client.state import Transfers, transfer_key

TUS = {"Tus-Resumable": "1.0.0"}
CHECKSUM_MISMATCH = 460
GONE = (403, 404, 410)
SETTLE_SECONDS = 30.0  # as long as a PUT waits for sealing by default


class UploadGone(Exception):
    """The server no longer knows the upload (expired, removed): start a new one."""


def metadata(path: Path, options: SendOptions) -> str:
    """The `Upload-Metadata` header: the file's name and type, and the link options."""
    pairs: dict[str, str] = {"filename": path.name}
    content_type, _ = mimetypes.guess_type(path.name)
    pairs["filetype"] = content_type or "application/octet-stream"
    if options.expires is not None:
        pairs["expires_in"] = options.expires
    if options.max_downloads is not None:
        pairs["max_downloads"] = str(options.max_downloads)
    if options.password is not None:
        pairs["password"] = options.password
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in pairs.items()
    )


def chunk_checksum(path: Path, start: int, stop: int) -> str:
    """`sha256 <base64>` of bytes `[start, stop)` of the file, read in pieces."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        file.seek(start)
        left = stop - start
        while left > 0:
            piece = file.read(min(CHUNK, left))
            if not piece:
                raise ClientError(f"{path.name}: the file shrank while it was being sent")
            digest.update(piece)
            left -= len(piece)
    return "sha256 " + base64.b64encode(digest.digest()).decode()


class TusUpload:
    """One file's tus upload, from creation (or a stored URL) to its link."""

    def __init__(
        self,
        client: httpx.Client,
        path: Path,
        options: SendOptions,
        chunk_size: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.path = path
        self.size = path.stat().st_size
        self.options = options
        self.chunk_size = chunk_size
        self.sleep = sleep
        self.headers = {**TUS, **auth_headers(options)}
        self.what = f"upload of {path.name}"

    def create(self, tus_url: str) -> str:
        """A new upload (POST); its absolute URL."""
        headers = {
            **self.headers,
            "Upload-Length": str(self.size),
            "Upload-Metadata": metadata(self.path, self.options),
        }
        response = with_retries(
            lambda: self.client.post(tus_url, headers=headers, content=b""), self.what
        )
        if response.status_code != 201 or "location" not in response.headers:
            raise fail(response, self.what)
        return urljoin(tus_url, response.headers["location"])

    def offset(self, url: str) -> int:
        """Where the upload stands (HEAD); `UploadGone` when the server forgot it."""
        response = with_retries(lambda: self.client.head(url, headers=self.headers), self.what)
        if response.status_code in GONE:
            raise UploadGone()
        raw = response.headers.get("upload-offset", "")
        if response.status_code != 200 or not raw.isdigit():
            raise fail(response, self.what)
        return int(raw)

    def patch(self, url: str, start: int, meter: Meter) -> httpx.Response:
        """Send one chunk from `start`; the answer (or a TransportError)."""
        stop = min(start + self.chunk_size, self.size)
        headers = {
            **self.headers,
            "Upload-Offset": str(start),
            "Content-Type": "application/offset+octet-stream",
            "Content-Length": str(stop - start),
            "Upload-Checksum": chunk_checksum(self.path, start, stop),
        }
        meter.restart_at(start)
        body = file_chunks(self.path, start, stop, meter)
        return self.client.patch(url, headers=headers, content=body)

    def send_rest(self, url: str, start: int, meter: Meter) -> httpx.Response | None:
        """PATCH until the server has every byte; the completing answer, if it came."""
        offset, failures = start, 0
        while offset < self.size:  # an empty file: its creation completed it
            try:
                response = self.patch(url, offset, meter)
            except httpx.TransportError as error:
                failures = self._failed(failures, describe(error))
                offset = self.offset(url)
                continue
            if response.status_code == 204:
                offset = int(response.headers.get("upload-offset", offset))
                failures = 0
                if offset >= self.size:
                    return response
                continue
            if response.status_code in GONE:
                raise UploadGone()
            if response.status_code in (409, CHECKSUM_MISMATCH) or response.status_code >= 500:
                failures = self._failed(failures, f"HTTP {response.status_code}")
                offset = self.offset(url)
                continue
            raise fail(response, self.what)
        return None

    def _failed(self, failures: int, reason: str) -> int:
        failures += 1
        if failures > RETRIES:
            raise ClientError(f"{self.what}: {reason} (the next run resumes it)", EXIT_NETWORK)
        self.sleep(backoff(failures))
        return failures

    def link(self, url: str, last: httpx.Response | None) -> dict[str, Any]:
        """The link of a completed upload: the upload's JSON state, with the manage token
        of the completing answer (absent when that answer was lost).

        Like a PUT, it waits (up to `SETTLE_SECONDS`) for the link to be sealed, so that
        what it prints is ready to share and carries the file's SHA-256.
        """
        headers = last.headers if last is not None else httpx.Headers()
        deadline = time.monotonic() + SETTLE_SECONDS
        wait = 0.1
        while True:
            response = self._state(url)
            body = _link_fields(response) if response.status_code == 200 else None
            if body is None or body.get("state") != "pending" or time.monotonic() > deadline:
                break
            self.sleep(wait)
            wait = min(wait * 2, 1.0)
        if body is None:
            if "sealdrop-link" not in headers:
                raise fail(response, self.what)
            body = {"url": headers["sealdrop-link"], "size": self.size}
        if body.get("state") == "failed":
            raise ClientError(f"{self.what}: the server could not seal the file", EXIT_UNAVAILABLE)
        link: dict[str, Any] = {key: body.get(key) for key in (*LINK_FIELDS, "sha256")}
        link["token"] = link["token"] or str(link["url"]).rstrip("/").rpartition("/")[2]
        link["download_url"] = link["download_url"] or headers.get("sealdrop-download-url")
        link["expires_at"] = link["expires_at"] or headers.get("sealdrop-expires-at")
        link["size"] = self.size if link["size"] is None else link["size"]
        link["manage_token"] = headers.get("sealdrop-manage-token")
        return link

    def _state(self, url: str) -> httpx.Response:
        return with_retries(
            lambda: self.client.get(url, headers={**self.headers, "Accept": "application/json"}),
            self.what,
        )


def _link_fields(response: httpx.Response) -> dict[str, Any] | None:
    """The link-creation fields of an upload's JSON state: at its top, or in an object
    inside it (`{"state": …, "link": {…}}`); None before the upload is complete."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    for candidate in (body, *body.values()):
        if isinstance(candidate, dict) and isinstance(candidate.get("url"), str):
            return dict(candidate)
    return None


def tus_upload(
    client: httpx.Client,
    offer: Offer,
    server: str,
    path: Path,
    options: SendOptions,
    meter: Meter,
    *,
    chunk_size: int | None = None,
    transfers: Transfers | None = None,
) -> dict[str, Any]:
    """Upload `path` with tus, resuming a stored upload of it; the link-creation JSON."""
    assert offer.tus_url is not None
    transfers = transfers or Transfers()
    key = transfer_key(server, path)
    upload = TusUpload(client, path, options, chunk_size or offer.tus_chunk_size)
    entry = transfers.get(key)
    url = entry.get("url") if entry and entry.get("kind") == "tus" else None
    start = 0
    if isinstance(url, str):
        try:
            start = upload.offset(url)
        except UploadGone:
            transfers.forget(key)
            url = None
    if not isinstance(url, str):
        url = upload.create(offer.tus_url)
        transfers.put(key, {"kind": "tus", "url": url})
        start = 0
    try:
        last = upload.send_rest(url, start, meter)
    except UploadGone:
        transfers.forget(key)
        raise ClientError(f"{upload.what}: the server dropped the upload; send it again") from None
    link = upload.link(url, last)
    transfers.forget(key)
    return link
