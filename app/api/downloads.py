"""Download routes: `GET`/`HEAD /d/{token}[/[{name}]]` (the file) and `GET /s/{token}` (share).

The order of checks is DESIGN §6's: 404 / 410, then 401 / 429, then 503, then the file.
A GET that sends body bytes spends one download, after the first segment has been read and
authenticated and before the status line.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from app.domain import downloads, link_passwords, links, tickets
from app.domain.downloads import ByteRange, PlaintextStream
from app.domain.filenames import content_disposition, served_content_type
from app.domain.links import LinkView
from app.http.deps import ServicesDep, Token
from app.http.openapi import FILE_ANSWERS, SHARE_ANSWERS
from app.http.requests import basic_password, client_address, share_url, wants_html
from app.infra import metrics
from app.services import Services

log = logging.getLogger("sealdrop.downloads")

router = APIRouter()

FILE_HEADERS = {
    "Accept-Ranges": "bytes",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Referrer-Policy": "no-referrer",
}
ERRORS: dict[int | str, dict[str, str]] = {
    401: {"description": "A password is needed (HTTP Basic; the user name is ignored)"},
    404: {"description": "No such link"},
    410: {"description": "Expired, deleted, used up or failed"},
    416: {"description": "Range not satisfiable"},
    429: {"description": "Locked after too many wrong passwords"},
    503: {"description": "Still being sealed; retry after Retry-After seconds"},
}
SharePageRenderer = Callable[[Request, Services, str], Awaitable[Response]]


class FileResponse(Response):
    """Streams a `PlaintextStream`; a failure after the status line cuts the connection."""

    def __init__(self, stream: PlaintextStream | None, status: int, headers: dict[str, str]):
        super().__init__(status_code=status, headers=headers)
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        if self.stream is None:
            await send({"type": "http.response.body", "body": b""})
            metrics.DOWNLOADS.labels("head" if scope["method"] == "HEAD" else "complete").inc()
            return
        sent, outcome = 0, "interrupted"
        try:
            # uvicorn's send() returns quietly once the client is gone: without watching
            # for the disconnect, the rest of the file would be read and decrypted for no one.
            async with anyio.create_task_group() as group:
                group.start_soon(_cancel_on_disconnect, receive, group.cancel_scope)
                async for chunk in self.stream:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    sent += len(chunk)
                await send({"type": "http.response.body", "body": b""})
                outcome = "complete"
                group.cancel_scope.cancel()
        finally:
            metrics.SENT_BYTES.inc(sent)
            metrics.DOWNLOADS.labels(outcome).inc()
            await self.stream.aclose()

    def init_headers(self, headers: object = None) -> None:
        """Keep our Content-Length; Starlette would compute one from an empty body."""
        assert isinstance(headers, dict)
        self.raw_headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
        ]


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass  # the request's (empty) body
    scope.cancel()


def _etag(link: LinkView) -> str:
    return f'"{link.sha256.hex()[:40]}"'


def _file_headers(link: LinkView) -> dict[str, str]:
    return {
        **FILE_HEADERS,
        "Content-Type": served_content_type(link.content_type),
        "Content-Disposition": content_disposition(link.filename),
        "ETag": _etag(link),
        "Repr-Digest": f"sha-256=:{base64.b64encode(link.sha256).decode()}:",
    }


def _requested_range(request: Request, link: LinkView) -> ByteRange | None:
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != _etag(link):
        return None
    return downloads.parse_range(request.headers.get("range"), link.size)


async def _authorize(request: Request, services: Services, link: LinkView) -> bool:
    """Let the request through by its password (Basic) or by a ticket of the share page.

    A password, when given, decides alone: a stale ticket beside it changes nothing. A
    ticket alone opens the link (HEAD checks it without spending it); when it is refused
    (expired, spent, or not this link's), False for a browser, which goes back to the
    password form, and the Basic challenge for any other client, as with no ticket.
    """
    password = basic_password(request)
    ticket = request.query_params.get("ticket")
    if password is None and ticket is not None and link.protected:
        if await tickets.redeem(services, link, ticket, spend=request.method == "GET"):
            return True
        if wants_html(request):
            return False
    await link_passwords.authorize(services, link, password, client=client_address(request))
    return True


@metrics.count_outcomes(metrics.DOWNLOADS, success=None)
async def serve_file(request: Request, services: Services, token: str) -> Response:
    """Resolve, authorize, and answer with the file or the part of it asked for."""
    link = await links.resolve(services, token)
    if not await _authorize(request, services, link):
        # A browser's stale button of the share page: back to its password form, which
        # says why. Never this URL again: `/s/` answers browsers with that form itself,
        # so only `/d/` sends them there (a loop for curl -L once).
        spent = f"{share_url(request, services, token)}?ticket=spent"
        return RedirectResponse(spent, 303, headers={"Cache-Control": "no-store"})
    blob = links.require_ready(link)
    headers = _file_headers(link)
    if request.headers.get("if-none-match", "").strip() == _etag(link):
        metrics.DOWNLOADS.labels("not_modified").inc()
        return Response(status_code=304, headers={k: headers[k] for k in ("ETag", "Cache-Control")})
    byte_range = _requested_range(request, link)
    status = 200 if byte_range is None else 206
    full = ByteRange(0, link.size)
    part = byte_range or full
    headers["Content-Length"] = str(part.length)
    if byte_range is not None:
        headers["Content-Range"] = f"bytes {part.start}-{part.stop - 1}/{link.size}"
    if request.method == "HEAD":
        return FileResponse(None, status, headers)
    stream = await downloads.open_stream(services, link, blob, part) if part.length else None
    try:
        await links.spend_download(services, link)
    except BaseException:
        if stream is not None:
            await stream.aclose()
        raise
    return FileResponse(stream, status, headers)


@router.api_route(
    "/d/{token}",
    methods=["GET", "HEAD"],
    response_class=Response,
    responses={**FILE_ANSWERS, **ERRORS},
    summary="Download the file",
)
# `curl -OJ …/d/<token>/` takes the name from Content-Disposition; without this route
# the trailing slash got a redirect, which `curl -f` saves as an empty download.
@router.api_route(
    "/d/{token}/",
    methods=["GET", "HEAD"],
    response_class=Response,
    responses={**FILE_ANSWERS, **ERRORS},
    summary="Download the file (an empty name: the client takes it from Content-Disposition)",
)
async def download(request: Request, services: ServicesDep, token: Token) -> Response:
    """The file (Range, If-Range and HEAD supported)."""
    return await serve_file(request, services, token)


@router.api_route(
    "/d/{token}/{filename}",
    methods=["GET", "HEAD"],
    response_class=Response,
    responses={**FILE_ANSWERS, **ERRORS},
    summary="Download the file (with its name in the URL, for wget and browsers)",
)
async def download_named(
    request: Request, services: ServicesDep, token: Token, filename: str
) -> Response:
    """The same file as `/d/{token}`; the name in the path is ignored."""
    return await serve_file(request, services, token)


@router.get(
    "/s/{token}",
    response_class=Response,
    responses={**SHARE_ANSWERS, **FILE_ANSWERS, **ERRORS},
    summary="The share link: a page or the file",
)
async def share(request: Request, services: ServicesDep, token: Token) -> Response:
    """Browsers get the share page; curl and wget the file, unless downloads are limited."""
    response = await _share_answer(request, services, token)
    # The same URL answers a page or the file depending on Accept (DESIGN §6).
    response.headers["Vary"] = "Accept"
    return response


async def _share_answer(request: Request, services: Services, token: str) -> Response:
    render: SharePageRenderer = request.app.state.render_share_page
    if wants_html(request):
        return await render(request, services, token)
    link = await links.resolve(services, token)
    if link.max_downloads is not None:
        # A link previewer must never spend a limited download: only the page is served.
        return await render(request, services, token)
    return await serve_file(request, services, token)
