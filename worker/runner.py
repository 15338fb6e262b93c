"""The worker loop: claim jobs up to a concurrency, seal them under a renewed lease.

Runs inside `sealdrop serve` (embedded) or alone as `sealdrop worker`. On stop it claims
nothing more; jobs in hand get a grace period to finish and are then released, so another
worker can take them at once instead of waiting for the lease to run out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from contextlib import suppress

from app.crypto.tokens import new_id
from app.domain import staged, storage_cap
from app.infra import metrics
from app.services import Services
from worker import janitor, queue, seal
from worker.queue import ClaimedJob

log = logging.getLogger("sealdrop.worker")

IDLE_POLL_SECONDS = 5.0
QUEUE_DEPTH_SECONDS = 5.0
# Uploads followed at once while their bodies arrive. They hold no slot of the
# concurrency: a following attempt mostly waits for the client, and works only as fast as
# the body comes, so slow clients never keep other jobs waiting.
MAX_FOLLOWING = 16


def worker_name() -> str:
    """A lease owner name unique to this worker: host, pid and a random suffix."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{new_id()[:8]}"


class Worker:
    """Claims and seals jobs, and runs the janitor now and then."""

    def __init__(self, services: Services, *, concurrency: int = 1) -> None:
        self.services = services
        self.concurrency = max(1, concurrency)
        self.name = worker_name()
        self._stopping = asyncio.Event()
        self._slots = asyncio.Semaphore(self.concurrency)
        self._running: set[asyncio.Task[None]] = set()
        self._following = 0

    def stop(self) -> None:
        """Stop claiming; `run` returns once jobs in hand are finished or released."""
        self._stopping.set()

    async def run(self, *, grace_seconds: float = 20.0) -> None:
        """Claim and seal until `stop` is called."""
        janitor_task = asyncio.create_task(self._janitor_loop())
        depth_task = asyncio.create_task(self._queue_depth_loop())
        try:
            await self._claim_loop()
        finally:
            for task in (janitor_task, depth_task):
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            await self._drain(grace_seconds)

    async def _claim_loop(self) -> None:
        while await self._free_slot():
            self.services.notifier.forget_job_queued()
            job = await self._claim()
            if job is None:
                self._slots.release()
                await self._idle()
                continue
            if job.following:
                self._following += 1
                self._slots.release()
            task = asyncio.create_task(self._process(job))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            if not job.more:
                # Nothing else was runnable: claiming again at once would only find nothing,
                # and its write transaction would hold up this job's own (a 4 KiB upload
                # waited for it). A job queued since the claim wakes the loop.
                await self._idle()

    async def _free_slot(self) -> bool:
        """Take a slot; False once stopping, even while every slot is busy, so that the
        jobs in hand get their grace period from the moment of the stop, not after one ends."""
        slot = asyncio.create_task(self._slots.acquire())
        stopper = asyncio.create_task(self._stopping.wait())
        await asyncio.wait({slot, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not self._stopping.is_set():
            return True
        slot.cancel()
        with suppress(asyncio.CancelledError):
            await slot
        if not slot.cancelled():
            self._slots.release()
        return False

    async def _claim(self) -> ClaimedJob | None:
        try:
            return await queue.claim(
                self.services, self.name, arriving=self._following < MAX_FOLLOWING
            )
        except Exception:
            log.exception("claiming a job failed; retrying shortly")
            return None

    async def _idle(self) -> None:
        waiter = asyncio.create_task(self.services.notifier.wait_for_job(IDLE_POLL_SECONDS))
        stopper = asyncio.create_task(self._stopping.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in (waiter, stopper):
            task.cancel()

    async def _drain(self, grace_seconds: float) -> None:
        if not self._running:
            return
        _, pending = await asyncio.wait(set(self._running), timeout=grace_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _process(self, job: ClaimedJob) -> None:
        try:
            await self._attempt(job)
        except asyncio.CancelledError:
            with suppress(Exception):
                await asyncio.shield(queue.release(self.services, job))
            raise
        except Exception:
            # The database or storage failed while recording the outcome: the lease runs
            # out and another attempt picks the job up.
            log.exception("job %s: could not record the attempt's outcome", job.id)
        finally:
            if job.following:
                self._following -= 1
            else:
                self._slots.release()

    async def _attempt(self, job: ClaimedJob) -> None:
        services = self.services
        try:
            await seal.clean_previous_attempt(services, job)
            with metrics.timed(metrics.SEALING_SECONDS, success="sealed"):
                blob = await self._under_lease(job)
        except queue.LeaseLost:
            log.warning("job %s: lease lost, another worker has it", job.id)
            return
        except seal.PermanentFailure as error:
            await self._give_up(job, str(error))
            return
        except Exception as error:
            await self._retry(job, f"{type(error).__name__}: {error}")
            return
        if await queue.finish(services, job, blob):
            # Sealed once the commit lands; the log says so before anything else can stall.
            log.info("job %s sealed (attempt %d)", job.id, job.attempt)
            # The waiting uploader hears first; removing the staged copy is not its business.
            await services.notifier.link_settled(job.link_id)
            await staged.delete_staged(services, job.id, job.staging_pieces)
        else:
            log.warning("job %s: commit refused (link deleted or lease lost)", job.id)

    async def _under_lease(self, job: ClaimedJob) -> queue.SealedBlob:
        """Seal while renewing the lease every third of its length; stop if renewal fails."""
        sealing = asyncio.create_task(seal.seal_attempt(self.services, job))
        interval = self.services.settings.job_lease_seconds / 3
        try:
            while True:
                done, _ = await asyncio.wait({sealing}, timeout=interval)
                if done:
                    return sealing.result()
                if not await self._renew(job):
                    raise queue.LeaseLost()
        finally:
            if not sealing.done():
                sealing.cancel()
                with suppress(asyncio.CancelledError, Exception):
                    await sealing

    async def _renew(self, job: ClaimedJob) -> bool:
        try:
            return await queue.renew(self.services, job)
        except Exception:
            log.exception("job %s: lease renewal failed", job.id)
            return False

    async def _retry(self, job: ClaimedJob, error: str) -> None:
        if job.attempt >= self.services.settings.job_max_attempts:
            await self._give_up(job, error)
            return
        if await queue.retry_later(self.services, job, error):
            log.warning("job %s attempt %d failed, will retry: %s", job.id, job.attempt, error)
        else:
            # Another worker holds the job now (this one was paused or cut off past its
            # lease): the fenced write changed nothing, and the failure is not this job's.
            log.warning("job %s attempt %d failed; retry refused (lease lost)", job.id, job.attempt)

    async def _give_up(self, job: ClaimedJob, error: str) -> None:
        log.error("job %s failed for good: %s", job.id, error)
        if await queue.fail(self.services, job, error):
            await staged.delete_staged(self.services, job.id, job.staging_pieces)
            await self.services.notifier.link_settled(job.link_id)

    async def _queue_depth_loop(self) -> None:
        metrics.STORED_BYTES_CAP.set(self.services.settings.max_stored_bytes)
        while not self._stopping.is_set():
            try:
                metrics.QUEUE_DEPTH.set(await queue.depth(self.services))
                metrics.STORED_BYTES.set(await storage_cap.stored_bytes(self.services))
            except Exception:
                log.warning("could not count queued jobs or stored bytes", exc_info=True)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), QUEUE_DEPTH_SECONDS)

    async def _janitor_loop(self) -> None:
        interval = self.services.settings.janitor_interval_seconds
        while not self._stopping.is_set():
            try:
                await janitor.run_once(self.services)
            except Exception:
                log.exception("janitor pass failed; will run again")
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), interval)
