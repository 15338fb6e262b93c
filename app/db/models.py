"""SQLAlchemy 2.0 models of DESIGN §3: links, blobs and jobs, and the states they go through;
the uploaders that may create links, their daily usage, the stored-bytes total and the
reservations it is made of.

Timestamps are written and compared by the database clock (see `app.db.clock`), never by
the pod's. Token and manage-token hashes are 32 raw SHA-256 bytes. A state is stored as
its plain string (`LinkState.READY` is `ready` in the row) and read back as its member.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.db.clock import db_now

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Timestamp = DateTime(timezone=True)


class LinkState(StrEnum):
    """Where a link is in its life: sealed or not, and whether it can still serve."""

    PENDING = "pending"  # staged, its job not finished yet
    READY = "ready"  # sealed into its blob: it serves
    FAILED = "failed"  # its job gave up; it never serves
    DELETED = "deleted"  # deleted by its owner, or purged (a tombstone)


class JobState(StrEnum):
    """Where a job is: waiting, held by a worker under a lease, or given up.

    A finished job has no state: its row is deleted in the finishing transaction.
    """

    QUEUED = "queued"
    RUNNING = "running"
    FAILED = "failed"
    # The upload's body is still arriving into its staging object: no worker holds the
    # job yet (`receiving`), or one follows the staging object and reseals it as it grows
    # (`following`, under a lease like `running`). The API moves them to `queued` and
    # `running` once the body is staged and its digest recorded.
    RECEIVING = "receiving"
    FOLLOWING = "following"


# A job that may still write: its staged object and its attempt's blob are in use.
LIVE_JOB_STATES = (JobState.QUEUED, JobState.RUNNING, JobState.RECEIVING, JobState.FOLLOWING)
# A job some worker holds under a lease.
HELD_JOB_STATES = (JobState.RUNNING, JobState.FOLLOWING)
# A link in one of these never serves again, whatever its expiry.
ENDED_LINK_STATES = (LinkState.DELETED, LinkState.FAILED)

_State = TypeVar("_State", bound=StrEnum)


class StateString(TypeDecorator[_State]):
    """A state column: the plain string in the row (`VARCHAR(16)`, as the migrations made
    it), the enum member in Python. Writing a string that names no state is refused."""

    impl = String(16)
    cache_ok = True

    def __init__(self, states: type[_State]) -> None:
        super().__init__()
        self.states = states

    def process_bind_param(self, value: _State | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.states(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> _State | None:
        return None if value is None else self.states(value)


class Base(DeclarativeBase):
    """Declarative base with stable constraint names."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Blob(Base):
    """A sealed object in the blob store and its wrapped data key."""

    __tablename__ = "blobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary(60))
    header: Mapped[bytes] = mapped_column(LargeBinary(16))
    segment_size: Mapped[int] = mapped_column(Integer)
    ciphertext_size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=db_now())


class Link(Base):
    """A share link: public metadata, hashed secrets, limits and state.

    `state` is a `LinkState`. A purged link keeps its row as a tombstone (file fields
    cleared, `blob_id` null) so its token answers 410 for a while.
    """

    __tablename__ = "links"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    manage_token_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    filename: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    max_downloads: Mapped[int | None] = mapped_column(Integer)
    download_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=db_now())
    expires_at: Mapped[datetime] = mapped_column(Timestamp)
    state: Mapped[LinkState] = mapped_column(StateString(LinkState), default=LinkState.PENDING)
    blob_id: Mapped[str | None] = mapped_column(ForeignKey("blobs.id", ondelete="SET NULL"))
    purged_at: Mapped[datetime | None] = mapped_column(Timestamp)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(Timestamp)
    # Who made it (upload policy `keys` or `proxy`); null under `open`. Kept when the
    # uploader is revoked, so an operator still sees whose links remain.
    uploader_id: Mapped[str | None] = mapped_column(ForeignKey("uploaders.id", ondelete="SET NULL"))
    # The latest expiry the link may ever have: creation + the largest TTL allowed then.
    # An owner's PATCH may move `expires_at` up to it, never past it.
    max_expires_at: Mapped[datetime | None] = mapped_column(Timestamp)

    __table_args__ = (
        Index("ix_links_state_expires_at", "state", "expires_at"),
        Index("ix_links_blob_id", "blob_id"),
        Index("ix_links_uploader_id", "uploader_id"),
    )


