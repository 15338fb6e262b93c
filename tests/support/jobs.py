"""Doing a worker's job by hand, with the worker's own functions, or running a real worker
for a while, when a test says so."""

from __future__ import annotations

import asyncio

from app.domain.uploads import wait_until_settled
from app.services import Services
from app.storage.object_keys import staging_object_key
from worker import queue, seal
from worker.runner import Worker


async def seal_queued(services: Services, owner: str = "test-worker") -> int:
    """Claim and seal every runnable job as the worker would; return how many were sealed."""
    sealed = 0
    while (job := await queue.claim(services, owner)) is not None:
        blob = await seal.seal_attempt(services, job)
        assert await queue.finish(services, job, blob)
        await services.staging.delete(staging_object_key(job.id))
        sealed += 1
    return sealed


async def settled_by_a_worker(
    services: Services, link_ids: list[str], within: float = 10
) -> list[str]:
    """Run a real worker (`worker.runner.Worker`) until each link settles, or `within`
    seconds pass for it; the links' states, in order. The worker is stopped after."""
    worker = Worker(services)
    running = asyncio.create_task(worker.run())
    try:
        return [await wait_until_settled(services, link_id, within) for link_id in link_ids]
    finally:
        worker.stop()
        await running
