"""An owner's edit of a link with its manage token: expiry, download limit, password.

The manage token is checked exactly as for a deletion (`app.domain.links`). An edit never
revives a link: an expired, used-up, deleted, failed or purged one answers 410 and keeps
what it had. The expiry moves up to the link's ceiling (`links.max_expires_at`, fixed at
creation) and never past it: a later expiry is refused, naming the latest allowed, not
clamped. Every decision is made in one transaction on the locked row, by the database
clock, and the UPDATE itself re-checks the link's state, so a download, an expiry or a
deletion running at the same moment is never overwritten.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, select, update

from app.crypto.passwords import decode_password
from app.crypto.tokens import is_token_shaped, log_name, token_hash
from app.db.clock import as_utc, db_now
from app.db.models import Blob, Link, LinkState
from app.db.session import transaction
from app.domain import links, uploads
from app.errors import BadRequest, Conflict, Forbidden, LinkGone, LinkNotFound
from app.services import Services

log = logging.getLogger("sealdrop.links")


class Unchanged(enum.Enum):
    """Marks a field the edit leaves as it is (None means "remove" for limit and password)."""

    UNCHANGED = enum.auto()


UNCHANGED = Unchanged.UNCHANGED
# The longest expiry a request may even ask for: the ceiling decides, this bounds the input.
_MAX_EXPIRES_IN = 10**9


@dataclass(frozen=True, slots=True)
class LinkEdit:
    """What the owner asked to change, already validated; `UNCHANGED` leaves a field be."""

    expires_in: int | Unchanged = UNCHANGED  # seconds from now
    max_downloads: int | Unchanged | None = UNCHANGED
    password: str | Unchanged | None = UNCHANGED  # None removes the password


def parse_expires_in(value: int | str) -> int:
    """Seconds from now, from a whole number of seconds or a duration like "2h" (>= 1)."""
    if isinstance(value, int):
        if not 1 <= value <= _MAX_EXPIRES_IN:
            raise BadRequest("expires_in must be at least 1 second (to end a link now, delete it)")
        return value
    message = "expires_in must look like 3600, 90m, 12h or 1d (at least 1 second)"
    if not value.strip():
        raise BadRequest(message)  # the upload's "absent means the maximum" does not apply
    try:
        return uploads.parse_expires_in(value, _MAX_EXPIRES_IN)
    except BadRequest:
        raise BadRequest(message) from None


def parse_password(value: str) -> str:
    """The password to set, decoded and normalised as at upload; BadRequest if unusable."""
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("the password is not valid UTF-8") from None
    return decode_password(raw)


def ceiling(link: Link, max_ttl: int) -> datetime:
    """The latest expiry the link may have: its recorded ceiling, or creation + max_ttl."""
    if link.max_expires_at is not None:
        return as_utc(link.max_expires_at)
    return as_utc(link.created_at) + timedelta(seconds=max_ttl)


async def edit_link(
    services: Services, token: str, manage_token: str | None, edit: LinkEdit
) -> links.LinkView:
    """Apply `edit` to the link with its manage token and return the link as the edit left
    it (read under the same lock: downloads that use it up a moment later do not turn a
    change made into an error), or change nothing and raise. A limit equal to the
    downloads made is applied and ends the link: LinkGone.

    LinkNotFound (404), Forbidden (403, wrong or missing manage token), LinkGone (410, the
    link no longer serves), BadRequest (400, an expiry past the ceiling), Conflict (409, a
    download limit below the downloads already counted).
    """
    if not is_token_shaped(token):
        raise LinkNotFound()
    hashed = token_hash(token)
    await _authorize(services, hashed, manage_token)
    # Hashed only once the owner is known (argon2 is costly) and outside the transaction.
    password_hash: str | None = None
    if isinstance(edit.password, str):
        password_hash = await services.passwords.hash(edit.password)
    async with transaction(services.sessions, immediate=True) as session:
        row = (
            await session.execute(
                select(Link, db_now()).where(Link.token_hash == hashed).with_for_update()
            )
        ).first()
        if row is None:
            raise LinkNotFound()
        link, now = row
        now = as_utc(now)
        _refuse_if_gone(link, now)
        values = _new_values(services, link, now, edit, password_hash)
        changed = await session.scalar(
            update(Link).where(_editable(link.id, values)).values(**values).returning(Link.id)
        )
        if changed is None:
            # Only reachable if the row changed under a lock we hold: answer as for a gone link.
            raise LinkGone()
        await session.refresh(link)
        blob = await session.get(Blob, link.blob_id) if link.blob_id is not None else None
        edited = links.view(link, blob, now)
    log.info("link=%s edited by its owner: %s", log_name(hashed), ", ".join(sorted(values)))
    if edited.downloads_left == 0:
        # The owner's own limit, equal to the downloads already made, ended the link.
        raise LinkGone("this link has been downloaded as many times as allowed")
    return edited


async def _authorize(services: Services, hashed: bytes, manage_token: str | None) -> None:
    async with services.sessions() as session:
        stored = await session.scalar(
            select(Link.manage_token_hash).where(Link.token_hash == hashed)
        )
    if stored is None:
        raise LinkNotFound()
    if manage_token is None or not links.is_manage_token(stored, manage_token):
        raise Forbidden()


def _refuse_if_gone(link: Link, now: datetime) -> None:
    if link.state not in (LinkState.PENDING, LinkState.READY) or link.purged_at is not None:
        raise LinkGone()
    if as_utc(link.expires_at) <= now:
        raise LinkGone()
    if link.max_downloads is not None and link.download_count >= link.max_downloads:
        raise LinkGone("this link has been downloaded as many times as allowed")


def _new_values(
    services: Services, link: Link, now: datetime, edit: LinkEdit, password_hash: str | None
) -> dict[str, object]:
    values: dict[str, object] = {}
    if isinstance(edit.expires_in, int):
        latest = ceiling(link, services.settings.max_ttl)
        expires_at = now + timedelta(seconds=edit.expires_in)
        if expires_at > latest:
            stamp = latest.isoformat(timespec="seconds").replace("+00:00", "Z")
            raise BadRequest(f"expires_in goes past this link's latest allowed expiry, {stamp}")
        values["expires_at"] = expires_at
    if not isinstance(edit.max_downloads, Unchanged):
        limit = edit.max_downloads
        if isinstance(limit, int) and limit < link.download_count:
            raise Conflict(
                f"max_downloads cannot be below the {link.download_count} downloads already made"
            )
        values["max_downloads"] = limit
    if not isinstance(edit.password, Unchanged):
        values.update(password_hash=password_hash, failed_attempts=0, locked_until=None)
    return values


def _editable(link_id: str, values: dict[str, object]) -> ColumnElement[bool]:
    """The link still serves (or is being sealed), and the new limit is not below its count."""
    conditions = [Link.id == link_id, links.live()]
    limit = values.get("max_downloads")
    if isinstance(limit, int):
        conditions.append(Link.download_count <= limit)
    return and_(*conditions)