class Job(Base):
    """A unit of queued work (kind `seal`): lease, attempts and the attempt's object ids."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="seal")
    link_id: Mapped[str] = mapped_column(ForeignKey("links.id", ondelete="CASCADE"))
    state: Mapped[JobState] = mapped_column(StateString(JobState), default=JobState.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    run_after: Mapped[datetime] = mapped_column(Timestamp, default=db_now())
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    attempt_blob_id: Mapped[str | None] = mapped_column(String(32))
    attempt_upload_id: Mapped[str | None] = mapped_column(Text)
    staging_key_id: Mapped[str | None] = mapped_column(String(64))
    staging_wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary(60))
    # A resumable upload's staged pieces, or those of a PUT staged into S3 as it arrives
    # (recorded one by one), in order (JSON `[[piece id, size, header], …]`, each
    # `staging/<job id>.<piece id>`); null: one object, `staging/<job id>`.
    staging_pieces: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=db_now())
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=db_now(), onupdate=db_now())

    __table_args__ = (
        Index("ix_jobs_state_run_after", "state", "run_after"),
        Index("ix_jobs_link_id", "link_id"),
    )


class Uploader(Base):
    """Someone allowed to upload: by an upload key (stored as its SHA-256 only) or by the
    name a trusted auth proxy sends. Limits left null are not enforced."""

    __tablename__ = "uploaders"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # SHA-256 of the key (keys are 256-bit random, so no slow hash is needed); null for an
    # uploader known only by the proxy's identity header.
    key_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), unique=True)
    max_bytes_per_day: Mapped[int | None] = mapped_column(BigInteger)
    max_file_size: Mapped[int | None] = mapped_column(BigInteger)
    max_ttl_seconds: Mapped[int | None] = mapped_column(Integer)
    max_live_links: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=db_now())
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp)


class UploaderUsage(Base):
    """Bytes an uploader has been granted on one day (UTC, by the database clock)."""

    __tablename__ = "uploader_usage"

    uploader_id: Mapped[str] = mapped_column(
        ForeignKey("uploaders.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class StorageUsage(Base):
    """The one row (id 1) counting bytes held by staged uploads and sealed blobs, against
    `SEALDROP_MAX_STORED_BYTES`."""

    __tablename__ = "storage_usage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stored_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class StorageReservation(Base):
    """Bytes counted in `storage_usage` for one upload, under its job's id: while its body
    arrives (`in_flight`), then for as long as its job lives (the staged copy and the blob
    it becomes). Every change to it and to the total is made in one transaction."""

    __tablename__ = "storage_reservations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    bytes: Mapped[int] = mapped_column(BigInteger)
    in_flight: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=db_now())


class TusState(StrEnum):
    """Where a resumable upload is: receiving bytes, or complete (its link and job exist)."""

    OPEN = "open"
    COMPLETE = "complete"


class TusUpload(Base):
    """A resumable (tus) upload: what it has acknowledged, where its pieces are, and the
    link options it was created with. The upload URL's id is stored only as its SHA-256.

    `id` is also the id of the job it becomes (`staging/<id>.<piece id>`), and of its
    storage reservation. The staging key lives here, wrapped, until the job takes it.
    """

    __tablename__ = "tus_uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    id_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    state: Mapped[TusState] = mapped_column(StateString(TusState), default=TusState.OPEN)
    length: Mapped[int] = mapped_column(BigInteger)
    # The acknowledged offset (tus `Upload-Offset`): bytes sealed into committed pieces.
    received: Mapped[int] = mapped_column(BigInteger, default=0)
    pieces: Mapped[str] = mapped_column(Text, default="[]")
    staging_key_id: Mapped[str | None] = mapped_column(String(64))
    staging_wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary(60))
    # The client's Upload-Metadata, as sent (HEAD answers it back).
    upload_metadata: Mapped[str | None] = mapped_column("metadata", Text)
    filename: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(255))
    ttl_seconds: Mapped[int] = mapped_column(Integer)
    max_ttl_seconds: Mapped[int] = mapped_column(Integer)
    max_downloads: Mapped[int | None] = mapped_column(Integer)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    uploader_id: Mapped[str | None] = mapped_column(ForeignKey("uploaders.id", ondelete="SET NULL"))
    # The day whose quota the upload's bytes were taken from (given back if it never ends).
    quota_day: Mapped[date | None] = mapped_column(Date)
    link_id: Mapped[str | None] = mapped_column(ForeignKey("links.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=db_now())
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=db_now())
    # The latest it may finish: `max_upload_seconds` after its creation.
    deadline_at: Mapped[datetime] = mapped_column(Timestamp)
    # An open upload is removed past this: no byte for `unfinished_upload_seconds`, or
    # `max_upload_seconds` after its creation, whichever comes first.
    expires_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (Index("ix_tus_uploads_state_expires_at", "state", "expires_at"),)


class DirectUploadState(StrEnum):
    """Where a direct upload is: taking parts, or being completed by one request."""

    OPEN = "open"
    COMPLETING = "completing"


class DirectUpload(Base):
    """A direct upload in progress: the client puts sealed parts straight into S3 under
    the staging key of its future job (`job_id`, also the staged object's name).

    The upload's id is its capability and is stored only as its SHA-256 (`id_hash`). The
    link's options are checked and kept here (the password as its argon2 hash) until the
    upload completes into the link and job rows, in the transaction that deletes this one.
    """

    __tablename__ = "direct_uploads"

    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    id_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    s3_upload_id: Mapped[str] = mapped_column(Text)
    state: Mapped[DirectUploadState] = mapped_column(
        StateString(DirectUploadState), default=DirectUploadState.OPEN
    )
    size: Mapped[int] = mapped_column(BigInteger)
    part_size: Mapped[int] = mapped_column(BigInteger)
    segment_log2: Mapped[int] = mapped_column(Integer)
    staging_key_id: Mapped[str] = mapped_column(String(64))
    staging_wrapped_key: Mapped[bytes] = mapped_column(LargeBinary(60))
    # The blob's 16-byte header (format and nonce prefix, no secret): a client resuming
    # after a page reload learns it again here.
    header: Mapped[bytes] = mapped_column(LargeBinary(16))
    filename: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(255))
    ttl_seconds: Mapped[int] = mapped_column(Integer)
    max_ttl_seconds: Mapped[int] = mapped_column(Integer)
    max_downloads: Mapped[int | None] = mapped_column(Integer)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    uploader_id: Mapped[str | None] = mapped_column(ForeignKey("uploaders.id", ondelete="SET NULL"))
    # The day whose quota the upload's bytes were taken from (given back if it never ends).
    quota_day: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=db_now())
    # The last time the API saw the upload move (creation, a listing that found a newer
    # part); the janitor asks S3 for the newest part before it decides the upload is idle.
    last_activity_at: Mapped[datetime] = mapped_column(Timestamp, default=db_now())
    # Past this the upload is removed however active: S3's lifecycle rule would abort it.
    deadline_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (Index("ix_direct_uploads_last_activity_at", "last_activity_at"),)
