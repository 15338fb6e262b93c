"""`GET /api/v1/`: what this server accepts and how a client may upload to it.

A client (the `sealdrop` CLI, a script) reads it once to choose an upload path: one
request (`PUT /<name>`), resumable (tus at `/api/v1/uploads/`), or, when staging is on
S3, direct to storage. URLs are paths relative to the server.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.domain import direct_uploads
from app.http import tus
from app.http.deps import ServicesDep

router = APIRouter()


class DiscoveryOut(BaseModel):
    """The discovery document."""

    service: str
    api_version: int
    max_upload_bytes: int
    max_expires_seconds: int
    uploads: dict[str, dict[str, Any]]


@router.get(
    "/api/v1/",
    response_model=DiscoveryOut,
    summary="What this server accepts: limits, and the upload paths a client may use",
)
async def discovery(services: ServicesDep) -> JSONResponse:
    """Limits and upload paths (`put`, `tus`, and `direct` when staging is on S3)."""
    settings = services.settings
    uploads: dict[str, dict[str, Any]] = {
        "put": {"url": "/"},
        "tus": {
            "url": tus.TUS_PATH + "/",
            "version": tus.TUS_VERSION,
            "extensions": list(tus.EXTENSIONS),
            "chunk_size": tus.CHUNK_SIZE,
        },
    }
    if direct_uploads.available(services):
        uploads["direct"] = {"url": "/api/v1/direct-uploads"}
    body = DiscoveryOut(
        service="sealdrop",
        api_version=1,
        max_upload_bytes=settings.max_upload_bytes,
        max_expires_seconds=settings.max_ttl,
        uploads=uploads,
    )
    return JSONResponse(body.model_dump(), headers={"Cache-Control": "no-store"})
