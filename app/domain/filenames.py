"""File names and types as users send them, made safe to store and to send back.

A name is only ever a label: it never becomes a path. Path parts, control characters and
bidirectional overrides go; the rest is kept (NFC-normalised) so people see their name.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from urllib.parse import quote

MAX_NAME_BYTES = 255
DEFAULT_NAME = "file"
DEFAULT_TYPE = "application/octet-stream"
# Types served as stored: a browser can only show them inertly (a picture, a player, a
# viewer, plain text) or save them. Every other type goes out as DEFAULT_TYPE, so that no
# upload is rendered or run on our origin: HTML, XHTML, SVG, XML, CSS, every name a script
# type has had (WHATWG lists sixteen, and browsers learn new ones), and types nobody listed.
INERT_TYPES = frozenset(
    {
        # Raster images; not image/* as a whole, which holds SVG, a document that runs script.
        "image/apng",
        "image/avif",
        "image/bmp",
        "image/gif",
        "image/heic",
        "image/heif",
        "image/jpeg",
        "image/jxl",
        "image/png",
        "image/tiff",
        "image/vnd.microsoft.icon",
        "image/webp",
        "image/x-icon",
        "image/x-ms-bmp",
        # Text shown as text, and data.
        "text/plain",
        "text/csv",
        "application/json",
        "application/pdf",
        "application/octet-stream",
        # Archives.
        "application/gzip",
        "application/vnd.rar",
        "application/x-7z-compressed",
        "application/x-bzip2",
        "application/x-gzip",
        "application/x-rar-compressed",
        "application/x-tar",
        "application/x-xz",
        "application/zip",
        "application/zstd",
        # Office documents.
        "application/msword",
        "application/rtf",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.oasis.opendocument.presentation",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    }
)
# Sound and video go to the browser's player, which runs no script, whatever the subtype.
INERT_FAMILIES = ("audio/", "video/")
_TYPE_RE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,127}$")
_CHARSET_RE = re.compile(r"[A-Za-z0-9._:+-]{1,40}")


def _visible(char: str) -> bool:
    category = unicodedata.category(char)
    # Cc: controls (NUL, CR, LF, …); Cf: format characters such as U+202E (RTL override).
    return category not in ("Cc", "Cf", "Cs", "Co", "Cn")


def clean_filename(raw: str) -> str:
    """A safe label from a user's file name: no path, no controls, at most 255 bytes."""
    name = unicodedata.normalize("NFC", raw)
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(c for c in name if _visible(c)).strip().strip(".").strip()
    encoded = name.encode("utf-8")[:MAX_NAME_BYTES]
    name = encoded.decode("utf-8", errors="ignore").strip()
    return name or DEFAULT_NAME


def clean_content_type(raw: str | None, filename: str) -> str:
    """The declared type if well-formed (parameters dropped), else a guess from the name."""
    if raw:
        base = raw.split(";", 1)[0].strip().lower()
        if _TYPE_RE.match(base) and base != DEFAULT_TYPE:
            return base
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return guessed or DEFAULT_TYPE


def served_content_type(stored: str | None) -> str:
    """The type a download goes out with: the stored one if it is inert, else DEFAULT_TYPE.

    Parameters go, but for the charset of plain text.
    """
    base, _, params = (stored or "").partition(";")
    base = base.strip().lower()
    if not _is_inert(base):
        return DEFAULT_TYPE
    charset = _charset(params) if base == "text/plain" else None
    return f"{base}; charset={charset}" if charset else base


def _is_inert(base: str) -> bool:
    if not _TYPE_RE.match(base) or base.endswith("+xml"):
        return False
    return base in INERT_TYPES or base.startswith(INERT_FAMILIES)


def _charset(params: str) -> str | None:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        value = value.strip().strip('"')
        if name.strip().lower() == "charset" and _CHARSET_RE.fullmatch(value):
            return value.lower()
    return None


def content_disposition(filename: str | None) -> str:
    """`attachment` with an ASCII fallback (what `curl -J` reads) and the UTF-8 name."""
    name = clean_filename(filename or DEFAULT_NAME)
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%' else "_" for c in name)
    ascii_name = ascii_name.strip() or DEFAULT_NAME
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
