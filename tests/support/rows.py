"""Reading and changing database rows behind the app's back, in the app's own database.

Time passes in the database: tests move `expires_at`, `locked_until`, `purged_at` or a
lease with `db_now_plus(seconds(-x))`, never by sleeping.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update

from app.crypto.tokens import token_hash
from app.db.clock import db_now_plus, seconds
from app.db.models import Job, Link
from app.db.session import transaction
from app.services import Services


async def link_row(services: Services, token: str) -> Link | None:
    """The links row of `token`, or None."""
    async with services.sessions() as session:
        row: Link | None = await session.scalar(
            select(Link).where(Link.token_hash == token_hash(token))
        )
        return row


async def update_link(services: Services, token: str, **values: Any) -> None:
    """Set columns of the links row of `token` (SQL expressions allowed)."""
    async with transaction(services.sessions) as session:
        await session.execute(
            update(Link).where(Link.token_hash == token_hash(token)).values(**values)
        )


async def jobs_of(services: Services, token: str) -> list[Job]:
    """The jobs rows of the link of `token`."""
    async with services.sessions() as session:
        rows = await session.scalars(
            select(Job)
            .join(Link, Link.id == Job.link_id)
            .where(Link.token_hash == token_hash(token))
        )
        return list(rows)


async def update_job(services: Services, job_id: str, **values: Any) -> None:
    """Set columns of one jobs row (SQL expressions allowed)."""
    async with transaction(services.sessions) as session:
        await session.execute(update(Job).where(Job.id == job_id).values(**values))


async def count_rows(services: Services, model: type[Link] | type[Job]) -> int:
    """How many rows the table of `model` holds."""
    async with services.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def is_future(services: Services, column: Any, row_filter: Any, *, by: float = 0.0) -> bool:
    """Whether `column` of the row matching `row_filter` is more than `by` seconds ahead of
    the database's now."""
    async with services.sessions() as session:
        ahead = column > db_now_plus(seconds(by))
        return bool(await session.scalar(select(ahead).where(row_filter)))
