"""The upload policy (`SEALDROP_UPLOAD_POLICY`): who may upload, and the limits that follow.

`open` lets anyone upload, as before. `keys` needs an upload key
(`Authorization: Bearer sdk_…`); `proxy` takes the name that the trusted auth proxy in
front sends (`SEALDROP_PROXY_USER_HEADER`), and only from `SEALDROP_TRUSTED_PROXIES`.
Admission happens before any byte of the body is read. An uploader's limits are checked
here (file size, expiry), in `upload_quota` (bytes per day), and in the transaction that
creates the link (live links), with the uploader's row locked.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.clock import as_utc, db_now
from app.db.models import Link, Uploader
from app.domain import links, uploaders
from app.domain.uploaders import Admitted
from app.errors import TooManyAttempts, UploaderRefused, UploadKeyRequired, UploadTooLarge
from app.services import Services
from app.settings import Settings


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request says about its uploader: a Bearer key, and the auth proxy's user
    name, present only when the request came straight from a trusted proxy."""

    key: str | None = None
    proxy_user: str | None = None


async def admit(services: Services, credentials: Credentials) -> Admitted | None:
    """The uploader a request uploads as (None under `open`), or the refusal: 401 for a
    missing, unknown or revoked key; 403 without a trusted identity or once revoked."""
    policy = services.settings.upload_policy
    if policy == "open":
        return None  # a Bearer header is ignored: anyone may upload
    if policy == "keys":
        if credentials.key is None:
            raise UploadKeyRequired()
        return await uploaders.by_key(services, credentials.key)
    if credentials.proxy_user is None:
        raise UploaderRefused("uploads here need you to sign in on this site's page first")
    return await uploaders.by_proxy_name(services, credentials.proxy_user)


def max_ttl(settings: Settings, uploader: Admitted | None) -> int:
    """The longest expiry this upload may have: the server's, or the uploader's if lower.
    It is also the default expiry."""
    own = uploader.limits.max_ttl_seconds if uploader else None
    return settings.max_ttl if own is None else min(settings.max_ttl, own)


def check_declared_size(declared: int | None, uploader: Admitted | None) -> None:
    """Refuse (413) a body announced as larger than the uploader may send."""
    largest = uploader.limits.max_file_size if uploader else None
    if declared is not None and largest is not None and declared > largest:
        raise UploadTooLarge(f"your uploads may be at most {largest} bytes")


async def hold_for_link(session: AsyncSession, uploader: Admitted) -> None:
    """In the transaction creating a link: lock the uploader's row (so parallel uploads
    take turns), refuse if it was revoked meanwhile, and refuse (429) one live link too many.

    SQLite needs no row lock: the transaction began IMMEDIATE, holding the write lock.
    """
    row = (
        await session.execute(
            select(Uploader.revoked_at).where(Uploader.id == uploader.id).with_for_update()
        )
    ).one_or_none()
    if row is None or row.revoked_at is not None:
        if uploader.has_key:
            raise UploadKeyRequired()
        raise UploaderRefused("uploads by this account were stopped by the operator")
    most = uploader.limits.max_live_links
    if most is None:
        return
    live, soonest, now = (
        await session.execute(
            select(func.count(Link.id), func.min(Link.expires_at), db_now()).where(
                Link.uploader_id == uploader.id, links.live()
            )
        )
    ).one()
    if live >= most:
        wait = 60 if soonest is None else int((as_utc(soonest) - as_utc(now)).total_seconds()) + 1
        raise TooManyAttempts(
            wait, f"you have {live} live links, the most you may have; delete one or wait"
        )
