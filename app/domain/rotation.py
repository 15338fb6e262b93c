"""Master key rotation: re-wrap every data key under the active master key.

Blobs are never touched, only their 60-byte wrapped keys. Each UPDATE is conditioned on the
old key id, so a concurrent rewrap or purge is never overwritten.
"""

from __future__ import annotations

from sqlalchemy import select, update

from app.crypto.keys import data_key_context, staging_key_context
from app.db.models import Blob, Job
from app.db.session import transaction
from app.services import Services

BATCH = 500


async def rewrap_all(services: Services) -> int:
    """Re-wrap blob and staging keys not yet under the active key; returns how many."""
    return await _rewrap_blobs(services) + await _rewrap_staging(services)


async def _rewrap_blobs(services: Services) -> int:
    ring, done = services.keys, 0
    while True:
        async with services.sessions() as session:
            rows = (
                await session.execute(
                    select(Blob.id, Blob.key_id, Blob.wrapped_key)
                    .where(Blob.key_id != ring.active_id)
                    .limit(BATCH)
                )
            ).all()
        if not rows:
            return done
        for row in rows:
            context = data_key_context(row.id)
            key_id, wrapped = ring.wrap(ring.unwrap(row.key_id, row.wrapped_key, context), context)
            async with transaction(services.sessions) as session:
                await session.execute(
                    update(Blob)
                    .where(Blob.id == row.id, Blob.key_id == row.key_id)
                    .values(key_id=key_id, wrapped_key=wrapped)
                )
            done += 1


async def _rewrap_staging(services: Services) -> int:
    ring, done = services.keys, 0
    async with services.sessions() as session:
        rows = (
            await session.execute(
                select(Job.id, Job.staging_key_id, Job.staging_wrapped_key).where(
                    Job.staging_key_id.is_not(None), Job.staging_key_id != ring.active_id
                )
            )
        ).all()
    for row in rows:
        if row.staging_key_id is None or row.staging_wrapped_key is None:
            continue
        context = staging_key_context(row.id)
        key_id, wrapped = ring.wrap(
            ring.unwrap(row.staging_key_id, row.staging_wrapped_key, context), context
        )
        async with transaction(services.sessions) as session:
            await session.execute(
                update(Job)
                .where(Job.id == row.id, Job.staging_key_id == row.staging_key_id)
                .values(staging_key_id=key_id, staging_wrapped_key=wrapped)
            )
        done += 1
    return done
