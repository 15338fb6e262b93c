"""Server-rendered pages: the upload page (`GET /`), the share page, and error pages.

Pages carry a strict Content-Security-Policy (no inline script or style, nothing from
other origins), never leak a token through Referer, and never render an uploaded file.
A protected link's page asks for its password in a form of ours and shows nothing about
the file before the password is right; its 401 carries a non-Basic challenge so that the
browser never raises its own login dialog (see docs/web.md).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from app.crypto.passwords import decode_password
from app.db.models import LinkState
from app.domain import direct_uploads, link_passwords, links, tickets
from app.domain.links import LinkView
from app.errors import PasswordRequired, TooManyAttempts
from app.http import csrf
from app.http.deps import ServicesDep, Token
from app.http.requests import basic_password, client_address, download_url, public_base, wants_html
from app.services import Services
from app.web.format import human_size, lifetime_choices
from app.web.forms import read_form

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "Cross-Origin-Opener-Policy": "same-origin",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
ERROR_TITLES = {
    400: "That request was not right",
    401: "A password is needed",
    403: "This page has expired",
    404: "No such link",
    410: "This link is no longer available",
    429: "Too many attempts",
    503: "Not available right now",
}
ERROR_ADVICE = {
    404: "Check that you copied the whole link. A link that expired a while ago is gone too.",
    410: "Ask the person who shared it to send the file again.",
    503: "Try again in a minute.",
}
NOT_THE_RIGHT_ONE = "That password is not right. Check it and try again."
SPENT_TICKET = "That download link has expired or was already used. Enter the password again."

router = APIRouter(include_in_schema=False)


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    status: int = 200,
    *,
    page_token: csrf.PageToken | None = None,
) -> HTMLResponse:
    """A page with our security headers (and the CSRF cookie when it posts anything)."""
    if page_token is not None:
        context = {**context, "csrf_token": page_token.token}
    response = TEMPLATES.TemplateResponse(request, name, context, status_code=status)
    response.headers.update(PAGE_HEADERS)
    if page_token is not None:
        csrf.set_cookie(response, request, page_token)
    return response


@router.get("/")
async def upload_page(request: Request, services: ServicesDep) -> Response:
    """The upload page."""
    settings = services.settings
    context = {
        "lifetimes": lifetime_choices(settings.max_ttl),
        "max_bytes": settings.max_upload_bytes,
        "max_size": human_size(settings.max_upload_bytes),
        "base_url": public_base(request, services),
        "upload_policy": settings.upload_policy,
    }
    response = render(
        request, "upload.html", context, page_token=csrf.page_token(request, services)
    )
    # Direct uploads send sealed parts straight to the staging bucket's S3 endpoint.
    if origins := direct_uploads.browser_origins(services):
        policy = PAGE_HEADERS["Content-Security-Policy"]
        response.headers["Content-Security-Policy"] = (
            f"{policy}; connect-src 'self' {' '.join(origins)}"
        )
    return response


async def render_share_page(request: Request, services: Services, token: str) -> Response:
    """The share page of a link: details and a download button, or the password form."""
    link = await links.resolve(services, token)
    password = basic_password(request)
    try:
        await link_passwords.authorize(services, link, password, client=client_address(request))
    except (PasswordRequired, TooManyAttempts) as refusal:
        if not wants_html(request):
            raise  # curl on a limited link: the Basic challenge, as on /d/
        error = NOT_THE_RIGHT_ONE if password is not None else None
        if "ticket" in request.query_params:
            error = SPENT_TICKET
        return _password_page(request, services, link, token, refusal, error)
    return await _file_page(request, services, link, token)


@router.post("/s/{token}")
async def unlock(request: Request, services: ServicesDep, token: Token) -> Response:
    """The password form's answer: the file's page with a download ticket, or the form again."""
    form = await read_form(request)
    csrf.check(request, services, form.get(csrf.FIELD, b"").decode("ascii", "replace"))
    link = await links.resolve(services, token)
    raw = form.get("password", b"")
    if not raw and link.protected:
        refusal = PasswordRequired(link.realm)
        return _password_page(request, services, link, token, refusal, "Enter the password.")
    try:
        password = decode_password(raw) if raw else None
        await link_passwords.authorize(services, link, password, client=client_address(request))
    except (PasswordRequired, TooManyAttempts) as refusal:
        return _password_page(request, services, link, token, refusal, NOT_THE_RIGHT_ONE)
    return await _file_page(request, services, link, token)


def _password_page(
    request: Request,
    services: Services,
    link: LinkView,
    token: str,
    refusal: PasswordRequired | TooManyAttempts,
    error: str | None,
) -> Response:
    headers: dict[str, str] = {}
    if isinstance(refusal, TooManyAttempts):
        minutes = -(-refusal.retry_after // 60)
        error = (
            "Too many wrong passwords: the link is locked for now. "
            f"Try again in {minutes} minute{'' if minutes == 1 else 's'}."
        )
        headers["Retry-After"] = str(refusal.retry_after)
    else:
        # Not Basic: a browser would answer Basic with its own dialog, over our form.
        headers["WWW-Authenticate"] = f'SealdropPassword realm="{link.realm}"'
    response = render(
        request,
        "locked.html",
        {"token": token, "error": error},
        refusal.status,
        page_token=csrf.page_token(request, services),
    )
    response.headers.update(headers)
    return response


async def _file_page(request: Request, services: Services, link: LinkView, token: str) -> Response:
    url = download_url(request, services, token, link.filename)
    ready = link.state == LinkState.READY
    ticket_seconds = None
    if link.protected and ready:
        url = f"{url}?ticket={await tickets.issue(services, link)}"
        ticket_seconds = tickets.TICKET_SECONDS
    # For display only: the countdown starts from here and runs on the viewer's clock.
    seconds_left = max(0, int((link.expires_at - datetime.now(UTC)).total_seconds()))
    context = {
        "token": token,
        "link": link,
        "size": human_size(link.size),
        "sealing": not ready,
        "download_url": url,
        "ticket_seconds": ticket_seconds,
        "seconds_left": seconds_left,
        "expires_utc": link.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
    }
    return render(request, "share.html", context)


def render_error_page(
    request: Request, status: int, message: str, headers: dict[str, str]
) -> Response | None:
    """A small page for errors on page routes; None for routes that answer in text."""
    if not wants_html(request):
        return None
    path: str = request.scope["path"]
    if not (path == "/" or path.startswith(("/s/", "/d/"))):
        return None
    context = {
        "status": status,
        "title": ERROR_TITLES.get(status, "Something went wrong"),
        "message": message[:1].upper() + message[1:].rstrip(".") + ".",
        "advice": ERROR_ADVICE.get(status),
    }
    response = render(request, "error.html", context, status=status)
    response.headers.update(headers)
    return response
