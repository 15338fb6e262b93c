"""The JSON API for one link: its status (`GET`), its QR code, its owner's edit (`PATCH`)
and its deletion (`DELETE`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from app.domain import link_edits, link_passwords, links
from app.errors import BadRequest
from app.http import csrf, qr
from app.http.deps import ServicesDep, Token
from app.http.requests import (
    basic_password,
    bearer_token,
    client_address,
    header_password,
    share_url,
)

router = APIRouter(prefix="/api/v1/links")


class LinkStatus(BaseModel):
    """Public metadata; the file's name, size and digest only once the password is given."""

    state: str
    expires_at: str
    password_required: bool
    max_downloads: int | None
    downloads_left: int | None
    filename: str | None = None
    size: int | None = None
    content_type: str | None = None
    sha256: str | None = None


@router.get(
    "/{token}",
    response_model=LinkStatus,
    responses={
        400: {"description": "Malformed password or credentials"},
        401: {"description": "Wrong password (send it as Link-Password or HTTP Basic)"},
        404: {"description": "No such link"},
        410: {"description": "Expired, deleted, used up or failed"},
        429: {"description": "Locked after too many wrong passwords"},
    },
    summary="Link status and public metadata",
)
async def link_status(
    request: Request, response: Response, services: ServicesDep, token: Token
) -> LinkStatus:
    """The link's state; a protected link shows its file details only with its password."""
    response.headers["Cache-Control"] = "no-store"
    link = await links.resolve(services, token)
    password = header_password(request) or basic_password(request)
    if link.protected and password is None:
        return _status(link, with_file=False)
    await link_passwords.authorize(services, link, password, client=client_address(request))
    return _status(link, with_file=True)


def _status(link: links.LinkView, *, with_file: bool) -> LinkStatus:
    """The link's status; the file's details only for who proved the password (or owns it)."""
    status = LinkStatus(
        state=link.state,
        expires_at=link.expires_at.isoformat().replace("+00:00", "Z"),
        password_required=link.protected,
        max_downloads=link.max_downloads,
        downloads_left=link.downloads_left,
    )
    if with_file:
        status.filename = link.filename
        status.size = link.size
        status.content_type = link.content_type
        status.sha256 = link.sha256.hex()
    return status


@router.get(
    "/{token}/qr.svg",
    response_class=Response,
    responses={
        200: {"content": {"image/svg+xml": {}}, "description": "The QR code, as SVG"},
        404: {"description": "No such link"},
        410: {"description": "Expired, deleted, used up or failed"},
    },
    summary="A QR code of the share link (SVG)",
)
async def link_qr(request: Request, services: ServicesDep, token: Token) -> Response:
    """The share URL as a QR code; it names nothing but the URL its asker already has."""
    await links.resolve(services, token)
    headers = {
        "Cache-Control": "no-store",
        "Content-Security-Policy": "default-src 'none'",
        "X-Content-Type-Options": "nosniff",
    }
    svg = qr.qr_svg(share_url(request, services, token))
    return Response(svg, media_type="image/svg+xml", headers=headers)


@router.delete(
    "/{token}",
    status_code=204,
    responses={
        400: {"description": "Malformed credentials"},
        403: {"description": "Wrong manage token, or a browser request from another site"},
        404: {"description": "No such link"},
        410: {"description": "Already deleted or expired"},
    },
    summary="Delete a link with its manage token (Authorization: Bearer <manage token>)",
    dependencies=[Depends(csrf.guard)],
)
async def delete_link(
    services: ServicesDep,
    token: Token,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """Delete the link: it answers 410 at once and its bytes are purged."""
    await links.delete_link(services, token, bearer_token(authorization))
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


class LinkEditBody(BaseModel):
    """What an owner may change; a field left out stays as it is, `null` removes it."""

    model_config = ConfigDict(extra="forbid")

    expires_in: StrictInt | StrictStr | None = Field(
        default=None,
        description="Seconds from now, or a duration such as 90m, 12h, 1d; never past the "
        "link's latest expiry (fixed at creation)",
    )
    max_downloads: StrictInt | None = Field(
        default=None, ge=1, le=1_000_000, description="The download limit; null removes it"
    )
    password: StrictStr | None = Field(
        default=None, description="The new password; null removes it"
    )

    def to_edit(self) -> link_edits.LinkEdit:
        """The validated edit: only the fields the request named."""
        named = self.model_fields_set
        if not named:
            raise BadRequest("name at least one of expires_in, max_downloads, password")
        edit = link_edits.LinkEdit()
        if "expires_in" in named:
            if self.expires_in is None:
                raise BadRequest("expires_in cannot be null: a link always expires")
            edit = replace(edit, expires_in=link_edits.parse_expires_in(self.expires_in))
        if "max_downloads" in named:
            edit = replace(edit, max_downloads=self.max_downloads)
        if "password" in named:
            password = None if self.password is None else link_edits.parse_password(self.password)
            edit = replace(edit, password=password)
        return edit


@router.patch(
    "/{token}",
    response_model=LinkStatus,
    responses={
        400: {"description": "Malformed body, or an expiry past the link's latest allowed"},
        403: {"description": "Wrong manage token, or a browser request from another site"},
        404: {"description": "No such link"},
        409: {"description": "A download limit below the downloads already made"},
        410: {"description": "Expired, deleted, used up or failed: an edit never revives it"},
    },
    summary="Edit a link with its manage token (Authorization: Bearer <manage token>)",
    dependencies=[Depends(csrf.guard)],
)
async def edit_link(
    response: Response,
    services: ServicesDep,
    token: Token,
    body: LinkEditBody,
    authorization: Annotated[str | None, Header()] = None,
) -> LinkStatus:
    """Change the expiry, the download limit or the password; answers the link's status."""
    response.headers["Cache-Control"] = "no-store"
    link = await link_edits.edit_link(services, token, bearer_token(authorization), body.to_edit())
    # The owner proved the manage token: the file's details are theirs to see.
    return _status(link, with_file=True)
