"""The object keys Sealdrop writes: `staging/<job id>` and `blobs/<blob id>`, built and
read back in this one place.

The prefixes are a stored contract: objects already written live under them, and
`sealdrop storage init` scopes the staging bucket's expiry rule to `STAGING_PREFIX`.
"""

from __future__ import annotations

STAGING_PREFIX = "staging/"
BLOBS_PREFIX = "blobs/"


def staging_object_key(job_id: str) -> str:
    """Where the upload of job `job_id` is staged, sealed under its staging key."""
    return STAGING_PREFIX + job_id


def blob_object_key(blob_id: str) -> str:
    """Where blob `blob_id` is stored (the same id as its `blobs` row)."""
    return BLOBS_PREFIX + blob_id


def job_id_of(key: str) -> str | None:
    """The job id of a staging key, or None if `key` is not one."""
    return _id_after(STAGING_PREFIX, key)


def blob_id_of(key: str) -> str | None:
    """The blob id of a blob key, or None if `key` is not one."""
    return _id_after(BLOBS_PREFIX, key)


def _id_after(prefix: str, key: str) -> str | None:
    found = key.removeprefix(prefix)
    return found if found and found != key else None
