"""Answering a request for a file: the sequence of DESIGN §6, from a token to the bytes.

The checks run in the design's order: the link (404 / 410), then its password or a ticket
of the share page (401 / 429), then sealing (503), then If-None-Match (304), the range
(416), the first segment read and authenticated (a clean 500 if it fails), and one
download spent before the status line: a GET that sends body bytes spends one, a HEAD,
304, 401 or 416 never does. The HTTP layer parses a request into a `FileRequest` and
shapes the `FileAnswer` into its response; nothing here imports Starlette.
"""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass
from typing import Literal

from app.crypto import passwords
from app.domain import link_passwords, links, plaintext, tickets
from app.domain.filenames import content_disposition, served_content_type
from app.domain.links import LinkView
from app.domain.plaintext import PlaintextStream
from app.domain.ranges import ByteRange, parse_range
from app.infra import metrics
from app.services import Services

# Every file answer carries these (DESIGN §6): the file is never rendered, cached, framed
# by another origin, or told where it was linked from.
FILE_HEADERS = {
    "Accept-Ranges": "bytes",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True, slots=True)
class FileRequest:
    """What decides the answer to a request for a file, as the client sent it."""

    method: Literal["GET", "HEAD"]
    client: str  # its address, for the per-client count of wrong passwords
    # The raw `Authorization` value: read only once the link is known, so that a token
    # that does not exist is a 404 however malformed the credentials beside it.
    authorization: str | None = None
    ticket: str | None = None  # of the share page's password form
    wants_html: bool = False  # a browser: a refused ticket sends it back to the form
    range: str | None = None
    if_range: str | None = None
    if_none_match: str | None = None


@dataclass(frozen=True, slots=True)
class FileAnswer:
    """The file, part of it, or only its headers.

    `status` is 200, 206 or 304. `stream` is None when no body goes out: HEAD, 304, or
    an empty file; otherwise its first segment is already authenticated and the download
    already spent, and whoever sends it closes it.
    """

    status: int
    headers: dict[str, str]
    stream: PlaintextStream | None = None


class Page(enum.Enum):
    """A page of the share link answers instead of the file."""

    SHARE = enum.auto()  # the share page itself: the file's details, or its password form
    PASSWORD_FORM = enum.auto()  # a refused ticket: the browser goes back to the form


@metrics.count_outcomes(metrics.DOWNLOADS, success=None)
async def serve(
    services: Services, token: str, request: FileRequest
) -> FileAnswer | Literal[Page.PASSWORD_FORM]:
    """Resolve, authorize, and answer with the file or the part of it asked for."""
    link = await links.resolve(services, token)
    if not await _authorize(services, link, request):
        return Page.PASSWORD_FORM
    blob = links.require_ready(link)
    headers = file_headers(link)
    if (request.if_none_match or "").strip() == etag(link):
        metrics.DOWNLOADS.labels("not_modified").inc()
        return FileAnswer(304, {name: headers[name] for name in ("ETag", "Cache-Control")})
    byte_range = _requested_range(request, link)
    part = byte_range or ByteRange(0, link.size)
    headers["Content-Length"] = str(part.length)
    if byte_range is not None:
        headers["Content-Range"] = f"bytes {part.start}-{part.stop - 1}/{link.size}"
    status = 200 if byte_range is None else 206
    if request.method == "HEAD":
        return FileAnswer(status, headers)
    stream = await plaintext.open_stream(services, link, blob, part) if part.length else None
    try:
        await links.spend_download(services, link)
    except BaseException:
        if stream is not None:
            await stream.aclose()
        raise
    return FileAnswer(status, headers, stream)


async def share(services: Services, token: str, request: FileRequest) -> FileAnswer | Page:
    """The share link: its page for browsers; the file for other clients (curl, wget),
    unless the link has a download limit, which only the page answers."""
    if request.wants_html:
        return Page.SHARE
    link = await links.resolve(services, token)
    if link.max_downloads is not None:
        # A link previewer must never spend a limited download: only the page is served.
        return Page.SHARE
    # Resolved again, as any file request is: from here on it is counted as one.
    return await serve(services, token, request)


def etag(link: LinkView) -> str:
    """The file's strong ETag, from its digest."""
    return f'"{link.sha256.hex()[:40]}"'


def file_headers(link: LinkView) -> dict[str, str]:
    """The headers of every answer with the file, but its length and range."""
    return {
        **FILE_HEADERS,
        "Content-Type": served_content_type(link.content_type),
        "Content-Disposition": content_disposition(link.filename),
        "ETag": etag(link),
        "Repr-Digest": f"sha-256=:{base64.b64encode(link.sha256).decode()}:",
    }


async def _authorize(services: Services, link: LinkView, request: FileRequest) -> bool:
    """Let the request through by its password (Basic) or by a ticket of the share page.

    A password, when given, decides alone: a stale ticket beside it changes nothing. A
    ticket alone opens the link (HEAD checks it without spending it); when it is refused
    (expired, spent, or not this link's), False for a browser, which goes back to the
    password form, and the Basic challenge for any other client, as with no ticket.
    """
    password = passwords.basic_password(request.authorization)
    if password is None and request.ticket is not None and link.protected:
        spend = request.method == "GET"
        if await tickets.redeem(services, link, request.ticket, spend=spend):
            return True
        if request.wants_html:
            return False
    await link_passwords.authorize(services, link, password, client=request.client)
    return True


def _requested_range(request: FileRequest, link: LinkView) -> ByteRange | None:
    # An If-Range naming another version (any other value) asks for the whole file.
    if request.if_range is not None and request.if_range.strip() != etag(link):
        return None
    return parse_range(request.range, link.size)
