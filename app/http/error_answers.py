"""One place that turns domain errors into HTTP answers.

Every answer is short and safe: one plain-text line for curl, JSON for API clients, a small
page for browsers. Challenges differ by audience: `/d/` and `/s/` send HTTP Basic (curl -u
and the browser's dialog), the JSON API a non-Basic scheme so that scripts in a page never
raise the browser's login dialog.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.db.models import LinkState
from app.errors import (
    BlobCorrupted,
    NotReady,
    PasswordRequired,
    RangeNotSatisfiable,
    SealdropError,
    StorageFull,
    TooManyAttempts,
    Unavailable,
    UploadKeyRequired,
    UploadTimedOut,
)
from app.http.requests import wants_json
from app.http.tus import TUS_PATH, TUS_VERSION
from app.storage.base import ObjectMissing, StorageError

log = logging.getLogger("sealdrop.api")

NO_STORE = {"Cache-Control": "no-store"}


def _where(request: Request) -> str:
    # The route's first segment only: the rest of a path may be a token.
    return _path(request).split("/")[1]


def _path(request: Request) -> str:
    # The scope's path, not `request.url.path`: building the whole URL (host, port, query)
    # cost a tenth of an unknown token's answer, and only the path's start matters here.
    path: str = request.scope["path"]
    return path


def error_response(
    request: Request, status: int, message: str, headers: dict[str, str]
) -> Response:
    """The error body in the form the client reads best; one line of text if that fails.

    Never raises: it answers every error, the unexpected ones included.
    """
    headers = {**NO_STORE, **headers}
    if _path(request).startswith("/s/"):
        headers["Vary"] = "Accept"  # a page for browsers, a line of text for curl
    try:
        return _negotiated(request, status, message, headers)
    except Exception:
        log.error("%s %s: the error answer failed", request.method, _where(request), exc_info=True)
        return PlainTextResponse(message + "\n", status, headers=headers)


def _negotiated(request: Request, status: int, message: str, headers: dict[str, str]) -> Response:
    path = _path(request)
    if path.startswith("/api/") or wants_json(request):
        return JSONResponse({"error": message, "status": status}, status, headers=headers)
    renderer = getattr(request.app.state, "render_error_page", None)
    if renderer is not None and request.method in ("GET", "POST"):
        page: Response | None = renderer(request, status, message, headers)
        if page is not None:
            return page
    return PlainTextResponse(message + "\n", status, headers=headers)


def _headers_for(request: Request, error: SealdropError) -> dict[str, str]:
    headers: dict[str, str] = {}
    if isinstance(error, PasswordRequired):
        if _path(request).startswith("/api/"):
            headers["WWW-Authenticate"] = f'SealdropPassword realm="{error.realm}"'
        else:
            headers["WWW-Authenticate"] = f'Basic realm="{error.realm}", charset="UTF-8"'
    if isinstance(error, UploadKeyRequired):
        headers["WWW-Authenticate"] = 'Bearer realm="sealdrop uploads"'
    if isinstance(error, TooManyAttempts | NotReady | Unavailable):
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, NotReady):
        headers["Sealdrop-State"] = LinkState.PENDING
    if isinstance(error, RangeNotSatisfiable):
        headers["Content-Range"] = f"bytes */{error.size}"
    if _path(request).startswith(TUS_PATH):
        headers["Tus-Resumable"] = TUS_VERSION  # tus: on every answer but OPTIONS
    if isinstance(error, UploadTimedOut):
        # The rest of the body may never come: the connection cannot carry another request.
        headers["Connection"] = "close"
    return headers


async def _domain_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, SealdropError)
    # A full store is an answer the domain logged as it decided, not a fault of ours.
    if error.status >= 500 and not isinstance(error, NotReady | Unavailable | StorageFull):
        log.error("%s %s: %s", request.method, _where(request), error.message)
    return error_response(request, error.status, error.message, _headers_for(request, error))


async def _validation_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    first: dict[str, Any] = error.errors()[0] if error.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    message = f"bad request: {where} {first.get('msg', '')}".strip()
    return error_response(request, 400, message, {})


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    message = {404: "not found", 405: "method not allowed"}.get(
        error.status_code, str(error.detail)
    )
    return error_response(request, error.status_code, message, dict(error.headers or {}))


def _is_connection_problem(error: Exception) -> bool:
    if isinstance(error, OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


async def _database_error(request: Request, error: Exception) -> Response:
    # A database that restarts or is unreachable is a 503 the client may retry, not a bug;
    # pool_pre_ping reconnects once it is back. Any other database error is a bug: a 500.
    if _is_connection_problem(error):
        log.warning("%s %s: database unavailable", request.method, _where(request))
        return await _domain_error(request, Unavailable())
    log.error("%s %s: database error", request.method, _where(request), exc_info=error)
    return error_response(request, 500, "internal error", {})


async def _storage_error(request: Request, error: Exception) -> Response:
    # Object storage failing, throttling or stalling (after the client's own retries) is a
    # 503 the client may retry, like a database outage. A missing object is no outage.
    assert isinstance(error, StorageError)
    where = f"{request.method} {_where(request)}"
    if isinstance(error, ObjectMissing):
        log.error("%s: a stored object is missing: %s", where, error)
        return await _domain_error(request, BlobCorrupted())
    log.warning("%s: storage unavailable: %s", where, error.code or type(error).__name__)
    return await _domain_error(request, Unavailable())


async def _unexpected_error(request: Request, error: Exception) -> Response:
    # A bug. Starlette raises the error on once this is sent, so the server logs its
    # traceback; the client gets a short answer without it, which no cache keeps.
    return error_response(request, 500, "internal error", {})


def install(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_exception_handler(SealdropError, _domain_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeout, _database_error)
    app.add_exception_handler(StorageError, _storage_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
