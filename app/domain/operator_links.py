"""The operator's view of links: list the live ones, revoke one.

An operator names a link by its share URL, its token, or a prefix of its token's hash
(what `list` shows and the logs print); no token or manage token is ever shown or logged.
A revoke is the owner's delete (`app.domain.links.mark_deleted`): the link answers 410 at
once on every process and the janitor purges it. Each revoke writes one line to the
`sealdrop.audit` logger.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement, and_, func, select

from app.crypto.tokens import is_token_shaped, token_hash
from app.db.clock import as_utc
from app.db.models import ENDED_LINK_STATES, Link, LinkState, Uploader
from app.db.session import transaction
from app.domain import links
from app.errors import BadRequest, LinkGone, LinkNotFound
from app.services import Services

audit = logging.getLogger("sealdrop.audit")

PREFIX_HEX = 12  # what `list` shows of a token's hash
MIN_PREFIX_HEX = 8  # the shortest prefix `revoke` takes (what the logs print)
_HEX_RE = re.compile(r"[0-9a-f]{8,64}")
_SHARE_PATH_RE = re.compile(r"^/(?:s|d)/([^/]+)(?:/[^/]*)?$")


@dataclass(frozen=True, slots=True)
class OperatorLink:
    """One live or pending link as an operator sees it: no file name, no secret."""

    hash_prefix: str
    state: LinkState
    size: int
    created_at: datetime
    expires_at: datetime
    downloads: int
    max_downloads: int | None
    uploader: str | None
    protected: bool


async def list_links(
    services: Services, *, uploader: str | None = None, larger_than: int | None = None
) -> list[OperatorLink]:
    """Live and pending links, oldest first; of one uploader, or larger than some size.

    BadRequest if no uploader has that name.
    """
    query = (
        select(Link, Uploader.name)
        .outerjoin(Uploader, Uploader.id == Link.uploader_id)
        .where(links.live())
        .order_by(Link.created_at, Link.id)
    )
    async with services.sessions() as session:
        if uploader is not None:
            found = await session.scalar(select(Uploader.id).where(Uploader.name == uploader))
            if found is None:
                raise BadRequest(f"no uploader is named {uploader!r}")
            query = query.where(Link.uploader_id == found)
        if larger_than is not None:
            query = query.where(Link.size > larger_than)
        rows = (await session.execute(query)).all()
    return [_seen(link, name) for link, name in rows]


def _seen(link: Link, uploader: str | None) -> OperatorLink:
    return OperatorLink(
        hash_prefix=link.token_hash.hex()[:PREFIX_HEX],
        state=link.state,
        size=link.size or 0,
        created_at=as_utc(link.created_at),
        expires_at=as_utc(link.expires_at),
        downloads=link.download_count,
        max_downloads=link.max_downloads,
        uploader=uploader,
        protected=link.password_hash is not None,
    )


def _token_of(ref: str) -> str | None:
    """The token in a share URL (`…/s/<token>`, `…/d/<token>/<name>`), else None."""
    if "://" not in ref:
        return None
    match = _SHARE_PATH_RE.match(urlsplit(ref).path)
    return match.group(1) if match else None


def _matching(ref: str) -> ColumnElement[bool]:
    """The links `ref` names: by URL or token exactly; by a hash prefix as a range, among
    links not yet deleted (a prefix is ambiguous only between links it could revoke)."""
    token = _token_of(ref)
    if token is None and _HEX_RE.fullmatch(ref.lower()):
        prefix = ref.lower()
        low = bytes.fromhex(prefix.ljust(64, "0"))
        high = bytes.fromhex(prefix.ljust(64, "f"))
        return and_(
            Link.token_hash >= low,
            Link.token_hash <= high,
            Link.state.not_in(ENDED_LINK_STATES),
        )
    token = token if token is not None else ref
    if not is_token_shaped(token):
        raise BadRequest(
            "give a share URL, a token, or at least 8 hex digits of a token's hash "
            "(as `sealdrop links list` shows)"
        )
    return Link.token_hash == token_hash(token)


@dataclass(frozen=True, slots=True)
class Revoked:
    """What a revoke did."""

    hash_prefix: str
    was: LinkState
    staged_deleted: int


async def revoke(services: Services, ref: str) -> Revoked:
    """Delete the one link `ref` names, as its owner would; 410 from then on.

    LinkNotFound if none matches, LinkGone if it is already deleted or failed,
    BadRequest if a prefix matches several links (nothing is changed then).
    """
    condition = _matching(ref.strip())
    async with transaction(services.sessions, immediate=True) as session:
        found = (
            await session.execute(
                select(Link.id, Link.token_hash, Link.state, func.count().over())
                .where(condition)
                .limit(2)
            )
        ).all()
        if not found:
            raise LinkNotFound("no link matches")
        if len(found) > 1:
            raise BadRequest(
                f"{found[0][3]} links match; give more hex digits of the hash (nothing changed)"
            )
        link_id, hashed, state, _count = found[0]
        if state in ENDED_LINK_STATES:
            raise LinkGone(f"link {hashed.hex()[:PREFIX_HEX]} is already {state}")
        cancelled = await links.mark_deleted(session, link_id)
    await links.after_delete(services, hashed, cancelled)
    prefix = hashed.hex()[:PREFIX_HEX]
    audit.info("link=%s revoked by the operator (was %s)", prefix, state)
    return Revoked(prefix, state, len(cancelled))
