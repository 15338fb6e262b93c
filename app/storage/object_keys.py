"""The object keys Sealdrop writes: `staging/<job id>`, `staging/<job id>.<piece id>` (the
pieces of a resumable upload, or of a PUT staged into S3 as it arrives) and
`blobs/<blob id>`, built and read back in this one place.

The prefixes are a stored contract: objects already written live under them, and
`sealdrop storage init` scopes the staging bucket's expiry rule to `STAGING_PREFIX`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

STAGING_PREFIX = "staging/"
BLOBS_PREFIX = "blobs/"


def staging_object_key(job_id: str) -> str:
    """Where the upload of job `job_id` is staged, sealed under its staging key."""
    return STAGING_PREFIX + job_id


def piece_object_key(job_id: str, piece_id: str) -> str:
    """Where one piece of job `job_id`'s upload is staged (ids hold no `.`)."""
    return f"{STAGING_PREFIX}{job_id}.{piece_id}"


def piece_prefix(job_id: str) -> str:
    """The prefix shared by every piece of job `job_id`, and by nothing else."""
    return f"{STAGING_PREFIX}{job_id}."


@dataclass(frozen=True, slots=True)
class Piece:
    """One staged piece of an upload (resumable, or a PUT into S3 staging): its id,
    plaintext size, and its header.

    The header (with the piece's random nonce prefix) is every segment's associated data:
    a reader that takes it from the row, not from the object, opens a piece only at its
    own place in the list, so pieces swapped in the store fail instead of reordering the
    file.
    """

    id: str
    size: int
    header: bytes


def dump_pieces(pieces: list[Piece]) -> str:
    """A job's pieces as stored in its row: JSON `[[id, size, base64url(header)], …]`."""
    return json.dumps(
        [[p.id, p.size, base64.urlsafe_b64encode(p.header).decode()] for p in pieces],
        separators=(",", ":"),
    )


def load_pieces(text: str | None) -> list[Piece] | None:
    """The pieces stored in a row, in order; None for a job staged as one object."""
    if text is None:
        return None
    return [
        Piece(str(piece_id), int(size), base64.urlsafe_b64decode(header))
        for piece_id, size, header in json.loads(text)
    ]


def staged_object_keys(job_id: str, pieces: str | None) -> list[str]:
    """Every object a job's upload was staged as: its pieces, or its one object."""
    loaded = load_pieces(pieces)
    if loaded is None:
        return [staging_object_key(job_id)]
    return [piece_object_key(job_id, piece.id) for piece in loaded]


def blob_object_key(blob_id: str) -> str:
    """Where blob `blob_id` is stored (the same id as its `blobs` row)."""
    return BLOBS_PREFIX + blob_id


def job_id_of(key: str) -> str | None:
    """The job id of a staging key (or of one of its pieces), or None if `key` is not one."""
    found = _id_after(STAGING_PREFIX, key)
    return found.partition(".")[0] or None if found else None


def blob_id_of(key: str) -> str | None:
    """The blob id of a blob key, or None if `key` is not one."""
    return _id_after(BLOBS_PREFIX, key)


def _id_after(prefix: str, key: str) -> str | None:
    found = key.removeprefix(prefix)
    return found if found and found != key else None
