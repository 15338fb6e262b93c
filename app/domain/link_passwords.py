"""A protected link's password: the check, and the lock after too many wrong ones.

Failures live in the link's row (`failed_attempts`, `locked_until`, DESIGN §1). Each
attempt is counted there by one conditional UPDATE before any hash is computed, so
parallel guesses cannot outrun the limit; the attempt that reaches it locks the link, for
longer each time; a right password resets the count. While the link is locked even the
right password is refused (429), and by the database clock, like every expiry. Hashing
itself is `app.crypto.passwords`.
"""

from __future__ import annotations

import logging

from sqlalchemy import or_, select, update

from app.crypto.tokens import log_name
from app.db.clock import as_utc, db_now, db_now_plus, seconds
from app.db.models import Link
from app.db.session import transaction
from app.domain.links import LinkView
from app.errors import PasswordRequired, TooManyAttempts
from app.infra import metrics
from app.services import Services
from app.settings import Settings

# The links' logger still: these lines read and are filtered as before the move.
log = logging.getLogger("sealdrop.links")


async def authorize(
    services: Services, link: LinkView, password: str | None, *, client: str | None = None
) -> None:
    """Let the request through if the link needs no password or `password` is right.

    A wrong password is counted in the link's row *before* the hash is computed, so
    parallel guesses cannot outrun the limit; while the link is locked even the right
    password gets TooManyAttempts. A missing password is not counted (every browser asks
    once without one) but answers like a wrong one. Wrong passwords are also counted per
    `client` address, so one client cannot guess across many links: every attempt is
    counted there before its hash too, and a right one (or one never checked) given back.
    """
    if link.password_hash is None:
        return
    if link.locked_for > 0:
        # Known locked from the row just read: no further query, no hash (floods are cheap).
        raise TooManyAttempts(retry_after=int(link.locked_for) + 1)
    if password is None:
        raise PasswordRequired(link.realm)
    if client is not None:
        await services.limits.take_password_attempt(client)
    try:
        attempts = await _count_attempt(services, link)
        right = await services.passwords.verify(link.password_hash, password)
    except BaseException:
        if client is not None:
            await services.limits.give_back_password_attempt(client)
        raise
    if right:
        if client is not None:
            await services.limits.give_back_password_attempt(client)
        await _reset_attempts(services, link)
        return
    metrics.PASSWORD_FAILURES.inc()
    log.info("wrong password link=%s attempts=%d", log_name(link.token_hash), attempts)
    raise PasswordRequired(link.realm)


async def _count_attempt(services: Services, link: LinkView) -> int:
    """Count one attempt on an unlocked link, before any hash is computed.

    The attempt that reaches the limit locks the link in the same transaction, before its
    own hash is checked (a right password then unlocks it): parallel guesses wait on the
    row and find it locked, so no more than the limit are ever checked.
    """
    settings = services.settings
    limit = settings.password_max_failures
    async with transaction(services.sessions, immediate=True) as session:
        counted = await session.scalar(
            update(Link)
            .where(
                Link.id == link.id,
                or_(Link.locked_until.is_(None), Link.locked_until <= db_now()),
            )
            .values(failed_attempts=Link.failed_attempts + 1)
            .returning(Link.failed_attempts)
        )
        if counted is not None and counted % limit == 0:
            await session.execute(
                update(Link)
                .where(Link.id == link.id)
                .values(locked_until=db_now_plus(seconds(lock_seconds(settings, counted))))
            )
    if counted is None:
        await _refuse_if_locked(services, link)
        raise TooManyAttempts(retry_after=1)
    if counted % limit == 0:
        log.warning(
            "link=%s locked for %ds after %d attempts",
            log_name(link.token_hash),
            lock_seconds(settings, counted),
            counted,
        )
    return int(counted)


def lock_seconds(settings: Settings, attempts: int) -> int:
    """The lock after `attempts` (a multiple of the limit): the first lasts the configured
    time, each next twice as long, up to the maximum."""
    rounds = attempts // settings.password_max_failures
    doubled: int = settings.password_lock_seconds * 2 ** (rounds - 1)
    return min(doubled, settings.password_lock_max_seconds)


async def _refuse_if_locked(services: Services, link: LinkView) -> None:
    async with services.sessions() as session:
        row = (
            await session.execute(
                select(Link.locked_until, db_now()).where(
                    Link.id == link.id, Link.locked_until > db_now()
                )
            )
        ).first()
    locked_until, now = row if row is not None else (None, None)
    if locked_until is not None and now is not None:
        wait = (as_utc(locked_until) - as_utc(now)).total_seconds()
        raise TooManyAttempts(retry_after=int(wait) + 1)


async def _reset_attempts(services: Services, link: LinkView) -> None:
    async with transaction(services.sessions, immediate=True) as session:
        await session.execute(
            update(Link).where(Link.id == link.id).values(failed_attempts=0, locked_until=None)
        )
