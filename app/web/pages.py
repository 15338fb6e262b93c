"""Server-rendered pages: the upload page (`GET /`), the share page, and error pages.

Pages carry a strict Content-Security-Policy (no inline script or style, nothing from
other origins), never leak a token through Referer, and never render an uploaded file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from app import links
from app.api.deps import ServicesDep
from app.api.http import basic_password, client_address, download_url
from app.services import Services

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

router = APIRouter(include_in_schema=False)


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    """A page with our security headers."""
    response = TEMPLATES.TemplateResponse(request, name, context, status_code=status)
    response.headers.update(PAGE_HEADERS)
    return response


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


@router.get("/")
async def upload_page(request: Request, services: ServicesDep) -> Response:
    """The upload page."""
    return render(request, "index.html", {"max_ttl_hours": services.settings.max_ttl // 3600})


async def render_share_page(request: Request, services: Services, token: str) -> Response:
    """The share page of a link: details and a download button (never the file itself)."""
    link = await links.resolve(services, token)
    await links.authorize(services, link, basic_password(request), client=client_address(request))
    context = {
        "link": link,
        "size": _human_size(link.size),
        "download_url": download_url(request, services, token, link.filename),
        "sealing": link.state != "ready",
    }
    return render(request, "share.html", context, status=200)


def render_error_page(
    request: Request, status: int, message: str, headers: dict[str, str]
) -> Response | None:
    """A small page for errors on page routes; None for routes that answer in text."""
    path = request.url.path
    if not (path == "/" or path.startswith("/s/")) or "text/html" not in request.headers.get(
        "accept", ""
    ):
        return None
    titles = {404: "No such link", 410: "This link has expired", 503: "Not ready yet"}
    response = render(
        request,
        "error.html",
        {"status": status, "title": titles.get(status, "Something went wrong"), "message": message},
        status=status,
    )
    response.headers.update(headers)
    return response
