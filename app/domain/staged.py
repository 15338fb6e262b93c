"""Deleting what an upload staged: its one object (`staging/<job id>`), or the pieces of a
resumable upload or of a PUT staged into S3 as it arrived (`staging/<job id>.<piece id>`),
with any write left unfinished."""

from __future__ import annotations

from app.services import Services
from app.storage.object_keys import piece_prefix, staged_object_keys


async def delete_staged(services: Services, job_id: str, pieces: str | None) -> None:
    """Delete a job's staged objects, as its row lists them (`Job.staging_pieces`); for an
    upload staged as pieces also any piece no row lists yet (a PATCH cut off with its
    process, a PUT's piece committed but not recorded) and any unfinished write."""
    for key in staged_object_keys(job_id, pieces):
        await services.staging.delete(key)
    if pieces is not None:
        await delete_pieces(services, job_id)


async def delete_pieces(services: Services, job_id: str) -> None:
    """Delete every piece under the job's id, and abort its unfinished writes (a PATCH
    cut off with its process). Listed from the store: for when no row names the pieces
    (it is gone, or a PATCH wrote one it never acknowledged)."""
    prefix = piece_prefix(job_id)
    async for info in services.staging.list(prefix):
        await services.staging.delete(info.key)
    async for pending in services.staging.list_pending_uploads(prefix):
        await services.staging.abort_upload(pending.key, pending.upload_id)
