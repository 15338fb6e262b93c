"""Who uploads, as a request says it: the upload key (`Authorization: Bearer`) and the
auth proxy's user header, which is believed only on a connection from a trusted proxy."""

from __future__ import annotations

from fastapi import Request

from app.domain import upload_policy
from app.domain.upload_policy import Credentials
from app.domain.uploaders import Admitted
from app.http.proxies import peer_is_trusted
from app.http.requests import bearer_token
from app.services import Services
from app.settings import Settings


def credentials(request: Request, settings: Settings) -> Credentials:
    """The request's credentials under the server's policy; the rest is never read."""
    if settings.upload_policy == "keys":
        return Credentials(key=bearer_token(request.headers.get("authorization")))
    if settings.upload_policy == "proxy" and peer_is_trusted(request):
        user = request.headers.get(settings.proxy_user_header, "").strip()
        return Credentials(proxy_user=user or None)
    return Credentials()


async def admit(request: Request, services: Services) -> Admitted | None:
    """The uploader of this upload (None under `open`), checked before any body byte."""
    return await upload_policy.admit(services, credentials(request, services.settings))
