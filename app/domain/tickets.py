"""Download tickets: how a browser downloads a protected file once its password was right.

The share page's password form never puts the password in a URL. A right password earns a
ticket instead, carried in the download URL (`/d/<token>/<name>?ticket=…`): bound to one
link and to its password as it is now (a password the owner changes voids the tickets
issued under the old one), good for one download, for at most a minute. Tickets are
HMAC-signed with a key derived from the master key ring, so every API process can check
them; a spent ticket is remembered in a `UsedTickets` store (`app.infra.used_tickets`)
until it would have expired anyway, by what its signature vouches for (link, password,
expiry and nonce), never by its text: another spelling of the same signed content is the
same ticket. Their clock is the database's, like every other expiry.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from app.crypto import signing
from app.db.clock import as_utc, db_now

if TYPE_CHECKING:
    from app.domain.links import LinkView
    from app.services import Services

TICKET_SECONDS = 60
_PURPOSE = "download-ticket"


async def issue(services: Services, link: LinkView) -> str:
    """A fresh ticket for one download of `link`: `<expiry>.<nonce>.<signature>`."""
    expires = int((await _database_time(services)).timestamp()) + TICKET_SECONDS
    body = f"{expires}.{signing.b64encode(secrets.token_bytes(12))}"
    return f"{body}.{signing.sign(services.keys, _PURPOSE, _message(link, body))}"


async def redeem(services: Services, link: LinkView, ticket: str, *, spend: bool) -> bool:
    """Whether `ticket` opens `link` now; with `spend`, it opens it only this once."""
    if len(ticket) > 256 or not ticket.isascii():
        return False
    expiry, dot, rest = ticket.partition(".")
    nonce, dot2, signature = rest.partition(".")
    if not (dot and dot2 and expiry.isdigit() and len(expiry) <= 12 and nonce):
        return False
    message = _message(link, f"{expiry}.{nonce}")
    if not signing.verify(services.keys, _PURPOSE, message, signature):
        return False
    left = int(expiry) - (await _database_time(services)).timestamp()
    if left <= 0:
        return False
    if not spend:
        return True
    # The signed message, not the ticket's text: the same message under another spelling
    # of its signature, or under another key id naming the same key, is the same ticket.
    ticket_id = hashlib.sha256(message).digest()
    return await services.used_tickets.first_use(ticket_id, left + 1)


def _message(link: LinkView, body: str) -> bytes:
    # The password hash's digest binds the ticket to the password that earned it.
    password = hashlib.sha256((link.password_hash or "").encode("ascii")).digest()
    return link.id.encode("ascii") + b"\0" + password + b"\0" + body.encode("ascii")


async def _database_time(services: Services) -> datetime:
    async with services.sessions() as session:
        now = await session.scalar(select(db_now()))
    assert now is not None
    return as_utc(now)
