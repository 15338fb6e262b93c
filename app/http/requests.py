"""Small HTTP helpers shared by routers: credentials from headers, URLs, content negotiation."""

from __future__ import annotations

import re
from urllib.parse import quote

from fastapi import Request

from app.crypto import passwords
from app.crypto.passwords import MAX_AUTHORIZATION_BYTES, decode_password
from app.errors import BadRequest
from app.services import Services

# RFC 6750's b64token: what a Bearer token may be made of.
_B64TOKEN_RE = re.compile(r"[A-Za-z0-9._~+/-]+=*")
# RFC 9110's qvalue: 0 to 1 with at most three decimals.
_QVALUE_RE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")


def basic_password(request: Request) -> str | None:
    """The password of the request's HTTP Basic credentials, if any (user name ignored)."""
    return passwords.basic_password(request.headers.get("authorization"))


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer` header; None for none or another scheme.

    BadRequest when the token is no RFC 6750 token (bytes past ASCII, spaces): it can be
    none of ours, and must not reach the hashing of tokens, which takes ASCII only.
    """
    if authorization is None:
        return None
    if len(authorization) > MAX_AUTHORIZATION_BYTES:
        raise BadRequest("the Authorization header is too long")
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return None
    if not _B64TOKEN_RE.fullmatch(value):
        raise BadRequest("the Authorization header is not a valid Bearer token")
    return value


def client_address(request: Request) -> str:
    """The client's address, for per-client limits.

    `app.http.proxies` sets it from `X-Forwarded-For` only for connections from
    `SEALDROP_TRUSTED_PROXIES`; from anyone else the header is ignored.
    """
    return request.client.host if request.client is not None else "unknown"


def header_password(request: Request, name: str = "link-password") -> str | None:
    """A password sent in a plain header (uploads, the JSON API), as raw UTF-8 bytes."""
    raw = request.headers.getlist(name)
    if not raw:
        return None
    # Starlette decodes header bytes as latin-1; undo that to get the raw bytes back.
    return decode_password(raw[0].encode("latin-1"))


def accepts(request: Request, media_type: str) -> bool:
    """Whether the `Accept` header lists `media_type` with q > 0."""
    for item in request.headers.get("accept", "").split(","):
        kind, _, params = item.strip().partition(";")
        if kind.strip().lower() == media_type and _weight(params) > 0:
            return True
    return False


def _weight(params: str) -> float:
    """The q of one `Accept` item's parameters: 1 when absent, and when malformed (a
    client's typo must not cost it the answer it asked for, nor us an error)."""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q" and _QVALUE_RE.fullmatch(value := value.strip()):
            return float(value)
    return 1.0


def wants_html(request: Request) -> bool:
    """Browsers list text/html in Accept; curl and wget do not."""
    return accepts(request, "text/html")


def wants_json(request: Request) -> bool:
    """Whether the client asked for JSON."""
    return accepts(request, "application/json")


def public_base(request: Request, services: Services) -> str:
    """The public origin: from settings, else from the request."""
    configured = services.settings.public_url
    return (configured or str(request.base_url)).rstrip("/")


def share_url(request: Request, services: Services, token: str) -> str:
    """The link people share: /s/<token>."""
    return f"{public_base(request, services)}/s/{token}"


def download_url(request: Request, services: Services, token: str, filename: str) -> str:
    """The direct file URL: /d/<token>/<name>, on the download origin if one is set."""
    base = (services.settings.download_url or public_base(request, services)).rstrip("/")
    return f"{base}/d/{token}/{quote(filename, safe='')}"
