"""Upload routes: `PUT /{filename}` (raw body, `curl -T`) and `POST /api/v1/links` (form).

Options are read from headers (PUT) or form fields (POST). For PUT they are checked, with
the announced size, before a byte of the body is read, so a client sending
`Expect: 100-continue` hears about a 413 or a bad option before it uploads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel

from app.crypto.passwords import decode_password
from app.db.models import LinkState
from app.domain import upload_policy, uploads
from app.domain.digits import whole_number
from app.domain.filenames import clean_content_type, clean_filename
from app.domain.upload_rows import CreatedLink, UploadOptions
from app.errors import BadRequest, Unavailable
from app.http import csrf, uploaders
from app.http.bodies import arriving_body
from app.http.deps import ServicesDep, limit_uploads
from app.http.multipart import MAX_OVERHEAD_BYTES, StreamingForm, field_text
from app.http.openapi import created_answers
from app.http.requests import download_url, header_password, share_url, wants_json
from app.services import Services

router = APIRouter()


class CreatedLinkOut(BaseModel):
    """The JSON answer to an upload."""

    token: str
    url: str
    download_url: str
    manage_token: str
    expires_at: str
    state: str
    size: int
    sha256: str | None  # null until sealed when the API never saw the plaintext


CREATED: dict[int | str, dict[str, Any]] = {
    201: {"description": "Sealed: the link works", **created_answers(CreatedLinkOut)},
    202: {"description": "Accepted; still being sealed", **created_answers(CreatedLinkOut)},
}
ERRORS: dict[int | str, dict[str, str]] = {
    400: {"description": "Bad option or malformed body"},
    401: {
        "description": "Upload policy `keys`: no upload key, or an unknown or revoked one "
        "(send Authorization: Bearer <key>)"
    },
    408: {
        "description": "The body stalled, or took longer than the longest upload allowed; "
        "nothing was kept"
    },
    413: {"description": "The file is larger than the server, or this uploader, accepts"},
    429: {
        "description": "Too many uploads; or the uploader's daily bytes or live links are "
        "used up (Retry-After)"
    },
    503: {"description": "A backing service is unavailable"},
    507: {"description": "The server's storage is full; nothing was kept"},
}


def _body(request: Request, services: Services, *, overhead: int = 0) -> AsyncIterator[bytes]:
    """The request body as it arrives; a client that goes silent for too long is dropped.

    A body past the largest upload (plus the `overhead` a form may add around its file) is
    refused as it crosses the limit, whatever it holds: a form's padding counts too.
    """
    settings = services.settings
    return arriving_body(
        request,
        idle_seconds=settings.body_idle_timeout_seconds,
        limit=settings.max_upload_bytes + overhead,
    )


def _declared_size(request: Request) -> int | None:
    """The announced body size, if any; refuses a transfer coding other than chunked, which
    uvicorn would pass on still encoded (a gzipped body stored as the file)."""
    coding = request.headers.get("transfer-encoding")
    if coding is not None and coding.strip().lower() != "chunked":
        raise BadRequest("the only transfer coding accepted is chunked")
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    declared = whole_number(raw.strip())
    if declared is None:
        raise BadRequest("Content-Length must be a whole number")
    return declared  # of thousands of digits: HUGE, which is too large (413)


@router.put(
    "/{filename}",
    status_code=201,
    responses={
        **CREATED,
        403: {"description": "Upload policy `proxy`: no signed-in user, or a revoked one"},
        **ERRORS,
    },
    summary="Upload a file as the raw request body (curl -T file https://host/)",
    dependencies=[Depends(limit_uploads)],
)
async def put_file(
    request: Request,
    services: ServicesDep,
    filename: Annotated[str, Path(max_length=1024)],
    expires_in: Annotated[str | None, Header(alias="Expires-In")] = None,
    max_downloads: Annotated[str | None, Header(alias="Max-Downloads")] = None,
    prefer: Annotated[str | None, Header()] = None,
) -> Response:
    """Upload the body; answer with the share link (201 sealed, 202 still sealing)."""
    uploader = await uploaders.admit(request, services)
    name = clean_filename(filename)
    max_ttl = upload_policy.max_ttl(services.settings, uploader)
    options = UploadOptions(
        filename=name,
        content_type=clean_content_type(request.headers.get("content-type"), name),
        ttl_seconds=uploads.parse_expires_in(expires_in, max_ttl),
        max_downloads=uploads.parse_max_downloads(max_downloads),
        password=header_password(request),
    )
    declared = _declared_size(request)
    uploads.check_declared_size(declared, services)
    created = await uploads.receive_upload(
        services,
        _body(request, services),
        lambda: options,
        declared_size=declared,
        uploader=uploader,
        options_known=True,
    )
    wait = "respond-async" not in (prefer or "").lower()
    return await _answer(request, services, created, name, wait=wait)


@router.post(
    "/api/v1/links",
    status_code=201,
    responses={
        **CREATED,
        403: {
            "description": "A browser request from another site or without the page's token; "
            "or (policy `proxy`) no signed-in user, or a revoked one"
        },
        **ERRORS,
    },
    summary="Upload a file as multipart/form-data (field `file`)",
    dependencies=[Depends(csrf.guard), Depends(limit_uploads)],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "password": {"type": "string"},
                            # Empty means absent (an HTML form sends every field).
                            "expires_in": {"type": "string", "pattern": r"^([0-9]{1,9}[smhd]?)?$"},
                            "max_downloads": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": uploads.MAX_DOWNLOADS_LIMIT,
                            },
                        },
                    }
                }
            },
        }
    },
)
async def post_file(request: Request, services: ServicesDep) -> Response:
    """Upload from a form; answers like PUT, waiting for sealing unless asked not to."""
    uploader = await uploaders.admit(request, services)
    # The body holds the form's own bytes besides the file: a file of exactly the largest
    # size must still fit. The file alone is held to the limit as it is sealed.
    declared = _declared_size(request)
    if declared is not None:
        uploads.check_declared_size(max(0, declared - MAX_OVERHEAD_BYTES), services)
    body = _body(request, services, overhead=MAX_OVERHEAD_BYTES)
    options = _FormOptions(upload_policy.max_ttl(services.settings, uploader))
    form = StreamingForm(request.headers.get("content-type"), body, on_field=options.take)
    created = await uploads.receive_upload(
        services, form.file_chunks(), lambda: options.for_file(form), uploader=uploader
    )
    wait = "respond-async" not in (request.headers.get("prefer") or "").lower()
    return await _answer(request, services, created, created_name(form), wait=wait)


def created_name(form: StreamingForm) -> str:
    """The stored name of a form upload."""
    return clean_filename(form.filename or "file")


class _FormOptions:
    """A form's options, each checked as soon as its field has ended: a bad one stops the
    upload there, before more of the body is read and staged (fields may come before or
    after the file, in any order)."""

    def __init__(self, max_ttl: int) -> None:
        self._max_ttl = max_ttl
        self._ttl_seconds = max_ttl
        self._max_downloads: int | None = None
        self._password: str | None = None

    def take(self, name: str, raw: bytes) -> None:
        """Check and keep one field of the form; fields that are no option are ignored."""
        if name == "expires_in":
            self._ttl_seconds = uploads.parse_expires_in(field_text(name, raw), self._max_ttl)
        elif name == "max_downloads":
            self._max_downloads = uploads.parse_max_downloads(field_text(name, raw))
        elif name == "password":
            self._password = decode_password(raw) if raw else None

    def for_file(self, form: StreamingForm) -> UploadOptions:
        """The options of the form's file, once the whole body has been read."""
        name = created_name(form)
        return UploadOptions(
            filename=name,
            content_type=clean_content_type(form.file_content_type, name),
            ttl_seconds=self._ttl_seconds,
            max_downloads=self._max_downloads,
            password=self._password,
        )


