"""Direct uploads (S3 staging): the client seals the file and PUTs the parts to S3 itself.

The server answers the creation with a one-time staging key, the blob's 16-byte header
and presigned `UploadPart` URLs. Part k holds the v1 segments of plaintext bytes
`[(k-1)·part_size, min(k·part_size, size))`, segment indices counted over the whole file
and the last flag on the file's final segment only; part 1 starts with the header
(docs/format.md). Sealing a segment is deterministic (same key, nonce and plaintext), so a
part may be sealed and sent again after a failure. The bucket never holds plaintext.

The staging key is a secret: it lives in the 0600 state file only until the upload is
complete, so that a later run can continue (the server lists the parts it has).
"""

from __future__ import annotations

import base64
import mimetypes
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app.client.errors import EXIT_NETWORK, ClientError
from app.client.http import RETRIES, backoff, describe, fail, with_retries
from app.client.progress import Meter
from app.client.put import SendOptions, auth_headers, link_of
from app.client.state import Transfers, transfer_key
from app.crypto.sealing import HEADER_SIZE, TAG_SIZE, Layout, parse_header, seal_part

GONE = (403, 404, 410)


def b64url(text: str) -> bytes:
    """Decode unpadded base64url."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class PartSealer:
    """Seals the parts of one file under its staging key and header."""

    key: bytes
    header: bytes
    layout: Layout
    part_size: int

    @classmethod
    def of(cls, size: int, key: bytes, header: bytes, part_size: int) -> PartSealer:
        """Check the server's values and build the sealer."""
        segment_log2, _prefix = parse_header(header)
        if len(key) != 32 or part_size <= 0 or part_size % (1 << segment_log2):
            raise ClientError("direct upload: the server's key, header or part size is unusable")
        return cls(key, header, Layout(size, segment_log2), part_size)

    def segments(self, number: int) -> range:
        """The segment indices of part `number` (1-based)."""
        layout = self.layout
        if layout.plaintext_size == 0:
            return range(0, 1)  # an empty file: one empty last segment
        start = (number - 1) * self.part_size
        stop = min(number * self.part_size, layout.plaintext_size)
        return layout.segments_for(start, stop)

    def sealed_length(self, number: int) -> int:
        """The bytes part `number` takes in the bucket."""
        segments = self.segments(number)
        plain = sum(self.layout.plain_length(index) for index in segments)
        return plain + TAG_SIZE * len(segments) + (HEADER_SIZE if number == 1 else 0)

    def plain_length(self, number: int) -> int:
        """The plaintext bytes of part `number`."""
        return sum(self.layout.plain_length(index) for index in self.segments(number))

    def chunks(self, path: Path, number: int, meter: Meter) -> Iterator[bytes]:
        """Part `number`, sealed a segment at a time from the file (`seal_part` puts the
        header in front of segment 0)."""
        last_index = self.layout.segment_count - 1
        with path.open("rb") as file:
            for index in self.segments(number):
                file.seek(index * self.layout.segment_size)
                plain = file.read(self.layout.plain_length(index))
                if len(plain) != self.layout.plain_length(index):
                    raise ClientError(f"{path.name}: the file shrank while it was being sent")
                yield seal_part(self.key, self.header, index, plain, last=index == last_index)
                meter.advance(len(plain))


