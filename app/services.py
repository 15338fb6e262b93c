"""The long-lived clients one Sealdrop process uses, built at start and closed at stop.

Nothing here runs at import: `open_services` is called from the app's lifespan, the
worker's start, and the command line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.crypto.keys import KeyRing, load_key_ring
from app.crypto.passwords import PasswordHashing
from app.db.session import make_engine, make_sessionmaker
from app.infra import metrics
from app.infra.limits import ClientLimits
from app.infra.negative_cache import MemoryNegativeCache, NegativeCache
from app.infra.negative_cache_redis import RedisNegativeCache
from app.infra.notify import Notifier
from app.infra.notify_pg import PostgresNotifier
from app.infra.redis_client import GuardedRedis
from app.infra.used_tickets import MemoryUsedTickets, UsedTickets
from app.infra.used_tickets_redis import RedisUsedTickets
from app.settings import Settings
from app.storage import S3Options, open_store
from app.storage.base import ObjectStore

log = logging.getLogger("sealdrop")


@dataclass
class Services:
    """Everything a request or a job needs besides its own input."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    blobs: ObjectStore
    staging: ObjectStore
    keys: KeyRing
    cache: NegativeCache
    notifier: Notifier
    passwords: PasswordHashing
    limits: ClientLimits
    redis: GuardedRedis | None = None
    upload_waiters: int = field(default=0)
    used_tickets: UsedTickets = field(default_factory=MemoryUsedTickets)

    async def close(self) -> None:
        """Release every connection and client."""
        await self.notifier.close()
        if self.redis is not None:
            await self.redis.close()
        await self.staging.close()
        if self.staging is not self.blobs:
            await self.blobs.close()
        await self.engine.dispose()


async def open_services(settings: Settings) -> Services:
    """Build the clients for `settings` (the data dir is created for the embedded mode)."""
    if settings.is_sqlite or settings.resolved_storage_url.startswith("file://"):
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    engine = make_engine(settings.resolved_database_url)
    metrics.count_database_errors(engine)
    s3 = S3Options(settings.s3_read_timeout_seconds, settings.s3_max_attempts)
    blobs = open_store(settings.resolved_storage_url, s3=s3)
    staging = (
        blobs
        if settings.resolved_staging_url == settings.resolved_storage_url
        else open_store(settings.resolved_staging_url, s3=s3)
    )
    notifier = (
        Notifier()
        if settings.is_sqlite
        else PostgresNotifier(engine, settings.resolved_database_url)
    )
    await notifier.start()
    redis = _open_redis(settings)
    return Services(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        blobs=blobs,
        staging=staging,
        keys=load_key_ring(settings),
        cache=_negative_cache(settings, redis),
        notifier=notifier,
        passwords=PasswordHashing(
            memory_kib=settings.argon2_memory_kib,
            time_cost=settings.argon2_time_cost,
            concurrency=settings.argon2_concurrency,
        ),
        limits=ClientLimits(settings, redis),
        redis=redis,
        used_tickets=MemoryUsedTickets() if redis is None else RedisUsedTickets(redis),
    )


def _open_redis(settings: Settings) -> GuardedRedis | None:
    if not settings.redis_url:
        return None
    return GuardedRedis.from_url(
        settings.redis_url, prefix=settings.redis_prefix, timeout=settings.redis_timeout_seconds
    )


def _negative_cache(settings: Settings, redis: GuardedRedis | None) -> NegativeCache:
    ttl = settings.negative_cache_ttl_seconds
    if redis is None:
        return MemoryNegativeCache(ttl_seconds=ttl)
    return RedisNegativeCache(redis, ttl_seconds=ttl)