async def answer_created(
    request: Request, services: Services, created: CreatedLink, name: str, *, wait: bool
) -> Response:
    """The answer to a created link: 201 once sealed (waiting for it if `wait`), else 202;
    JSON for API clients, the share URL as one line for curl."""
    return await _answer(request, services, created, name, wait=wait)


async def _answer(
    request: Request, services: Services, created: CreatedLink, name: str, *, wait: bool
) -> Response:
    state = created.state
    if wait and services.upload_waiters < services.settings.max_upload_waiters:
        services.upload_waiters += 1
        try:
            state = await uploads.wait_until_settled(
                services, created.link_id, services.settings.upload_wait_seconds
            )
        finally:
            services.upload_waiters -= 1
    if state == LinkState.FAILED:
        raise Unavailable(message="the file could not be sealed; please upload it again")
    status = 201 if state == LinkState.READY else 202
    url = share_url(request, services, created.token)
    direct = download_url(request, services, created.token, name)
    headers = {
        "Location": url,
        "Sealdrop-Download-Url": direct,
        "Sealdrop-Manage-Token": created.manage_token,
        "Cache-Control": "no-store",
    }
    if wants_json(request):
        body = CreatedLinkOut(
            token=created.token,
            url=url,
            download_url=direct,
            manage_token=created.manage_token,
            expires_at=created.expires_at.isoformat().replace("+00:00", "Z"),
            state=state,
            size=created.size,
            sha256=created.sha256.hex() if created.sha256 is not None else None,
        )
        return JSONResponse(body.model_dump(), status, headers=headers)
    return PlainTextResponse(url + "\n", status, headers=headers)
