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
# Types a browser would render or run on our origin: always sent as a plain download.
ACTIVE_TYPES = re.compile(
    r"^(text/html|application/xhtml\+xml|image/svg\+xml|text/xml|application/xml"
    r"|[a-z]+/[a-z.+-]*\+xml|text/javascript|application/javascript|application/ecmascript"
    r"|text/ecmascript|text/css|application/x-javascript|multipart/x-mixed-replace)$"
)
_TYPE_RE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,127}$")


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
    """The type we send: the stored one unless a browser would render or run it."""
    if not stored or ACTIVE_TYPES.match(stored) or not _TYPE_RE.match(stored):
        return DEFAULT_TYPE
    return stored


def content_disposition(filename: str | None) -> str:
    """`attachment` with an ASCII fallback (what `curl -J` reads) and the UTF-8 name."""
    name = clean_filename(filename or DEFAULT_NAME)
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%' else "_" for c in name)
    ascii_name = ascii_name.strip() or DEFAULT_NAME
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
