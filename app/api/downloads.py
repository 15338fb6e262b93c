"""Download routes: `GET`/`HEAD /d/{token}[/[{name}]]` (the file) and `GET /s/{token}` (share).

Each route parses its request into a `FileRequest`, calls `app.domain.serving` (which runs
DESIGN §6's checks in order and opens the stream), and shapes the answer: the file
streamed, a 304, a share page, or a browser sent back to the password form.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from app.domain import serving
from app.domain.plaintext import PlaintextStream
from app.domain.serving import FileAnswer, FileRequest, Page
from app.http.deps import ServicesDep, Token
from app.http.openapi import FILE_ANSWERS, SHARE_ANSWERS
from app.http.requests import client_address, share_url, wants_html
from app.infra import metrics
from app.services import Services

router = APIRouter()

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


def file_request(request: Request) -> FileRequest:
    """The parts of `request` that decide a file's answer."""
    headers = request.headers
    return FileRequest(
        method="HEAD" if request.method == "HEAD" else "GET",
        client=client_address(request),
        authorization=headers.get("authorization"),
        ticket=request.query_params.get("ticket"),
        wants_html=wants_html(request),
        range=headers.get("range"),
        if_range=headers.get("if-range"),
        if_none_match=headers.get("if-none-match"),
    )


async def serve_file(request: Request, services: Services, token: str) -> Response:
    """The answer of the `/d/` routes: the file, part of it, or the way back to a form."""
    answer = await serving.serve(services, token, file_request(request))
    return _file_response(request, services, token, answer)


def _file_response(
    request: Request,
    services: Services,
    token: str,
    answer: FileAnswer | Literal[Page.PASSWORD_FORM],
) -> Response:
    if answer is Page.PASSWORD_FORM:
        # A browser's stale button of the share page: back to its password form, which
        # says why. Never this URL again: `/s/` answers browsers with that form itself,
        # so only `/d/` sends them there (a loop for curl -L once).
        spent = f"{share_url(request, services, token)}?ticket=spent"
        return RedirectResponse(spent, 303, headers={"Cache-Control": "no-store"})
    if answer.status == 304:
        return Response(status_code=304, headers=answer.headers)
    return FileResponse(answer.stream, answer.status, answer.headers)


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
    answer = await serving.share(services, token, file_request(request))
    if answer is Page.SHARE:
        render: SharePageRenderer = request.app.state.render_share_page
        return await render(request, services, token)
    return _file_response(request, services, token, answer)
