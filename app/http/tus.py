"""The tus 1.0 protocol's headers: what a resumable upload's requests say and how its
answers say it (https://tus.io/protocols/resumable-upload).

Parsing only: `Tus-Resumable`, `Upload-Length`, `Upload-Offset`, `Upload-Metadata`,
`Upload-Checksum`, and the dates of `Upload-Expires`. What they mean for an upload is
`app.domain.resumable`'s business.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime
from email.utils import format_datetime

from app.domain.digits import whole_number
from app.errors import BadRequest, TusVersionUnsupported, UnsupportedMediaType

TUS_PATH = "/api/v1/uploads"
TUS_VERSION = "1.0.0"
EXTENSIONS = ("creation", "creation-with-upload", "termination", "expiration", "checksum")
CHECKSUM_ALGORITHMS = ("sha256",)
PATCH_CONTENT_TYPE = "application/offset+octet-stream"
# What a client should send per PATCH (discovery): large enough that the per-request cost
# vanishes, small enough to pass proxies with a body cap (Cloudflare's is 100 MB).
CHUNK_SIZE = 50 * 1024 * 1024
METADATA_KEYS = frozenset({"filename", "filetype", "expires_in", "max_downloads", "password"})
MAX_METADATA_BYTES = 8192


def check_version(headers: Mapping[str, str]) -> None:
    """Refuse (412) a request whose Tus-Resumable is missing or another version."""
    if headers.get("tus-resumable", "").strip() != TUS_VERSION:
        raise TusVersionUnsupported()


def check_patch_type(headers: Mapping[str, str]) -> None:
    """Refuse (415) a body of another type than tus's."""
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != PATCH_CONTENT_TYPE:
        raise UnsupportedMediaType()


def number(headers: Mapping[str, str], name: str) -> int | None:
    """A header holding a whole number of bytes, or None when absent; 400 when malformed."""
    raw = headers.get(name.lower())
    if raw is None:
        return None
    value = whole_number(raw.strip())
    if value is None:
        raise BadRequest(f"{name} must be a whole number")
    return value


def metadata(raw: str | None) -> dict[str, bytes]:
    """Upload-Metadata: comma-separated `key base64(value)` pairs (a key alone: empty).

    Keys this server does not know are kept out; a malformed pair is a 400.
    """
    if raw is None or raw.strip() == "":
        return {}
    if len(raw) > MAX_METADATA_BYTES:
        raise BadRequest(f"Upload-Metadata may be at most {MAX_METADATA_BYTES} bytes")
    found: dict[str, bytes] = {}
    for pair in raw.split(","):
        key, _, encoded = pair.strip().partition(" ")
        if not key or " " in encoded.strip() or key in found:
            raise BadRequest("Upload-Metadata must be comma-separated 'key base64' pairs")
        try:
            value = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"Upload-Metadata {key!r} is not base64") from None
        if key in METADATA_KEYS:
            found[key] = value
    return found


def without_secrets(raw: str | None) -> str | None:
    """Upload-Metadata as kept and echoed by HEAD: without its `password` pair, which is
    stored only as its hash (call after `metadata` has checked the header)."""
    if raw is None:
        return None
    kept = [pair.strip() for pair in raw.split(",") if pair.strip().partition(" ")[0] != "password"]
    return ",".join(kept) or None


def text(values: Mapping[str, bytes], key: str) -> str | None:
    """One metadata value as UTF-8 text, or None when absent."""
    value = values.get(key)
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"Upload-Metadata {key!r} must be UTF-8") from None


def checksum(raw: str | None) -> bytes | None:
    """The SHA-256 an `Upload-Checksum: sha256 <base64>` announces, or None; 400 for any
    other algorithm or a malformed value."""
    if raw is None:
        return None
    algorithm, _, encoded = raw.strip().partition(" ")
    if algorithm.lower() not in CHECKSUM_ALGORITHMS:
        raise BadRequest("Upload-Checksum: only sha256 is supported")
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 32:
        raise BadRequest("Upload-Checksum must be 'sha256 <base64 of 32 bytes>'")
    return digest


def http_date(moment: datetime) -> str:
    """A date as tus's Upload-Expires gives it (RFC 9110)."""
    return format_datetime(moment, usegmt=True)
