"""Files to send through Sealdrop in end-to-end tests, and uploading them with `curl -T`.

Payloads are random (they neither compress nor repeat at segment edges) and may carry a
marker: a unique byte string repeated through the file, so a test can search the data dir
for any plaintext that came to rest there.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.clients import curl
from tests.support.stack import Stack

CHUNK = 1 << 20
MARKER_EVERY = 4096


def new_marker() -> bytes:
    """A marker that occurs nowhere by chance."""
    return b"SEALDROP-PLAINTEXT-MARKER-" + secrets.token_hex(16).encode()


def random_chunks(size: int, *, marker: bytes | None = None) -> Iterator[bytes]:
    """`size` random bytes in chunks of up to 1 MiB, with `marker` every 4 KiB if given."""
    left = size
    while left > 0:
        chunk = bytearray(os.urandom(min(CHUNK, left)))
        if marker is not None:
            for at in range(0, len(chunk) - len(marker) + 1, MARKER_EVERY):
                chunk[at : at + len(marker)] = marker
        left -= len(chunk)
        yield bytes(chunk)


def write_payload(path: Path, size: int, *, marker: bytes | None = None) -> bytes:
    """Write a random file of `size` bytes (chunk by chunk); return its SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as file:
        for chunk in random_chunks(size, marker=marker):
            digest.update(chunk)
            file.write(chunk)
    return digest.digest()


def sha256_of(path: Path) -> bytes:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.digest()


@dataclass(frozen=True)
class Uploaded:
    """What `curl -T` got back: the status, the printed share link, and the headers' extras."""

    status: int
    share_url: str
    download_url: str
    manage_token: str

    @property
    def token(self) -> str:
        """The link's token (the last part of the share URL)."""
        return self.share_url.rsplit("/", 1)[1]


def upload(stack: Stack, path: Path, *curl_args: str) -> Uploaded:
    """`curl -fT <path> <base>/`: check it printed exactly one line, the share link."""
    result = curl("-f", "-T", str(path), f"{stack.base_url}/", *curl_args)
    share_url, newline, rest = result.text.partition("\n")
    assert (newline, rest) == ("\n", ""), f"expected one line, got {result.text!r}"
    assert share_url.startswith(f"{stack.base_url}/s/"), share_url
    return Uploaded(
        status=result.status,
        share_url=share_url,
        download_url=result.headers["sealdrop-download-url"],
        manage_token=result.headers["sealdrop-manage-token"],
    )
