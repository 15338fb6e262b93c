"""Uploaders: who may upload under the `keys` and `proxy` policies, and with what limits.

An upload key is `sdk_` and 43 characters from `secrets` (256 bits); only its SHA-256 is
stored, so it is shown once, when it is made, and a lost key is replaced, never recovered.
A proxy-named uploader has no key: the trusted auth proxy vouches for its name. Nothing
here is cached: a revoke holds at once on every process. Each creation and revocation is
one line on the `sealdrop.audit` logger, naming the uploader, never its key.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.crypto.tokens import new_id, token_hash
from app.db.clock import as_utc, db_now
from app.db.models import Link, Uploader, UploaderUsage
from app.db.session import transaction
from app.domain import links
from app.errors import BadRequest, UploaderRefused, UploadKeyRequired
from app.services import Services

audit = logging.getLogger("sealdrop.audit")

KEY_PREFIX = "sdk_"
_KEY_BYTES = 32
_NAME_RE = re.compile(r"[A-Za-z0-9._@-]{1,64}")


@dataclass(frozen=True, slots=True)
class Limits:
    """An uploader's limits; None is no limit."""

    max_bytes_per_day: int | None = None
    max_file_size: int | None = None
    max_ttl_seconds: int | None = None
    max_live_links: int | None = None


@dataclass(frozen=True, slots=True)
class Admitted:
    """The uploader an upload is made for, as read when it was admitted."""

    id: str
    name: str
    has_key: bool
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True, slots=True)
class UploaderReport:
    """One line of `sealdrop uploaders list`."""

    name: str
    kind: str
    limits: Limits
    bytes_today: int
    live_links: int
    revoked_at: datetime | None


def check_name(name: str) -> str:
    """`name` if it is 1 to 64 of A-Z a-z 0-9 . _ @ -; BadRequest otherwise."""
    if not _NAME_RE.fullmatch(name):
        raise BadRequest("an uploader name is 1 to 64 of the characters A-Z a-z 0-9 . _ @ -")
    return name


def new_key() -> str:
    """A fresh upload key: `sdk_` and 43 URL-safe characters (256 random bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)


def key_hash(key: str) -> bytes:
    """The SHA-256 stored in place of a key (a 256-bit random key needs no slow hash)."""
    return token_hash(key)


def _limits(row: Uploader) -> Limits:
    return Limits(row.max_bytes_per_day, row.max_file_size, row.max_ttl_seconds, row.max_live_links)


def admitted(row: Uploader) -> Admitted:
    """The `Admitted` view of an uploader row."""
    return Admitted(row.id, row.name, row.key_hash is not None, _limits(row))


async def add_uploader(services: Services, name: str, limits: Limits, *, proxy: bool) -> str | None:
    """Create an uploader; return its key, shown this once (None for a proxy name).

    BadRequest if the name is malformed or already taken (revoked ones included: a name
    stays bound to the links it made).
    """
    check_name(name)
    key = None if proxy else new_key()
    async with transaction(services.sessions, immediate=True) as session:
        taken = await session.scalar(select(Uploader.id).where(Uploader.name == name))
        if taken is not None:
            raise BadRequest(f"an uploader named {name} already exists")
        session.add(
            Uploader(
                id=new_id(),
                name=name,
                key_hash=None if key is None else key_hash(key),
                max_bytes_per_day=limits.max_bytes_per_day,
                max_file_size=limits.max_file_size,
                max_ttl_seconds=limits.max_ttl_seconds,
                max_live_links=limits.max_live_links,
            )
        )
    audit.info("uploader created name=%s kind=%s by=operator", name, "proxy" if proxy else "key")
    return key


async def revoke_uploader(services: Services, name: str) -> bool:
    """Revoke an uploader: its next upload is refused on every process. False if it
    already was; BadRequest if there is no such uploader."""
    async with transaction(services.sessions, immediate=True) as session:
        known = await session.scalar(select(Uploader.id).where(Uploader.name == name))
        if known is None:
            raise BadRequest(f"no uploader is named {check_name(name)}")
        result = await session.execute(
            update(Uploader)
            .where(Uploader.id == known, Uploader.revoked_at.is_(None))
            .values(revoked_at=db_now())
        )
    revoked = bool(getattr(result, "rowcount", 0))
    if revoked:
        audit.info("uploader revoked name=%s by=operator", name)
    return revoked


async def list_uploaders(services: Services) -> list[UploaderReport]:
    """Every uploader with its limits, today's granted bytes and its live links."""
    async with services.sessions() as session:
        today = await db_today(session)
        used = (
            select(UploaderUsage.bytes)
            .where(UploaderUsage.uploader_id == Uploader.id, UploaderUsage.day == today)
            .scalar_subquery()
        )
        live = (
            select(func.count(Link.id))
            .where(Link.uploader_id == Uploader.id, links.live())
            .scalar_subquery()
        )
        rows = await session.execute(select(Uploader, used, live).order_by(Uploader.name))
        return [
            UploaderReport(
                name=row.name,
                kind="key" if row.key_hash is not None else "proxy",
                limits=_limits(row),
                bytes_today=bytes_today or 0,
                live_links=live_links,
                revoked_at=None if row.revoked_at is None else as_utc(row.revoked_at),
            )
            for row, bytes_today, live_links in rows
        ]


async def by_key(services: Services, key: str) -> Admitted:
    """The uploader holding `key`; UploadKeyRequired (401) if none does or it is revoked."""
    async with services.sessions() as session:
        row = await session.scalar(select(Uploader).where(Uploader.key_hash == key_hash(key)))
    if row is None or row.revoked_at is not None:
        raise UploadKeyRequired()
    return admitted(row)


async def by_proxy_name(services: Services, name: str) -> Admitted:
    """The uploader the auth proxy names, created with the proxy defaults on first sight;
    UploaderRefused (403) once revoked."""
    if not _NAME_RE.fullmatch(name):
        raise BadRequest("the sign-in proxy sent a user name this server cannot take")
    async with transaction(services.sessions, immediate=True) as session:
        row = await session.scalar(select(Uploader).where(Uploader.name == name))
        if row is None:
            row = await _create_proxy_uploader(session, services, name)
    if row.revoked_at is not None:
        raise UploaderRefused("uploads by this account were stopped by the operator")
    return admitted(row)


async def _create_proxy_uploader(session: AsyncSession, services: Services, name: str) -> Uploader:
    settings = services.settings
    values = {
        "id": new_id(),
        "name": name,
        "max_bytes_per_day": settings.proxy_default_max_bytes_per_day,
        "max_file_size": settings.proxy_default_max_file_size,
        "max_ttl_seconds": settings.proxy_default_max_ttl,
        "max_live_links": settings.proxy_default_max_live_links,
    }
    # Two first uploads of one name on two pods: one row, both use it.
    insert = sqlite_insert if settings.is_sqlite else pg_insert
    result = await session.execute(
        insert(Uploader).values(**values).on_conflict_do_nothing(index_elements=["name"])
    )
    if getattr(result, "rowcount", 0):
        audit.info("uploader created name=%s kind=proxy by=first-upload", name)
    return (await session.execute(select(Uploader).where(Uploader.name == name))).scalar_one()


async def db_today(session: AsyncSession) -> date:
    """Today's UTC date by the database clock (a quota's day)."""
    return as_utc(await db_clock(session)).date()


async def db_clock(session: AsyncSession) -> datetime:
    """The database clock's time now, in UTC."""
    return as_utc((await session.execute(select(db_now()))).scalar_one())
