"""CSRF protection for what the pages send: a signed double-submit token and an origin check.

A page sets a random nonce in an HttpOnly cookie and embeds a signature of it (a `<meta>`
for scripts, a hidden field for forms). A state-changing request that comes from a browser
must come from our own origin and carry the signature of its cookie's nonce. Requests that
show no sign of a browser (no `Origin`, no `Sec-Fetch-Site`) are curl and scripts: they
carry no ambient cookie a third party could ride, so they pass unchecked.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request, Response

from app.crypto import signing
from app.errors import Forbidden
from app.http.deps import ServicesDep
from app.services import Services

COOKIE = "sealdrop_csrf"
HEADER = "X-CSRF-Token"
FIELD = "csrf"
_PURPOSE = "csrf"


@dataclass(frozen=True, slots=True)
class PageToken:
    """The token a page embeds, and the nonce to set as its cookie if the browser had none."""

    token: str
    new_nonce: str | None


def page_token(request: Request, services: Services) -> PageToken:
    """The token for the page being rendered (a new nonce if the cookie is missing)."""
    nonce = _cookie_nonce(request)
    new_nonce = None
    if nonce is None:
        nonce = new_nonce = secrets.token_urlsafe(16)
    return PageToken(signing.sign(services.keys, _PURPOSE, nonce.encode()), new_nonce)


def set_cookie(response: Response, request: Request, token: PageToken) -> None:
    """Set the nonce cookie on `response` when the page made a new one."""
    if token.new_nonce is None:
        return
    response.set_cookie(
        COOKIE,
        token.new_nonce,
        path="/",
        httponly=True,
        # Lax, not Strict: a share link opened from a mail must not replace the nonce
        # that an upload page open in another tab depends on. Cross-site posts still
        # carry no cookie under Lax.
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def check(request: Request, services: Services, submitted: str | None) -> None:
    """Refuse (403) a browser request from another site or without the right token."""
    if not _from_browser(request):
        return
    if not _same_origin(request, services):
        raise Forbidden("requests from other sites are refused")
    nonce = _cookie_nonce(request)
    submitted = submitted or request.headers.get(HEADER)
    if nonce is None or not submitted:
        raise Forbidden("this page has expired; reload it and try again")
    if not signing.verify(services.keys, _PURPOSE, nonce.encode(), submitted):
        raise Forbidden("this page has expired; reload it and try again")


async def guard(request: Request, services: ServicesDep) -> None:
    """Route dependency: `check` with the token from the `X-CSRF-Token` header."""
    check(request, services, None)


def _cookie_nonce(request: Request) -> str | None:
    nonce = request.cookies.get(COOKIE)
    if nonce is None or not 16 <= len(nonce) <= 64 or not nonce.isascii():
        return None
    return nonce


def _from_browser(request: Request) -> bool:
    return "origin" in request.headers or "sec-fetch-site" in request.headers


def _same_origin(request: Request, services: Services) -> bool:
    # The browser's own verdict when it gives one; otherwise compare Origin's host.
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = urlsplit(request.headers.get("origin", "")).netloc.lower()
    ours = {request.headers.get("host", "").lower()}
    if services.settings.public_url:
        ours.add(urlsplit(services.settings.public_url).netloc.lower())
    return bool(origin) and origin in ours
