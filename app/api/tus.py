"""Resumable uploads, tus 1.0 at `/api/v1/uploads/` (core, creation, creation-with-upload,
termination, expiration, checksum with sha256).

`POST` creates an upload (its link options in `Upload-Metadata`: `filename`, `filetype`,
`expires_in`, `max_downloads`, `password`) under the same admission as a PUT; its URL
`/api/v1/uploads/<id>` is the capability for `HEAD`, `PATCH`, `GET` and `DELETE`. The
PATCH that completes the upload answers with the link (`Sealdrop-*` headers); `GET` with
`Accept: application/json` answers it again, without the manage token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from app.crypto.passwords import decode_password
from app.domain import resumable, resumable_append, upload_policy, uploads
from app.domain.filenames import clean_content_type, clean_filename
from app.domain.resumable import Status
from app.domain.resumable_append import Appended
from app.domain.upload_rows import UploadOptions
from app.errors import BadRequest
from app.http import csrf, tus, uploaders
from app.http.bodies import arriving_body
from app.http.deps import ServicesDep, limit_uploads
from app.http.requests import download_url, public_base, share_url
from app.services import Services

router = APIRouter()

UploadId = Annotated[str, Path(max_length=64, description="The upload's id (its capability)")]
COMMON = {"Tus-Resumable": tus.TUS_VERSION, "Cache-Control": "no-store"}
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such upload"},
    410: {"description": "The upload was terminated or has expired"},
    412: {"description": "Tus-Resumable missing or not 1.0.0"},
}


class UploadStateOut(BaseModel):
    """`GET /api/v1/uploads/<id>`: the upload, and once complete its link (the link-creation
    JSON without `manage_token`)."""

    upload_state: str
    offset: int
    length: int
    upload_expires_at: str | None
    token: str | None = None
    url: str | None = None
    download_url: str | None = None
    expires_at: str | None = None
    state: str | None = None
    size: int | None = None
    sha256: str | None = None


def _iso(moment: Any) -> str:
    return str(moment.isoformat()).replace("+00:00", "Z")


def _body(request: Request, services: Services) -> AsyncIterator[bytes]:
    """The PATCH body as it arrives; what arrived before a break or a stall is kept (the
    domain checks it against the upload's length)."""
    idle = services.settings.body_idle_timeout_seconds
    return arriving_body(request, idle_seconds=idle, keeps_partial=True)


def _options(services: Services, values: dict[str, bytes], max_ttl: int) -> UploadOptions:
    """The link options from Upload-Metadata, each checked as a PUT's header would be."""
    name = clean_filename(tus.text(values, "filename") or "file")
    password = values.get("password")
    return UploadOptions(
        filename=name,
        content_type=clean_content_type(tus.text(values, "filetype"), name),
        ttl_seconds=uploads.parse_expires_in(tus.text(values, "expires_in"), max_ttl),
        max_downloads=uploads.parse_max_downloads(tus.text(values, "max_downloads")),
        password=decode_password(password) if password else None,
    )


def _offset_headers(appended: Appended) -> dict[str, str]:
    headers = {**COMMON, "Upload-Offset": str(appended.offset)}
    if appended.expires_at is not None:
        headers["Upload-Expires"] = tus.http_date(appended.expires_at)
    return headers


def _link_headers(request: Request, services: Services, appended: Appended) -> dict[str, str]:
    created = appended.created
    if created is None:
        return {}
    return {
        "Sealdrop-Link": share_url(request, services, created.token),
        "Sealdrop-Download-Url": download_url(request, services, created.token, appended.filename),
        "Sealdrop-Manage-Token": created.manage_token,
        "Sealdrop-Expires-At": _iso(created.expires_at),
    }


@router.options(
    "/api/v1/uploads/",
    status_code=204,
    summary="tus: what this server supports (versions, extensions, largest upload)",
)
async def tus_options(services: ServicesDep) -> Response:
    """The tus discovery answer."""
    return Response(
        status_code=204,
        headers={
            "Tus-Resumable": tus.TUS_VERSION,
            "Tus-Version": tus.TUS_VERSION,
            "Tus-Extension": ",".join(tus.EXTENSIONS),
            "Tus-Max-Size": str(services.settings.max_upload_bytes),
            "Tus-Checksum-Algorithm": ",".join(tus.CHECKSUM_ALGORITHMS),
            "Cache-Control": "no-store",
        },
    )


@router.post(
    "/api/v1/uploads/",
    status_code=201,
    responses={
        201: {
            "description": "Created: `Location` is the upload URL; `Upload-Offset` says how "
            "much of a body sent with the request (creation-with-upload) was kept"
        },
        400: {
            "description": "Upload-Length missing or malformed (Upload-Defer-Length is not "
            "supported), or a bad option in Upload-Metadata; nothing was created"
        },
        401: {"description": "Upload policy `keys`: no upload key, or an unknown or revoked one"},
        403: {
            "description": "A browser request from another site or without the page's token; "
            "or (policy `proxy`) no signed-in user"
        },
        412: _ERRORS[412],
        413: {"description": "Upload-Length is larger than the server, or this uploader, accepts"},
        429: {"description": "Too many uploads; or the uploader's quota or live links are used up"},
        460: {"description": "The body sent with the request failed its Upload-Checksum"},
        507: {"description": "The server's storage is full; nothing was created"},
    },
    summary="tus: create a resumable upload (metadata: filename, filetype, expires_in, "
    "max_downloads, password)",
    dependencies=[Depends(csrf.guard), Depends(limit_uploads)],
)
async def create_upload(request: Request, services: ServicesDep) -> Response:
    """Create an upload; with a body (`application/offset+octet-stream`), also its first bytes."""
    headers = request.headers
    tus.check_version(headers)
    length = tus.number(headers, "Upload-Length")
    if length is None:
        raise _defer_refused()
    uploader = await uploaders.admit(request, services)
    raw_metadata = headers.get("upload-metadata")
    values = tus.metadata(raw_metadata)
    options = _options(services, values, upload_policy.max_ttl(services.settings, uploader))
    checksum = tus.checksum(headers.get("upload-checksum"))
    declared = tus.number(headers, "Content-Length")
    with_body = declared != 0 and "content-type" in headers
    if with_body:
        tus.check_patch_type(headers)
    opened = await resumable.create(
        services,
        length=length,
        options=options,
        metadata=tus.without_secrets(raw_metadata),
        uploader=uploader,
    )
    location = f"{public_base(request, services)}{tus.TUS_PATH}/{opened.upload_id}"
    answer = {
        **COMMON,
        "Location": location,
        "Upload-Expires": tus.http_date(opened.expires_at),
    }
    if with_body or length == 0:
        appended = await resumable_append.append(
            services,
            opened.upload_id,
            0,
            _body(request, services),
            declared=declared,
            checksum=checksum,
        )
        answer |= _offset_headers(appended) | _link_headers(request, services, appended)
    return Response(status_code=201, headers=answer)


def _defer_refused() -> Exception:
    return BadRequest("Upload-Length is required (Upload-Defer-Length is not supported)")


# The collection without its slash too: a redirect would lose a POST's body.
router.add_api_route(
    tus.TUS_PATH, tus_options, methods=["OPTIONS"], status_code=204, include_in_schema=False
)
router.add_api_route(
    tus.TUS_PATH,
    create_upload,
    methods=["POST"],
    status_code=201,
    include_in_schema=False,
    dependencies=[Depends(csrf.guard), Depends(limit_uploads)],
)


@router.head(
    "/api/v1/uploads/{upload_id}",
    responses={200: {"description": "Upload-Offset, Upload-Length, Upload-Metadata"}, **_ERRORS},
    summary="tus: how much of the upload the server holds",
)
async def head_upload(request: Request, services: ServicesDep, upload_id: UploadId) -> Response:
    """The acknowledged offset: resume from there."""
    tus.check_version(request.headers)
    found = await resumable.status(services, upload_id)
    headers = {
        **COMMON,
        "Upload-Offset": str(found.offset),
        "Upload-Length": str(found.length),
    }
    if found.metadata:
        headers["Upload-Metadata"] = found.metadata
    if found.expires_at is not None:
        headers["Upload-Expires"] = tus.http_date(found.expires_at)
    return Response(status_code=200, headers=headers)


@router.patch(
    "/api/v1/uploads/{upload_id}",
    status_code=204,
    responses={
        204: {
            "description": "Acknowledged up to `Upload-Offset`. The PATCH that completes the "
            "upload adds `Sealdrop-Link`, `Sealdrop-Download-Url`, `Sealdrop-Manage-Token` "
            "and `Sealdrop-Expires-At`"
        },
        400: {"description": "Malformed Upload-Offset or Upload-Checksum"},
        409: {"description": "Upload-Offset is not the offset the server holds (ask with HEAD)"},
        413: {"description": "The body goes past Upload-Length; nothing of it was kept"},
        415: {"description": "Content-Type is not application/offset+octet-stream"},
        460: {"description": "The body failed its Upload-Checksum; nothing of it was kept"},
        **_ERRORS,
    },
    summary="tus: append bytes at Upload-Offset",
    # The body (`Content-Type: application/offset+octet-stream`, raw bytes) is read as a
    # stream, not declared: OpenAPI tools have no serializer for tus's media type.
    description="The body is the bytes from `Upload-Offset` on, sent as "
    "`Content-Type: application/offset+octet-stream`; headers `Tus-Resumable: 1.0.0`, "
    "`Upload-Offset`, optionally `Upload-Checksum: sha256 <base64>`.",
)
async def patch_upload(request: Request, services: ServicesDep, upload_id: UploadId) -> Response:
    """Append the body at `Upload-Offset`; what arrives before a break is kept."""
    headers = request.headers
    tus.check_version(headers)
    tus.check_patch_type(headers)
    offset = tus.number(headers, "Upload-Offset")
    if offset is None:
        raise BadRequest("Upload-Offset is required")
    appended = await resumable_append.append(
        services,
        upload_id,
        offset,
        _body(request, services),
        declared=tus.number(headers, "Content-Length"),
        checksum=tus.checksum(headers.get("upload-checksum")),
    )
    answer = _offset_headers(appended) | _link_headers(request, services, appended)
    return Response(status_code=204, headers=answer)


@router.delete(
    "/api/v1/uploads/{upload_id}",
    status_code=204,
    responses={204: {"description": "Terminated: everything it staged is removed"}, **_ERRORS},
    summary="tus: terminate an unfinished upload",
)
async def delete_upload(request: Request, services: ServicesDep, upload_id: UploadId) -> Response:
    """Remove the upload and its bytes."""
    tus.check_version(request.headers)
    await resumable.terminate(services, upload_id)
    return Response(status_code=204, headers=COMMON)


@router.get(
    "/api/v1/uploads/{upload_id}",
    response_model=UploadStateOut,
    responses={404: _ERRORS[404], 410: _ERRORS[410]},
    summary="The upload's state; once complete, its link (without the manage token)",
)
async def get_upload(request: Request, services: ServicesDep, upload_id: UploadId) -> Response:
    """For a client whose completing PATCH's answer was lost: the link it made."""
    found: Status = await resumable.status(services, upload_id)
    body = UploadStateOut(
        upload_state=found.state,
        offset=found.offset,
        length=found.length,
        upload_expires_at=_iso(found.expires_at) if found.expires_at else None,
    )
    link = found.link
    if link is not None:
        body.token = link.token
        body.url = share_url(request, services, link.token)
        body.download_url = download_url(request, services, link.token, link.filename)
        body.expires_at = _iso(link.expires_at)
        body.state = link.state
        body.size = link.size
        body.sha256 = link.sha256.hex() if link.sha256 else None
    return JSONResponse(body.model_dump(), headers=COMMON)