class DirectUpload:
    """One file's direct upload: its server-side URL and the parts still to send."""

    def __init__(
        self,
        client: httpx.Client,
        path: Path,
        options: SendOptions,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.path = path
        self.options = options
        self.sleep = sleep
        self.what = f"upload of {path.name}"
        # Presigned URLs carry their own authorization: no header of ours goes to S3.
        self.bucket = httpx.Client(timeout=httpx.Timeout(30.0, read=300.0))

    def create(self, direct_url: str) -> dict[str, Any]:
        """POST the upload; the server's answer."""
        content_type, _ = mimetypes.guess_type(self.path.name)
        body: dict[str, Any] = {
            "filename": self.path.name,
            "size": self.path.stat().st_size,
            "content_type": content_type or "application/octet-stream",
        }
        if self.options.expires is not None:
            body["expires_in"] = self.options.expires
        if self.options.max_downloads is not None:
            body["max_downloads"] = self.options.max_downloads
        if self.options.password is not None:
            body["password"] = self.options.password
        headers = auth_headers(self.options)
        response = with_retries(
            lambda: self.client.post(direct_url, json=body, headers=headers), self.what
        )
        if response.status_code != 201:
            raise fail(response, self.what)
        return self._json(response)

    def status(self, upload_url: str) -> dict[str, Any] | None:
        """The upload's parts done and fresh URLs for the others; None once it is gone."""
        response = with_retries(
            lambda: self.client.get(upload_url, headers=auth_headers(self.options)), self.what
        )
        if response.status_code in GONE:
            return None
        if response.status_code != 200:
            raise fail(response, self.what)
        return self._json(response)

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ClientError(f"{self.what}: the server's answer is not the expected JSON")
        return body

    def put_part(self, sealer: PartSealer, number: int, url: str, meter: Meter, done: int) -> bool:
        """PUT one sealed part; False when its URL was refused (expired: ask for fresh ones).

        `done` is the plaintext already sent in other parts, for the progress bar.
        """
        length = sealer.sealed_length(number)
        failures = 0
        while True:
            meter.restart_at(done)
            try:
                response = self.bucket.put(
                    url,
                    content=sealer.chunks(self.path, number, meter),
                    headers={"Content-Length": str(length)},
                )
            except httpx.TransportError as error:
                failures = self._failed(failures, describe(error))
                continue
            response.close()
            if response.status_code == 200:
                return True
            if response.status_code == 403:
                return False
            if response.status_code >= 500:
                failures = self._failed(failures, f"S3 answered HTTP {response.status_code}")
                continue
            raise ClientError(
                f"{self.what}: S3 refused part {number} (HTTP {response.status_code})"
            )

    def _failed(self, failures: int, reason: str) -> int:
        failures += 1
        if failures > RETRIES:
            raise ClientError(f"{self.what}: {reason} (the next run resumes it)", EXIT_NETWORK)
        self.sleep(backoff(failures))
        return failures

    def complete(self, upload_url: str) -> dict[str, Any]:
        """Ask the server to queue the sealed parts; the link-creation JSON."""
        url = upload_url.rstrip("/") + "/complete"
        response = with_retries(
            lambda: self.client.post(url, headers=auth_headers(self.options)), self.what
        )
        if response.status_code not in (200, 201, 202):
            raise fail(response, self.what)
        return link_of(response, self.what)


def _parts(answer: dict[str, Any]) -> dict[int, str]:
    parts = answer.get("parts")
    if not isinstance(parts, list):
        return {}
    return {
        part["number"]: part["url"]
        for part in parts
        if isinstance(part, dict) and isinstance(part.get("number"), int)
        and isinstance(part.get("url"), str)
    }  # fmt: skip


def direct_upload(
    client: httpx.Client,
    direct_url: str,
    server: str,
    path: Path,
    options: SendOptions,
    meter: Meter,
    *,
    transfers: Transfers | None = None,
) -> dict[str, Any]:
    """Seal `path` here and send it straight to the staging bucket; the link-creation JSON."""
    transfers = transfers or Transfers()
    key = transfer_key(server, path)
    upload = DirectUpload(client, path, options)
    try:
        entry = transfers.get(key)
        answer = None
        if entry and entry.get("kind") == "direct":
            answer = upload.status(entry["upload_url"])
            if answer is None:
                transfers.forget(key)
        if answer is None or entry is None or entry.get("kind") != "direct":
            answer = upload.create(direct_url)
            entry = {
                "kind": "direct",
                "upload_url": str(httpx.URL(direct_url).join(answer["upload_url"])),
                "staging_key": answer["staging_key"],
                "header": answer["header"],
                "part_size": answer["part_size"],
            }
            transfers.put(key, entry)
        sealer = PartSealer.of(
            path.stat().st_size,
            b64url(entry["staging_key"]),
            b64url(entry["header"]),
            int(entry["part_size"]),
        )
        _send_parts(upload, sealer, entry["upload_url"], answer, meter)
        link = upload.complete(entry["upload_url"])
    finally:
        upload.bucket.close()
    transfers.forget(key)
    return link


def _send_parts(
    upload: DirectUpload,
    sealer: PartSealer,
    upload_url: str,
    answer: dict[str, Any],
    meter: Meter,
) -> None:
    """PUT every part the server does not have yet, refreshing expired URLs."""
    todo = _parts(answer)
    done = sum(sealer.plain_length(n) for n in range(1, 1 + _count(sealer)) if n not in todo)
    meter.restart_at(done)
    for _attempt in range(RETRIES + 1):
        for number in sorted(todo):
            if upload.put_part(sealer, number, todo[number], meter, done):
                done += sealer.plain_length(number)
                del todo[number]
            meter.restart_at(done)
        if not todo:
            return
        fresh = upload.status(upload_url)  # the URLs left have expired: new ones
        if fresh is None:
            raise ClientError(f"{upload.what}: the server dropped the upload; send it again")
        todo = _parts(fresh)
    raise ClientError(f"{upload.what}: S3 kept refusing the parts' URLs", EXIT_NETWORK)


def _count(sealer: PartSealer) -> int:
    size = sealer.layout.plaintext_size
    return max(1, -(-size // sealer.part_size))
