"""Doing a worker's job by hand, with the worker's own functions, when a test says so."""

from __future__ import annotations

from app.services import Services
from app.storage.object_keys import staging_object_key
from worker import queue, seal


async def seal_queued(services: Services, owner: str = "test-worker") -> int:
    """Claim and seal every runnable job as the worker would; return how many were sealed."""
    sealed = 0
    while (job := await queue.claim(services, owner)) is not None:
        blob = await seal.seal_attempt(services, job)
        assert await queue.finish(services, job, blob)
        await services.staging.delete(staging_object_key(job.id))
        sealed += 1
    return sealed
