"""Reading what the server says about a file: its URL, name, size, digest and password.

Pure functions of strings, unit-tested in tests/client.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote, urlsplit, urlunsplit

_SHARE_PATH = re.compile(r"^/s/([^/]+)/?$")
_FILENAME_STAR = re.compile(r"filename\*\s*=\s*([^']*)'[^']*'([^;]+)", re.IGNORECASE)
_FILENAME = re.compile(r'filename\s*=\s*"((?:[^"\\]|\\.)*)"|filename\s*=\s*([^;\s]+)', re.I)
_SHA256 = re.compile(r"(?:^|,)\s*sha-256\s*=\s*:([A-Za-z0-9+/=]+):", re.IGNORECASE)
FALLBACK_NAME = "download"


def split_link(url: str) -> tuple[str, str | None]:
    """The file URL to fetch, and the password in the link's userinfo if any.

    A share link `/s/<token>` becomes its file URL `/d/<token>/` (the share route answers
    a page, not the file, for links with a download limit). The userinfo is taken out of
    the URL: it goes as HTTP Basic, and never into a message.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    password = unquote(parts.password) if parts.password is not None else None
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    path = parts.path
    share = _SHARE_PATH.match(path)
    if share:
        path = f"/d/{share.group(1)}/"
    return urlunsplit((parts.scheme, netloc, path, parts.query, "")), password


def filename_from(disposition: str | None, url: str) -> str:
    """A safe local name: Content-Disposition's, else the URL's last segment.

    Only a base name is ever returned: no folder part, never `.` or `..`, no control
    characters; `download` when nothing usable is left.
    """
    name = ""
    if disposition:
        star = _FILENAME_STAR.search(disposition)
        plain = _FILENAME.search(disposition)
        if star:
            name = unquote(star.group(2).strip(), encoding=star.group(1) or "utf-8")
        elif plain:
            name = plain.group(1) if plain.group(1) is not None else plain.group(2)
            name = re.sub(r"\\(.)", r"\1", name)
    if not name:
        name = unquote(urlsplit(url).path.rstrip("/").rpartition("/")[2])
        if re.fullmatch(r"[A-Za-z0-9_-]{20,}", name):  # a token, not a name
            name = ""
    return safe_name(name)


def safe_name(name: str) -> str:
    """`name` cut to its base name and cleaned of what a file name must not hold."""
    name = name.replace("\\", "/").rpartition("/")[2]
    name = "".join(ch for ch in name if ch >= " " and ch != "\x7f").strip()
    if name in ("", ".", ".."):
        return FALLBACK_NAME
    return name[:255]


def sha256_of_repr_digest(header: str | None) -> bytes | None:
    """The SHA-256 of a `Repr-Digest: sha-256=:<base64>:` header (RFC 9530), if any."""
    if not header:
        return None
    found = _SHA256.search(header)
    if not found:
        return None
    try:
        digest = base64.b64decode(found.group(1), validate=True)
    except (binascii.Error, ValueError):
        return None
    return digest if len(digest) == 32 else None
