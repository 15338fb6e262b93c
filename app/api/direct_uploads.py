"""Direct-to-storage upload routes (`/api/v1/direct-uploads`, S3 staging only).

The client creates an upload, seals its parts itself under the staging key of the answer,
PUTs them to the presigned S3 URLs, and completes it; the API never sees a file byte. The
upload's URL (`/api/v1/direct-uploads/<id>`, 128 random bits) is its capability.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from app.api.uploads import CREATED, ERRORS, answer_created
from app.crypto.passwords import decode_password
from app.domain import direct_uploads, upload_policy, uploads
from app.domain.filenames import clean_content_type, clean_filename
from app.domain.upload_rows import UploadOptions
from app.http import csrf, uploaders
from app.http.deps import ServicesDep, limit_uploads

router = APIRouter(prefix="/api/v1/direct-uploads", tags=["direct uploads"])

UploadId = Annotated[str, Path(max_length=64)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {
        "description": "No such unfinished upload; or this server stages locally and has "
        "no direct uploads (discovery then lists no `direct`)"
    }
}


class DirectUploadIn(BaseModel):
    """What to upload: the file's name and exact size, and the link's options."""

    model_config = ConfigDict(extra="forbid")

    filename: StrictStr = Field(min_length=1, max_length=1024)
    size: StrictInt = Field(ge=0)
    content_type: StrictStr | None = Field(default=None, max_length=255)
    expires_in: StrictStr | StrictInt | None = None
    max_downloads: StrictInt | None = None
    password: StrictStr | None = Field(default=None, max_length=1024)


class PartUrlOut(BaseModel):
    """Where to PUT part `number` (sealed) before `urls_expire_at`."""

    number: int
    url: str


class PartDoneOut(BaseModel):
    """A part S3 holds with its expected sealed size."""

    number: int
    size: int
    etag: str


class DirectUploadOut(BaseModel):
    """A new direct upload. Seal part k (format v1) under `staging_key` with `header` and
    PUT it to its URL: plaintext bytes [(k-1)·part_size, min(k·part_size, size)), segment
    indices counted over the whole file, the last flag on the file's final segment only,
    the 16-byte header in front of part 1."""

    id: str
    upload_url: str
    staging_key: str
    header: str
    segment_size: int
    part_size: int
    part_count: int
    size: int
    parts: list[PartUrlOut]
    urls_expire_at: str
    expires_at: str


class DirectStatusOut(BaseModel):
    """What S3 holds of the upload, fresh URLs for the parts still to send, and what a
    client that kept only the upload URL needs to seal them: `staging_key` and `header`
    as at creation. The upload URL is the capability to write the upload; the key adds no power."""

    id: str
    upload_url: str
    staging_key: str
    header: str
    size: int
    segment_size: int
    part_size: int
    part_count: int
    parts_done: list[PartDoneOut]
    parts: list[PartUrlOut]
    urls_expire_at: str
    expires_at: str


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _upload_url(upload_id: str) -> str:
    return f"/api/v1/direct-uploads/{upload_id}"


@router.post(
    "",
    status_code=201,
    response_model=DirectUploadOut,
    responses={
        403: {
            "description": "A browser request from another site or without the page's token; "
            "or (policy `proxy`) no signed-in user, or a revoked one"
        },
        **NOT_FOUND,
        **ERRORS,
    },
    summary="Start a direct upload: the client seals the parts and PUTs them to S3",
    dependencies=[Depends(csrf.guard), Depends(limit_uploads)],
)
async def create_direct_upload(
    request: Request, services: ServicesDep, body: DirectUploadIn
) -> JSONResponse:
    """Admit the upload as a PUT would; answer with the staging key and part URLs."""
    direct_uploads.require_target(services)  # before admission: a clear 404 here
    uploader = await uploaders.admit(request, services)
    name = clean_filename(body.filename)
    expires = None if body.expires_in is None else str(body.expires_in)
    options = UploadOptions(
        filename=name,
        content_type=clean_content_type(body.content_type, name),
        ttl_seconds=uploads.parse_expires_in(
            expires, upload_policy.max_ttl(services.settings, uploader)
        ),
        max_downloads=uploads.parse_max_downloads(
            None if body.max_downloads is None else str(body.max_downloads)
        ),
        password=decode_password(body.password.encode()) if body.password else None,
    )
    created = await direct_uploads.create(services, options, body.size, uploader)
    plan = created.plan
    answer = DirectUploadOut(
        id=created.id,
        upload_url=_upload_url(created.id),
        staging_key=_b64(created.staging_key),
        header=_b64(created.header),
        segment_size=1 << plan.segment_log2,
        part_size=plan.part_size,
        part_count=plan.part_count,
        size=plan.size,
        parts=[PartUrlOut(number=p.number, url=p.url) for p in created.parts],
        urls_expire_at=_iso(created.urls_expire_at),
        expires_at=_iso(created.expires_at),
    )
    return JSONResponse(
        answer.model_dump(),
        201,
        headers={"Location": answer.upload_url, "Cache-Control": "no-store"},
    )


@router.get(
    "/{upload_id}",
    response_model=DirectStatusOut,
    responses=NOT_FOUND,
    summary="To resume: the parts S3 holds, fresh URLs for the rest, the staging key",
)
async def direct_upload_status(services: ServicesDep, upload_id: UploadId) -> JSONResponse:
    """List the parts done, sign the rest again, and hand back the key to seal them."""
    found = await direct_uploads.status(services, upload_id)
    plan = found.plan
    answer = DirectStatusOut(
        id=upload_id,
        upload_url=_upload_url(upload_id),
        staging_key=_b64(found.staging_key),
        header=_b64(found.header),
        size=found.size,
        segment_size=1 << plan.segment_log2,
        part_size=plan.part_size,
        part_count=plan.part_count,
        parts_done=[PartDoneOut(number=p.number, size=p.size, etag=p.etag) for p in found.done],
        parts=[PartUrlOut(number=p.number, url=p.url) for p in found.parts],
        urls_expire_at=_iso(found.urls_expire_at),
        expires_at=_iso(found.expires_at),
    )
    return JSONResponse(answer.model_dump(), headers={"Cache-Control": "no-store"})


@router.post(
    "/{upload_id}/complete",
    status_code=201,
    responses={
        **CREATED,
        **NOT_FOUND,
        409: {
            "description": "Parts are missing or of the wrong size, or another request "
            "is completing the upload; nothing changed"
        },
        **ERRORS,
    },
    summary="Complete a direct upload: its job is queued as a PUT's (201 sealed, 202 not yet)",
    dependencies=[Depends(csrf.guard)],
)
async def complete_direct_upload(
    request: Request,
    services: ServicesDep,
    upload_id: UploadId,
    prefer: Annotated[str | None, Header()] = None,
) -> Response:
    """Check the parts with S3, complete the staged object and queue it for sealing."""
    created, name = await direct_uploads.complete(services, upload_id)
    wait = "respond-async" not in (prefer or "").lower()
    return await answer_created(request, services, created, name, wait=wait)


@router.delete(
    "/{upload_id}",
    status_code=204,
    responses={**NOT_FOUND, 409: {"description": "The upload is being completed"}},
    summary="Cancel a direct upload: S3 aborts it, nothing is kept",
    dependencies=[Depends(csrf.guard)],
)
async def cancel_direct_upload(services: ServicesDep, upload_id: UploadId) -> Response:
    """Abort the multipart upload and forget it."""
    await direct_uploads.cancel(services, upload_id)
    return Response(status_code=204, headers={"Cache-Control": "no-store"})
